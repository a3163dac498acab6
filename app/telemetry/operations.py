"""The operation names metrics may carry as a label: the ones our own clients send (the web
app, the bench, the docs' examples) plus PROPINTEL_METRICS_OPERATIONS. Any other name is
`other`, so a client cannot grow the number of series by naming operations."""

from __future__ import annotations

from collections.abc import Iterable

OTHER = "other"
ANONYMOUS = "anonymous"
"""An operation without a name."""

KNOWN_OPERATIONS = frozenset(
    {
        # bench/run's queries (bench/graphql.lua, bench/run.py)
        "Q1",
        "Q2",
        "Q3",
        "Q4",
        "Q2R",
        # the web app (web/, issue 17) and the docs
        "SearchAddresses",
        "SuggestLocalities",
        "Property",
        "PropertyPage",
        "Locality",
        "LocalityPage",
        "Properties",
        "Localities",
        "Estimate",
        "Me",
        "Login",
        "Register",
        "Refresh",
        "SavedSearches",
        "Watches",
        "Alerts",
        "AlertsLive",
        "CacheStats",
        "DatabaseInsights",
        "ExplainOperation",
    }
)


class OperationNames:
    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.allowed = KNOWN_OPERATIONS | frozenset(extra)

    def label(self, name: str | None) -> str:
        if not name:
            return ANONYMOUS
        return name if name in self.allowed else OTHER
