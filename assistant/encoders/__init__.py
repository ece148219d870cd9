"""Encoders turn text into unit-length vectors: the contract, the factory, and the one check
that two encoders give the same vectors.

Backends, each in its own module and imported only when chosen: ``torch``
(sentence-transformers on PyTorch), ``onnx`` (the same model exported to ONNX Runtime, fp32 or
int8) and ``ray`` (a build's embedding fanned out to Ray workers).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ..config import Settings
from ..errors import MissingDependencyError
from .models import canonical_model_name, model_location

__all__ = [
    "PROBE_TEXT",
    "Encoder",
    "TextKind",
    "canonical_model_name",
    "encoder_mismatch",
    "load_encoder",
    "probe_similarity",
    "probe_vector",
    "serving_backend",
]

log = logging.getLogger(__name__)

TextKind = Literal["query", "document"]

# A fixed text whose vector identifies an encoder's behaviour, not just its name: the manifest
# stores it, and a model that embeds it differently cannot serve that index.
PROBE_TEXT = "Nexus probe: how do I invalidate a cache after the database changes?"


class Encoder(Protocol):
    """What the rest of Nexus needs from an embedding model."""

    name: str
    backend: str  # what computes the vectors: torch, onnx, onnx-int8 (or a test double)
    dim: int
    max_tokens: int  # word pieces the model reads per text, special tokens excluded

    def encode(self, texts: Sequence[str], *, kind: TextKind, progress: bool = False) -> np.ndarray:
        """Embed texts as a float32 array of shape (len(texts), dim) with unit-length rows."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text as the model will see them, special tokens excluded."""
        ...


def load_encoder(
    settings: Settings,
    model: str | None = None,
    *,
    cache_dir: Path | None = None,
    earlier_exports: Sequence[Path] = (),
) -> Encoder:
    """The encoder for ``model`` (default: ``settings.model``) on ``settings.backend``.

    An ONNX backend exports the model on first use (see :mod:`assistant.encoders.onnx`). When it
    cannot (onnxruntime missing, a model the export recipe cannot reproduce), the PyTorch
    encoder is returned with a warning that says why: the same vectors as ``onnx``, slower.

    Args:
        settings: Model, backend, device, batch size and offline mode.
        model: Overrides ``settings.model``.
        cache_dir: Where ONNX exports are kept; ``settings.encoder_cache`` by default.
        earlier_exports: Folders an export may already be in (an older index's own
            ``encoders/``); found there, it is linked into the cache rather than made again.

    Raises:
        ConfigError: The model cannot be loaded.
        MissingDependencyError: sentence-transformers is not installed.
    """
    name = model or settings.model
    if settings.backend != "torch":
        from .onnx import ExportError, load_onnx_encoder

        try:
            return load_onnx_encoder(
                canonical_model_name(name),
                model_location(name),
                backend=settings.backend,
                cache_dir=cache_dir or settings.encoder_cache,
                earlier=earlier_exports,
                batch_size=settings.batch_size,
                threads=settings.threads,
                offline=settings.offline,
            )
        except ExportError as exc:
            log.warning(
                "%s cannot run on %s (%s); using torch (pass --backend torch to skip the attempt)",
                name,
                settings.backend,
                exc,
            )
        except MissingDependencyError as exc:
            log.warning("%s; using torch", exc)
    from .torch import SentenceTransformerEncoder

    return SentenceTransformerEncoder(
        name,
        device=settings.device,
        batch_size=settings.batch_size,
        offline=settings.offline,
    )


# Backends whose vectors agree to float rounding, so either can search the other's index.
# int8 vectors sit a little apart (probe cosine below SAME_ENCODER_COSINE), so an int8 index
# is searched with int8 and an fp32 index with an fp32 backend.
_VECTOR_FAMILY = {"torch": "fp32", "onnx": "fp32", "onnx-int8": "int8"}


def serving_backend(requested: str, built_with: str) -> str:
    """The backend to embed queries for an index built with ``built_with``.

    ``requested`` when its vectors match the index's; otherwise the index's own backend, or
    ``onnx`` for an fp32 index when an ONNX backend was asked for (same vectors as ``torch``,
    and the runtime the caller chose).
    """
    family = _VECTOR_FAMILY.get(requested)
    if family is None or family == _VECTOR_FAMILY.get(built_with, family):
        return requested
    if requested in ("onnx", "onnx-int8") and _VECTOR_FAMILY.get(built_with) == "fp32":
        return "onnx"
    return built_with


def probe_vector(encoder: Encoder) -> list[float]:
    """The encoder's vector for :data:`PROBE_TEXT`, rounded for a compact manifest."""
    vector = encoder.encode([PROBE_TEXT], kind="document")[0]
    return [round(float(x), 5) for x in vector]


# Rounding to 5 decimals and float32 noise keep equal models far above this; a different
# model, or the same name with changed weights, falls far below it.
SAME_ENCODER_COSINE = 0.999


def probe_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine between two probe vectors; 0.0 when they cannot be compared."""
    if len(a) != len(b) or not a:
        return 0.0
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = float(np.linalg.norm(va) * np.linalg.norm(vb))
    return float(va @ vb) / norms if norms else 0.0


def encoder_mismatch(
    recorded: Mapping[str, Any], encoder: Encoder, probe: Sequence[float] | None = None
) -> str | None:
    """Why ``encoder`` does not give the vectors of the encoder ``recorded`` describes (a
    manifest's ``encoder`` block: name, dim, probe), or None when it does.

    Names can agree while weights differ (an upgraded model package), so the encoder must
    also reproduce the recorded probe vector. ``probe`` is the encoder's own, when known.
    """
    name, dim = str(recorded.get("name")), int(recorded.get("dim", -1))
    if encoder.name != name or encoder.dim != dim:
        return (
            f"built with {name!r} ({dim} dimensions) but the encoder is {encoder.name!r} "
            f"({encoder.dim} dimensions)"
        )
    own = probe_vector(encoder) if probe is None else probe
    similarity = probe_similarity(recorded.get("probe", []), own)
    if similarity < SAME_ENCODER_COSINE:
        return f"{encoder.name!r} now embeds text differently (probe cosine {similarity:.3f})"
    return None
