"""The per-request context every resolver receives as `info.context`."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from strawberry.types import Info as StrawberryInfo

from app.settings import Settings
from db.engine import Database
from loaders import Loaders


@dataclass(slots=True)
class Context:
    request: Request
    response: Response | None
    db: Database
    settings: Settings
    loaders: Loaders


Info = StrawberryInfo[Context, None]
