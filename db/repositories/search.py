"""Address and locality search: one statement per search.

Every property carries `search_key` (db/search_key.py), its address normalised once; a
locality's key is an expression of its own columns.

Candidates come from an index made for it, then are scored in SQL, all in one statement:
PostgreSQL matches `to_tsvector('simple', search_key)` (a GIN expression index, migration
0006) against a tsquery; SQLite an FTS5 table kept by triggers. The score rewards a key that
begins with the typed text (the exact address) or holds it after a unit (the building when
no unit was typed), that begins with the first typed token (the unit before the house
number), the typed words found whole (no typo), and a length close to the query's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from db.engine import Database
from db.records import LOCALITY_COLUMNS, PROPERTY_COLUMNS, LocalityRecord, PropertyRecord
from db.repositories.batching import cached_statement
from db.search_key import LOCALITY_KEY_SQL, property_key_sql

MAX_CANDIDATES = 2000
"""Candidates scored per search: a vague prefix ("1 g") matches a large part of the state;
past this many the ranking sees an arbitrary subset (the first few typed characters more
narrow it)."""


@dataclass(frozen=True, slots=True)
class Term:
    """One typed token: the lexemes it matches whole, the prefixes it matches, and the
    words one typo away from it (tried only when nothing matches without them)."""

    exact: tuple[str, ...]
    prefixes: tuple[str, ...] = ()
    typos: tuple[str, ...] = ()
    together: tuple[str, ...] = ()
    """Lexemes that, all present, also match ("110", "a" for "110a": the key keeps a house
    number as the Valuer General wrote it, "110 A" or "110A")."""


@dataclass(frozen=True, slots=True)
class SearchTerms:
    """A normalised query (app/search builds it); every lexeme is [a-z0-9]+."""

    terms: tuple[Term, ...]
    phrases: tuple[str, ...]
    """What a key that is the typed address begins with (one per reading of the last token)."""
    first: str
    """LIKE pattern of a key beginning with the first typed token (it keeps the typed
    unit/house order)."""
    words: tuple[str, ...]
    """Complete typed words: a key holding them whole has no typo."""


@dataclass(frozen=True, slots=True)
class AddressHit:
    property: PropertyRecord
    locality: LocalityRecord
    score: float


@dataclass(frozen=True, slots=True)
class LocalityHit:
    locality: LocalityRecord
    score: float


@lru_cache(maxsize=20_000)
def _term_text(t: Term, *, typos: bool, postgresql: bool) -> str:
    """One term as tsquery or FTS5 text (remembered: a term with typos has ~500 lexemes)."""
    lexemes = [*t.exact, *t.typos] if typos else list(t.exact)
    if postgresql:
        items = [f"'{x}'" for x in lexemes] + [f"'{p}':*" for p in t.prefixes]
        if t.together:
            items.append("(" + " & ".join(f"'{x}'" for x in t.together) + ")")
        return "(" + " | ".join(items) + ")"
    items = [f'"{x}"' for x in lexemes] + [f'"{p}"*' for p in t.prefixes]
    if t.together:
        items.append("(" + " AND ".join(f'"{x}"' for x in t.together) + ")")
    return "(" + " OR ".join(items) + ")"


def tsquery_text(terms: SearchTerms, *, typos: bool = False) -> str:
    return " & ".join(_term_text(t, typos=typos, postgresql=True) for t in terms.terms)


def fts5_query_text(terms: SearchTerms, *, typos: bool = False) -> str:
    return " AND ".join(_term_text(t, typos=typos, postgresql=False) for t in terms.terms)


def _match_parameters(db: Database, terms: SearchTerms) -> dict[str, str]:
    text = tsquery_text if db.is_postgresql else fts5_query_text
    return {"match": text(terms), "match_typos": text(terms, typos=True)}


def _score_sql(key: str, phrases: int, words: int) -> str:
    """Higher is better: begins with the typed text (4) or holds it after a unit (3), begins
    with the first typed token (2), each typed word found whole (1 each), and under 1 for a
    length close to the query's (the exact address first)."""
    begins = " OR ".join(f"{key} LIKE :phrase_{i}" for i in range(phrases))
    within = " OR ".join(f"{key} LIKE :within_{i}" for i in range(phrases))
    whole = "".join(
        f" + CASE WHEN (' ' || {key} || ' ') LIKE :word_{i} THEN 1 ELSE 0 END" for i in range(words)
    )
    return (
        f"(CASE WHEN {begins} THEN 4 WHEN {within} THEN 3 ELSE 0 END"
        f" + CASE WHEN {key} LIKE :first THEN 2 ELSE 0 END{whole}"
        f" + 1.0 / (1 + abs(length({key}) - :length)))"
    )


def _score_parameters(terms: SearchTerms) -> dict[str, Any]:
    parameters: dict[str, Any] = {f"phrase_{i}": f"{p}%" for i, p in enumerate(terms.phrases)}
    parameters.update({f"within_{i}": f"% {p}%" for i, p in enumerate(terms.phrases)})
    parameters.update({f"word_{i}": f"% {w} %" for i, w in enumerate(terms.words)})
    parameters["first"] = terms.first
    parameters["length"] = len(terms.phrases[0])
    return parameters


_PROPERTY_LIST = ", ".join(f"p.{c.name}" for c in PROPERTY_COLUMNS)
_LOCALITY_LIST = ", ".join(f"l.{c.name}" for c in LOCALITY_COLUMNS)


