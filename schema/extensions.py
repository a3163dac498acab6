"""Schema extensions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

from db.engine import StatementLog, count_statements


class SqlStatementCount(SchemaExtension):
    """Reports `extensions.sqlStatements`: how many SQL statements the operation sent.
    On outside prod, so tests and developers see N+1 regressions in the response itself."""

    _log: StatementLog | None = None

    def on_operation(self) -> Iterator[None]:
        with count_statements() as log:
            self._log = log
            yield

    def get_results(self) -> dict[str, Any]:
        return {"sqlStatements": self._log.count} if self._log is not None else {}
