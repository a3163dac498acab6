r"""The GraphQL documents the web app sends, read from its sources (web/app/src), so that the
load is what the app sends and follows it when the app changes.

The app writes each document as a TypeScript constant (`const PROPERTY = \`query Property(...)
{ ... ${SALE_FIELDS} ... }\``); string constants are substituted into the templates that name
them, and every document is parsed with graphql-core (a document that no longer parses fails
here, at start, not as a stream of errors under load).
"""

from __future__ import annotations

import re
from pathlib import Path

from graphql import OperationDefinitionNode, parse

SOURCES = Path(__file__).resolve().parents[2] / "web" / "app" / "src"
_CONSTANT = re.compile(r'\bconst ([A-Z][A-Z0-9_]*) = (`(?:[^`\\]|\\.)*`|"(?:[^"\\]|\\.)*");', re.S)
_SUBSTITUTION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def _constants(text: str) -> dict[str, str]:
    return {name: literal[1:-1] for name, literal in _CONSTANT.findall(text)}


def _substitute(template: str, constants: dict[str, str]) -> str:
    return _SUBSTITUTION.sub(lambda match: constants[match.group(1)], template)


def app_documents(sources: Path = SOURCES) -> dict[str, str]:
    """Every operation the app's pages and session send, by operation name (`Property`,
    `Suggest`, `Me`, ...)."""
    documents: dict[str, str] = {}
    for path in sorted(sources.rglob("*.ts")):
        constants = _constants(path.read_text(encoding="utf-8"))
        for value in constants.values():
            text = _substitute(value, constants)
            if not re.match(r"\s*(query|mutation|subscription)\b", text):
                continue
            operation = parse(text).definitions[0]
            assert isinstance(operation, OperationDefinitionNode)
            assert operation.name, f"{path}: an operation without a name"
            documents[operation.name.value] = text
    return documents


def require(documents: dict[str, str], *names: str) -> dict[str, str]:
    """The named documents; a clear error when the app no longer sends one."""
    missing = [name for name in names if name not in documents]
    if missing:
        raise SystemExit(
            f"web/app/src no longer defines the operations {', '.join(missing)} "
            f"(found: {', '.join(sorted(documents))}): update bench/load/locustfile.py"
        )
    return {name: documents[name] for name in names}
