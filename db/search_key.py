"""The search key: a property's (or locality's) address normalised for search, as SQL.

"2 73 smith st newtown nsw 2042": lower case, punctuation gone, street types in one
spelling, locality, state and postcode. One SQL expression (`key_sql`: lower, replace and
|| only, so both dialects run it) builds it wherever it is written: the ingest's upsert
(db/ingest/merge_sql.py), `update_property` (db/repositories/writes.py), migration 0006, and
PostgreSQL's expression index over localities. app/search normalises a query with the same
table of street types. Here, not in db/repositories/search.py: the ingest imports it, and
the repositories import the ingest's records.
"""

from __future__ import annotations

# Spellings of a street type -> the one the search key holds (the Valuer General's own
# abbreviation where it has one, so most keys need no replacement).
STREET_TYPES: dict[str, str] = {
    "street": "st",
    "str": "st",
    "road": "rd",
    "avenue": "ave",
    "av": "ave",
    "drive": "dr",
    "drv": "dr",
    "place": "pl",
    "crescent": "cres",
    "cr": "cres",
    "cresc": "cres",
    "court": "ct",
    "crt": "ct",
    "highway": "hwy",
    "parade": "pde",
    "la": "lane",
    "ln": "lane",
    "close": "cl",
    "terrace": "tce",
    "ter": "tce",
    "boulevard": "bvd",
    "boulevarde": "bvd",
    "blvd": "bvd",
    "circuit": "cct",
    "grove": "gr",
    "square": "sq",
    "esplanade": "esp",
    "wy": "way",
    "parkway": "pkwy",
    "circle": "cir",
    "arcade": "arc",
    "mews": "mews",
    "glade": "gld",
    "promenade": "prom",
    "rise": "rise",
    "track": "trk",
    "walk": "walk",
}
CANONICAL_STREET_TYPES = frozenset(STREET_TYPES.values())
SPELLINGS: dict[str, tuple[str, ...]] = {
    canonical: (canonical, *sorted(s for s, c in STREET_TYPES.items() if c == canonical != s))
    for canonical in sorted(CANONICAL_STREET_TYPES)
}
"""Every spelling of a canonical street type (the query matches any of them)."""

# The long spellings the key rewrites, the ones the Valuer General's records use now and then
# ("SMITH STREET" beside "SMITH ST"). Not all of STREET_TYPES: SQLite's parser allows ~30
# nested calls, and a query's street type matches every spelling anyway (SPELLINGS); these
# make the key's canonical form, for the score's "begins with what was typed".
KEY_SPELLINGS = (
    "street",
    "road",
    "avenue",
    "drive",
    "place",
    "crescent",
    "court",
    "close",
    "parade",
    "highway",
    "circuit",
    "terrace",
)

# Characters the key drops (joins) and the ones it reads as a space. The query side
# (app/search) reads every other non-alphanumeric character as a space too.
_JOINED = ("'", '"')
_SPACED = ("/", "-", ",", ".")


def key_sql(*parts: str) -> str:
    """The SQL expression of a search key: `parts` are SQL text expressions (NULLs allowed)
    joined by spaces, normalised as the query side normalises what people type."""
    text = " || ' ' || ".join(f"coalesce({part}, '')" for part in parts)
    text = f"lower(' ' || {text} || ' ')"
    for char in _JOINED:
        quoted = char.replace("'", "''")
        text = f"replace({text}, '{quoted}', '')"
    for char in _SPACED:
        text = f"replace({text}, '{char}', ' ')"
    for _ in range(2):  # runs of up to four spaces (three parts missing) become one
        text = f"replace({text}, '  ', ' ')"
    for spelling in KEY_SPELLINGS:
        text = f"replace({text}, ' {spelling} ', ' {STREET_TYPES[spelling]} ')"
    return f"trim({text})"


def property_key_sql(property_alias: str, locality_alias: str) -> str:
    """The key of a property row (`property_alias`) in its locality (`locality_alias`)."""
    p, loc = property_alias, locality_alias
    return key_sql(
        f"{p}.unit_number",
        f"{p}.house_number",
        f"coalesce({p}.street_name, {p}.property_name)",
        f"{loc}.name",
        f"{loc}.state",
        f"{loc}.postcode",
    )


LOCALITY_KEY_SQL = key_sql("name", "state", "postcode")
"""A locality's key, over the unqualified columns (PostgreSQL's expression index names it)."""
