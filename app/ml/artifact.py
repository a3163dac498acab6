"""The stored form of a price model: `ARTIFACT_MAGIC` + zlib(pickle(PriceModel)), and the
SHA-256 digest the registry keeps beside it.

Pickle is used because the fitted scikit-learn estimator has no other complete format; it
means loading runs code, so only artifacts this service wrote (to its own `price_models`
table) are ever loaded, and the digest check catches a truncated or altered blob before
unpickling. zlib because the monthly level tables are mostly zeros (~48 MB raw, ~10 MB
compressed).

A pickle names each class by module path. The model classes moved from `app.pricing.*` to
`app.ml.*`; artifacts stored before the move still name the old paths, so loading maps them
(MOVED_CLASSES) instead of keeping the old modules around. Moving a pickled class again
(PriceModel, ValidationMetrics, Levels) needs an entry here.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import zlib
from typing import Any

ARTIFACT_VERSION = 1
"""Stored on the model (`PriceModel.version`); the byte layout below has not changed."""
ARTIFACT_MAGIC = b"propintel-price-model:1:"
"""Prefix of a compressed artifact; a blob without it is read as a bare pickle (the first
artifacts were not compressed)."""

MOVED_CLASSES: dict[tuple[str, str], tuple[str, str]] = {
    # Everything a PriceModel pickle references by the old paths (app/pricing, until the
    # split into app/ml): the model, its metrics and its level tables.
    ("app.pricing.model", "PriceModel"): ("app.ml.model", "PriceModel"),
    ("app.pricing.model", "ValidationMetrics"): ("app.ml.metrics", "ValidationMetrics"),
    ("app.pricing.features", "Levels"): ("app.ml.features", "Levels"),
}


class _Unpickler(pickle.Unpickler):
    """Resolves the classes of MOVED_CLASSES at their current paths."""

    def find_class(self, module: str, name: str) -> Any:
        module, name = MOVED_CLASSES.get((module, name), (module, name))
        return super().find_class(module, name)


def dumps(model: object) -> bytes:
    """The artifact bytes of `model` (pickle protocol 5, zlib level 3)."""
    return ARTIFACT_MAGIC + zlib.compress(pickle.dumps(model, protocol=5), 3)


def loads(data: bytes) -> Any:
    """The object of an artifact (compressed or a bare pickle). Only for artifacts this
    project made: unpickling runs code."""
    if data.startswith(ARTIFACT_MAGIC):
        data = zlib.decompress(data[len(ARTIFACT_MAGIC) :])
    return _Unpickler(io.BytesIO(data)).load()


def sha256(data: bytes) -> str:
    """The hex digest stored beside an artifact (`price_models.artifact_sha256`)."""
    return hashlib.sha256(data).hexdigest()


def check_sha256(data: bytes, expected: str) -> None:
    """Raises ValueError unless `data` has the digest stored with it."""
    if sha256(data) != expected:
        raise ValueError("price model artifact does not match its digest")
