"""Reading a typed address into search terms (db/repositories/search.py runs them).

What people type, and what it becomes (the search key's own normalisation):

* case and punctuation: lower case; apostrophes and quotes dropped ("O'Connell" = "oconnell"),
  any other non-alphanumeric character a space ("2/73" = "2 73");
* unit forms: "unit 2 73", "u2 73", "apt 2 73" = "2 73" (the marker goes, its number stays);
* a number's letter suffix: "110a" and "110 a" both match "110 A" and "110A";
* street types: any spelling in STREET_TYPES matches all of them ("Street" = "St" = "Str");
* as you type: the last token is also a prefix ("newt" finds "newtown"), and a prefix of a
  street type's long spelling ("stre") also matches its abbreviation;
* one typo per word: a word of four letters or more also matches every word one edit away
  (deletion, transposition, substitution, insertion), tried only when nothing matches as
  typed.
"""

from __future__ import annotations

import itertools
import re
import string
from functools import lru_cache

from app.errors import UserInputError
from db.repositories.search import SearchTerms, Term
from db.search_key import CANONICAL_STREET_TYPES, SPELLINGS, STREET_TYPES

MAX_QUERY_LENGTH = 200
MAX_RESULTS = 20
MAX_TERMS = 12
"""Tokens past this many are ignored (an address has fewer)."""
TYPO_MIN_LENGTH = 4

_UNIT_MARKER = re.compile(r"\b(?:unit|units|u|apt|apartment|flat|shop|suite|villa)\s*(?=\d)")
_JOINED = re.compile(r"['\"’`]")
_SPACES = re.compile(r"[^a-z0-9]+")
_SUFFIXED = re.compile(r"^(\d+)([a-z])$")
_LETTERS = string.ascii_lowercase


def check_arguments(query: str, first: int) -> None:
    """BAD_USER_INPUT, naming the argument, for what no search answers."""
    if not query.strip():
        raise UserInputError("`query` must not be empty", argument="query")
    if len(query) > MAX_QUERY_LENGTH:
        raise UserInputError(
            f"`query` must be at most {MAX_QUERY_LENGTH} characters, got {len(query)}",
            argument="query",
        )
    if not 1 <= first <= MAX_RESULTS:
        raise UserInputError(
            f"`first` must be between 1 and {MAX_RESULTS}, got {first}", argument="first"
        )


def tokens(query: str) -> list[str]:
    """The query's tokens, street types canonical but the last (it may be partial)."""
    text = _UNIT_MARKER.sub(" ", _JOINED.sub("", query.lower()))
    raw = _SPACES.sub(" ", text).split()
    joined: list[str] = []
    for position, token in enumerate(raw):
        last = position == len(raw) - 1
        if not last and joined and len(token) == 1 and token.isalpha() and joined[-1].isdigit():
            joined[-1] += token  # "110 a" -> "110a"
            continue
        joined.append(token)
    canonical = [STREET_TYPES.get(t, t) for t in joined[:-1]] + joined[-1:]
    return canonical[:MAX_TERMS]


def typo_variants(word: str) -> set[str]:
    """Every word one edit away (Norvig's edits1, a-z)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    transposes = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    inserts = {a + c + b for a, b in splits for c in _LETTERS}
    return (deletes | transposes | replaces | inserts) - {word, ""}


def _fuzzy(word: str) -> bool:
    return len(word) >= TYPO_MIN_LENGTH and word.isalpha() and word not in CANONICAL_STREET_TYPES


@lru_cache(maxsize=20_000)
def _typos(word: str) -> tuple[str, ...]:
    # Remembered per word: ~50 x len(word) strings, and street and locality names repeat.
    return tuple(sorted(typo_variants(word))) if _fuzzy(word) else ()


def _whole(word: str) -> Term:
    if word in SPELLINGS:
        return Term(SPELLINGS[word])
    suffixed = _SUFFIXED.match(word)
    if suffixed:
        return Term((word,), together=suffixed.groups())
    return Term((word,), typos=_typos(word))


SHORT_PREFIX = 2
"""A last token this short only ranks (the phrase a key begins with), it does not filter: as
a prefix it matches a large part of the index ("st", "20": every Sydney postcode), which
PostgreSQL's GIN index reads in full before anything else."""


def _last(word: str, *, alone: bool) -> tuple[Term | None, list[str]]:
    """The last token: a prefix, its street type reading(s), and (complete, with a typo) the
    words one edit away; None when it is too short to filter by (`alone`: the only token,
    then it filters anyway). Returns the term and the readings a key may end the typed text
    in."""
    canonical = STREET_TYPES.get(word, word if word in CANONICAL_STREET_TYPES else None)
    readings = [word]
    if canonical is not None:
        readings.append(canonical)
    if len(word) >= 2:
        readings.extend(
            sorted({c for spelling, c in STREET_TYPES.items() if spelling.startswith(word)})
        )
    readings = list(dict.fromkeys(readings))
    if len(word) <= SHORT_PREFIX and not alone:
        return None, readings  # "12 smith st", "2 kindra pl north la": the phrase ranks
    exact = SPELLINGS.get(canonical, ()) if canonical is not None else tuple(readings[1:])
    return Term(tuple(dict.fromkeys((*exact, *readings[1:]))), (word,), _typos(word)), readings


def _spellings(word: str) -> list[str]:
    """How the key may write a complete token: "110a" as "110a" or "110 a"."""
    suffixed = _SUFFIXED.match(word)
    return [word, " ".join(suffixed.groups())] if suffixed else [word]


def _first_pattern(typed: list[str]) -> str:
    """LIKE pattern of a key that begins with the first token (a whole token: "2 %" is not
    "20 ..."; a suffixed number either way: "110%")."""
    suffixed = _SUFFIXED.match(typed[0]) if len(typed) > 1 else None
    return f"{suffixed.group(1)}%" if suffixed else f"{typed[0]} %"


def search_terms(typed: list[str]) -> SearchTerms | None:
    """The terms of `tokens(query)`; None when nothing searchable is left (punctuation)."""
    if not typed:
        return None
    *complete, partial = typed
    last, readings = _last(partial, alone=not complete)
    heads = [" ".join(words) for words in itertools.product(*map(_spellings, complete))]
    phrases = tuple(
        dict.fromkeys(f"{head} {reading}".strip() for head in heads[:4] for reading in readings)
    )
    return SearchTerms(
        terms=(*(_whole(word) for word in complete), *([last] if last else [])),
        phrases=phrases,
        first=_first_pattern(typed),
        words=tuple(dict.fromkeys(w for w in complete if _fuzzy(w))),
    )