_TSQUERY = "CAST(CAST(:{} AS text) AS tsquery)"


_NO_MATCH = '"0 0"'
"""An FTS5 phrase no key holds (a key's tokens never repeat a lone 0 twice in a row)."""


def _candidates(dialect: str, select: str, source: str, match: str) -> str:
    """The WHERE of the candidates' CTE: matching `match`, from `source` ('{match}')."""
    if dialect == "postgresql":
        return f"{select} WHERE to_tsvector('simple', {source}) @@ {_TSQUERY.format(match)}"
    if match == "match_typos":
        # SQLite would run the long MATCH before the NOT EXISTS: the MATCH argument itself
        # is one that finds nothing (at once) when the exact candidates are there.
        gate = f"CASE WHEN EXISTS (SELECT 1 FROM exact) THEN '{_NO_MATCH}' ELSE :{match} END"
        return f"{select} WHERE {source} MATCH {gate}"
    return f"{select} WHERE {source} MATCH :{match}"


def _ranked(dialect: str, select: str, source: str, live: str, score: str) -> str:
    """Candidates without typos; only when there are none, candidates with them (PostgreSQL
    runs the second scan only then: a one-time filter); scored, the best `limit` kept."""
    exact = _candidates(dialect, select, source, "match")
    typos = _candidates(dialect, select, source, "match_typos")
    return f"""
WITH exact AS MATERIALIZED (
    {exact}{live} LIMIT :candidates
), typos AS MATERIALIZED (
    {typos}{live} AND NOT EXISTS (SELECT 1 FROM exact) LIMIT :candidates
), hits AS (
    SELECT * FROM exact UNION ALL SELECT * FROM typos
), ranked AS (
    SELECT h.id, {score} AS score FROM hits h ORDER BY score DESC, h.id
    LIMIT :limit
)"""


def _address_statement(dialect: str, phrases: int, words: int) -> sa.TextClause:
    score = _score_sql("h.search_key", phrases, words)
    if dialect == "postgresql":
        # The WHERE repeats ix_properties_search's expression and predicate, so the GIN
        # index answers it.
        select, source = "SELECT p.id, p.search_key FROM properties p", "p.search_key"
    else:
        select = (
            "SELECT p.id, p.search_key FROM property_search f JOIN properties p ON p.id = f.rowid"
        )
        source = "property_search"
    ranked = _ranked(dialect, select, source, " AND p.deleted_at IS NULL", score)
    return sa.text(
        f"""{ranked}
SELECT {_PROPERTY_LIST}, {_LOCALITY_LIST}, r.score
FROM ranked r
JOIN properties p ON p.id = r.id
JOIN localities l ON l.id = p.locality_id
ORDER BY r.score DESC, r.id"""
    )


async def search_addresses(db: Database, terms: SearchTerms, limit: int) -> list[AddressHit]:
    statement = cached_statement(
        ("search_addresses", db.dialect, len(terms.phrases), len(terms.words)),
        lambda: _address_statement(db.dialect, len(terms.phrases), len(terms.words)),
    )
    parameters = {
        "candidates": MAX_CANDIDATES,
        "limit": limit,
        **_match_parameters(db, terms),
        **_score_parameters(terms),
    }
    rows = await db.fetch_all(statement, parameters, prepared=True)
    width, localities = len(PROPERTY_COLUMNS), len(LOCALITY_COLUMNS)
    return [
        AddressHit(
            PropertyRecord(*row[:width]),
            LocalityRecord(*row[width : width + localities]),
            float(row[-1]),
        )
        for row in rows
    ]


def _locality_statement(dialect: str, phrases: int, words: int) -> sa.TextClause:
    score = _score_sql("h.search_key", phrases, words)
    if dialect == "postgresql":
        select = f"SELECT l.id, {LOCALITY_KEY_SQL} AS search_key FROM localities l"
        source = LOCALITY_KEY_SQL
    else:
        select = (
            f"SELECT l.id, {LOCALITY_KEY_SQL} AS search_key FROM locality_search f"
            " JOIN localities l ON l.id = f.rowid"
        )
        source = "locality_search"
    ranked = _ranked(dialect, select, source, "", score)
    return sa.text(
        f"""{ranked}
SELECT {_LOCALITY_LIST}, r.score
FROM ranked r JOIN localities l ON l.id = r.id
ORDER BY r.score DESC, r.id"""
    )


async def search_localities(db: Database, terms: SearchTerms, limit: int) -> list[LocalityHit]:
    statement = cached_statement(
        ("search_localities", db.dialect, len(terms.phrases), len(terms.words)),
        lambda: _locality_statement(db.dialect, len(terms.phrases), len(terms.words)),
    )
    parameters = {
        "candidates": MAX_CANDIDATES,
        "limit": limit,
        **_match_parameters(db, terms),
        **_score_parameters(terms),
    }
    rows = await db.fetch_all(statement, parameters, prepared=True)
    width = len(LOCALITY_COLUMNS)
    return [LocalityHit(LocalityRecord(*row[:width]), float(row[-1])) for row in rows]


REFRESH_PROPERTY_KEY = sa.text(
    f"""UPDATE properties SET search_key = (
    SELECT {property_key_sql("properties", "l")} FROM localities l
    WHERE l.id = properties.locality_id
) WHERE id = :id"""
)
"""After a write that changed a property's address fields (db/repositories/writes.py)."""


def property_ids(hits: Sequence[AddressHit]) -> list[int]:
    return [hit.property.id for hit in hits]
