"""Run a sentence-transformers model with ONNX Runtime instead of PyTorch.

The model's transformer is exported once per machine with ``torch.onnx.export``, its
attention, layer norms and GELU fused by ONNX Runtime's transformer optimizer (and optionally
quantized to int8), into a folder of the shared export cache (``Settings.encoder_cache``),
together with its tokenizer and a ``meta.json`` that says how to pool. Pooling and
normalization happen in numpy. Later processes load that folder without importing PyTorch or
transformers, which makes them start and answer faster; a
machine without PyTorch at all (a slim container) serves from an export made elsewhere.

The folder's name carries a key over the model's files, the backend, the export recipe and the
library versions, so a changed model or recipe gets a fresh export and a stale one is never
used. A second key leaves the libraries out and names only what was exported: where PyTorch
is missing and no export can be made, an export of the same model files made with other
library versions is served instead. An export is checked against the PyTorch model before it
is published, and a model the recipe cannot reproduce raises :class:`ExportError` (the caller
falls back to PyTorch).

Layout::

    ~/.cache/nexus/encoders/<model>-<backend>-<key>/
        model.onnx        the transformer: input_ids, attention_mask → token embeddings
        tokenizer.json    the model's fast tokenizer
        meta.json         keys, pooling, window, prompts and the check cosines
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from ..errors import MissingDependencyError

__all__ = ["ONNX_BACKENDS", "ExportError", "OnnxEncoder", "load_onnx_encoder"]

log = logging.getLogger(__name__)

ONNX_BACKENDS = ("onnx", "onnx-int8")
# Bump when the export or quantization recipe changes: the key changes and caches re-export.
RECIPE = 2
# Weight matrices left in float by int8 quantization: patterns searched in ONNX node names.
INT8_FLOAT_MATMULS: tuple[str, ...] = ()
MODEL_FILE, TOKENIZER_FILE, META_FILE = "model.onnx", "tokenizer.json", "meta.json"
# What makes an export but is not needed to run one.
EXPORTERS = ("torch", "sentence-transformers")
_POOLINGS = ("mean", "cls", "max")
# Texts the export must reproduce: short and long, code, accents, stray whitespace.
CHECK_TEXTS = (
    "How do I invalidate a cache after the database changes?",
    "  select_for_update() locks rows until the end of the transaction.  ",
    "Café au lait, naïve façade — über résumé",
    "def handler(request):\n    return JsonResponse({'ok': True}, status=201)",
    " ".join(["Connection pooling keeps database sockets open between requests."] * 40),
)
# An fp32 export matches PyTorch to float rounding. int8 moves vectors a little (lowest cosine
# about 0.98 on these texts, see benchmarks/studies/backends.md); a broken quantization far more.
_CHECK_COSINE = {"onnx": 0.9999, "onnx-int8": 0.95}


class ExportError(Exception):
    """The model cannot be run with ONNX Runtime by this recipe; use PyTorch instead."""


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            "the onnx backends need onnxruntime and onnx; run "
            "`pip install 'nexus-assistant[onnx]'` or choose --backend torch"
        ) from exc
    return onnxruntime


class OnnxEncoder:
    """An exported model folder served by ONNX Runtime; vectors as the PyTorch model gives.

    Args:
        folder: A folder written by :func:`load_onnx_encoder` (model, tokenizer, meta).
        batch_size: Texts per forward pass when encoding documents.
        threads: Threads per forward pass; 0 uses every core (bulk encoding then runs one
            single-threaded session per core).

    Raises:
        ExportError: The folder is incomplete or damaged.
        MissingDependencyError: onnxruntime is not installed.
    """

    def __init__(self, folder: Path, *, batch_size: int = 8, threads: int = 0) -> None:
        ort = _onnxruntime()
        from tokenizers import Tokenizer

        self.folder = folder
        self.export = folder.name  # recorded in manifests: which export built an index
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            self.name: str = meta["name"]
            self.backend: str = meta["backend"]
            self.dim: int = int(meta["dim"])
            self.max_tokens: int = int(meta["max_seq_length"]) - 2  # [CLS] and [SEP]
            self._pooling: str = meta["pooling"]
            self._lowercase: bool = bool(meta["lowercase"])
            self._prompts: dict[str, str] = dict(meta["prompts"])
            self._counter = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
            self._session = _session(ort, folder / MODEL_FILE, threads)
        except Exception as exc:  # any damage in a cached folder means: export again
            raise ExportError(f"{folder} is not a usable export ({exc})") from exc
        # The tokenizer file may carry a fixed padding and a shorter cut from training time;
        # the model reads up to max_seq_length and pads per batch.
        self._counter.no_padding()
        self._counter.no_truncation()
        self._tokenizer = Tokenizer.from_str(self._counter.to_str())
        self._tokenizer.enable_truncation(int(meta["max_seq_length"]))
        self.batch_size = batch_size
        self._threads = threads
        self._workers: list[Any] = []  # single-threaded sessions for bulk encoding, made lazily

    def _prepare(self, texts: Sequence[str], kind: Literal["query", "document"]) -> list[str]:
        prompt = self._prompts.get(kind, "")
        prepared = [prompt + text.strip() for text in texts]
        return [text.lower() for text in prepared] if self._lowercase else prepared

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Literal["query", "document"],
        progress: bool = False,
    ) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(self._prepare(texts, kind))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64)
        # Similar lengths share a batch, so little compute goes to padding.
        order = np.argsort(-lengths, kind="stable")
        batches = [order[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        bar = tqdm(total=len(batches), desc="Embedding", unit="batch", disable=not progress)

        def run(session: Any, mine: list[np.ndarray]) -> None:
            for rows in mine:
                ids = np.zeros((len(rows), int(lengths[rows[0]])), dtype=np.int64)
                for r, row in enumerate(rows):
                    ids[r, : lengths[row]] = encodings[row].ids
                mask = (np.arange(ids.shape[1]) < lengths[rows][:, None]).astype(np.int64)
                hidden = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
                out[rows] = _pool(hidden, mask, self._pooling)
                bar.update()

        workers = self._bulk_sessions() if len(batches) > 1 else []
        with bar:
            if len(workers) > 1:
                # One single-threaded session per core, each on its own share of the batches:
                # cores never wait for each other inside a batch, which small batches make costly.
                with ThreadPoolExecutor(len(workers)) as pool:
                    shares = [batches[w :: len(workers)] for w in range(len(workers))]
                    list(pool.map(run, workers, shares))
            else:
                run(self._session, batches)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _bulk_sessions(self) -> list[Any]:
        """Single-threaded sessions, one per core, when ``threads`` leaves the choice to us."""
        cores = os.cpu_count() or 1
        if self._threads != 0 or cores < 2:
            return []
        if not self._workers:
            model = self.folder / MODEL_FILE
            self._workers = [_session(_onnxruntime(), model, 1) for _ in range(min(cores, 8))]
        return self._workers

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encodings = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]


def _session(ort: Any, model: Path, threads: int) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def _pool(hidden: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """Sentence vectors from token vectors, as sentence-transformers' Pooling module does."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask[:, :, None].astype(hidden.dtype)
    if pooling == "max":
        pooled: np.ndarray = np.where(weights > 0, hidden, -np.inf).max(axis=1)
    else:
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return pooled


# --------------------------------------------------------------------------- cache


def load_onnx_encoder(
    name: str,
    location: str,
    *,
    backend: str,
    cache_dir: Path,
    earlier: Sequence[Path] = (),
    batch_size: int = 8,
    threads: int = 0,
    offline: bool = True,
) -> OnnxEncoder:
    """The ONNX encoder for a model, exported into ``cache_dir`` on first use.

    Args:
        name: The model's canonical name, recorded in manifests.
        location: Where sentence-transformers loads it from (a folder or a hub name).
        backend: ``onnx`` (fp32) or ``onnx-int8``.
        cache_dir: Folder holding exports, normally ``Settings.encoder_cache``.
        earlier: Folders that may already hold this export, such as the ``encoders/``
            folder inside indexes built before exports were shared; one found there is
            linked into ``cache_dir`` instead of exported again.
        batch_size: Texts per forward pass.
        threads: ONNX Runtime threads per forward pass; 0 means every core.
        offline: Resolve hub names from the local cache only.

    Raises:
        ExportError: The model cannot be exported or its export does not reproduce it.
        MissingDependencyError: onnxruntime or onnx is not installed, or PyTorch is not and
            ``cache_dir`` holds no export of the model.
    """
    if backend not in ONNX_BACKENDS:
        raise ValueError(f"not an ONNX backend: {backend!r}")
    _onnxruntime()
    folder_of_model = _model_folder(location, offline)
    key, source = _cache_keys(name, backend, folder_of_model)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name.rsplit("/", 1)[-1])[:60]
    target = cache_dir / f"{slug}-{backend}-{key[:16]}"
    if target.is_dir():
        try:
            encoder = OnnxEncoder(target, batch_size=batch_size, threads=threads)
            if _read_key(target) == key:
                _EXPORTS[key] = target
                return encoder
            raise ExportError(f"{target} holds another export")
        except ExportError as exc:
            log.warning("discarding the cached export (%s); exporting again", exc)
            shutil.rmtree(target, ignore_errors=True)
    known = [_EXPORTS.get(key), *(folder / target.name for folder in earlier)]
    if not any(_copy_known_export(key, copy, target) for copy in known if copy):
        if not _exporters_installed():
            made_elsewhere = _export_of_source(cache_dir, f"{slug}-{backend}-", source)
            if made_elsewhere is None:
                raise MissingDependencyError(
                    f"{cache_dir} holds no {backend} export of {name}, and making one needs "
                    f"{' and '.join(EXPORTERS)}: `pip install torch sentence-transformers`"
                )
            return OnnxEncoder(made_elsewhere, batch_size=batch_size, threads=threads)
        _export_atomically(name, folder_of_model, backend, key, source, target)
    _EXPORTS[key] = target
    return OnnxEncoder(target, batch_size=batch_size, threads=threads)


# Exports this process has made or loaded, by key: a load into another cache folder (a test's,
# a Ray worker's) then gets a copy or a hard link instead of a second export of the same model.
_EXPORTS: dict[str, Path] = {}


def _copy_known_export(key: str, source: Path, target: Path) -> bool:
    """Place a copy of the export at ``source`` at ``target``; False if ``source`` holds none."""
    if source == target or _read_key(source) != key:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{secrets.token_hex(3)}"
    try:
        # Exports are never written after publication, so a hard link is as good as a copy.
        shutil.copytree(source, tmp, copy_function=_link_or_copy)
        os.rename(tmp, target)
    except OSError as exc:
        log.warning("could not copy the export at %s (%s); exporting again", source, exc)
        return target.is_dir()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _read_key(folder: Path, field: str = "key") -> str | None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads((folder / META_FILE).read_text(encoding="utf-8"))[field])
    return None


def _exporters_installed() -> bool:
    try:
        for dist in EXPORTERS:
            metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def _export_of_source(cache_dir: Path, prefix: str, source: str) -> Path | None:
    """A published export in ``cache_dir`` of the same model files, backend and recipe."""
    for folder in sorted(cache_dir.glob(f"{prefix}*")):
        if _read_key(folder, "source") == source:
            log.info("serving %s, exported where PyTorch was installed", folder)
            return folder
    return None


def _model_folder(location: str, offline: bool) -> Path:
    """The local folder holding the model's files, downloading it first when online."""
    if Path(location).is_dir():
        return Path(location).resolve()
    from huggingface_hub import snapshot_download

    names = [location] if "/" in location else [location, f"sentence-transformers/{location}"]
    for repo in names:
        with contextlib.suppress(Exception):
            return Path(snapshot_download(repo, local_files_only=offline))
    raise ExportError(f"{location!r} is neither a folder nor a model in the local hub cache")


def _cache_keys(name: str, backend: str, folder: Path) -> tuple[str, str]:
    """The export's key, which changes whenever the model files, the backend, the recipe or
    the exporting libraries do, and its source key, which leaves the libraries out.

    Files are identified by size and modification time, which costs no read of the weights;
    reinstalling identical weights only costs one needless export.
    """
    files = sorted(
        (p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and ".git" not in p.parts
    )
    versions = {}
    for dist in (*EXPORTERS, "onnxruntime", "onnx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    source = {
        "recipe": RECIPE,
        "name": name,
        "backend": backend,
        "float_matmuls": INT8_FLOAT_MATMULS if backend == "onnx-int8" else (),
        "files": files,
    }
    return _digest({**source, "versions": versions}), _digest(source)


def _digest(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _export_atomically(
    name: str, model_folder: Path, backend: str, key: str, source: str, target: Path
) -> None:
    """Export into a temporary folder, check it, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{secrets.token_hex(3)}"
    tmp.mkdir()
    try:
        log.info(
            "exporting %s to ONNX for the %s backend: done once, in about half a minute, "
            "then kept in %s",
            name,
            backend,
            target.parent,
        )
        started = time.perf_counter()
        _export(name, model_folder, backend, key, source, tmp)
        log.info("exported %s in %.0f s", name, time.perf_counter() - started)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # another process won the race; its export is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export(
    name: str, model_folder: Path, backend: str, key: str, source: str, folder: Path
) -> None:
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("exporting a model needs sentence-transformers") from exc
    try:
        # Plain ("eager") attention exports as the operator pattern ONNX Runtime fuses.
        model = SentenceTransformer(
            str(model_folder),
            device="cpu",
            local_files_only=True,
            model_kwargs={"attn_implementation": "eager"},
        )
    except Exception as exc:
        raise ExportError(f"sentence-transformers cannot load it: {exc}") from exc
    meta = _describe(model)
    transformer: Any = model[0].auto_model
    transformer.eval()
    tokenizer = model.tokenizer
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ExportError("the model has no fast tokenizer")
    tokenizer.backend_tokenizer.save(str(folder / TOKENIZER_FILE))

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state

    sample = tokenizer(list(CHECK_TEXTS[:2]), padding=True, return_tensors="pt")
    raw = folder / "raw.onnx"
    axes = {0: "batch", 1: "tokens"}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                TokenEmbeddings(),
                (sample["input_ids"], sample["attention_mask"]),
                str(raw),
                input_names=["input_ids", "attention_mask"],
                output_names=["token_embeddings"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_embeddings": axes},
                opset_version=17,
                dynamo=False,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed: {exc}") from exc
    fp32 = folder / MODEL_FILE if backend == "onnx" else folder / "fp32.onnx"
    _fuse(raw, fp32, transformer.config)
    raw.unlink()
    if backend == "onnx-int8":
        _quantize(fp32, folder / MODEL_FILE)
        fp32.unlink()
    meta.update(name=name, backend=backend, key=key, source=source, recipe=RECIPE)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    meta["check_cosine"] = _check(model, folder, backend)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _describe(model: Any) -> dict[str, Any]:
    """How to turn the transformer's output into the model's vectors, or ExportError."""
    kinds = [type(module).__name__ for module in model]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ExportError(f"modules {kinds} are not Transformer, Pooling[, Normalize]")
    pooling = model[1].pooling_mode
    if pooling not in _POOLINGS:
        raise ExportError(f"pooling {pooling!r} is not one of {', '.join(_POOLINGS)}")
    prompts = {kind: model.prompts.get(kind, "") or "" for kind in ("query", "document")}
    if any(prompts.values()) and not model[1].include_prompt:
        raise ExportError("pooling that leaves out the prompt is not supported")
    if model.max_seq_length is None:
        raise ExportError("the model does not declare its input window")
    return {
        "dim": int(model.get_embedding_dimension()),
        "max_seq_length": int(model.max_seq_length),
        "pooling": pooling,
        "lowercase": bool(getattr(model[0], "do_lower_case", False)),
        "prompts": prompts,
    }


def _check(model: Any, folder: Path, backend: str) -> dict[str, float]:
    """Lowest cosine between PyTorch and export vectors per kind; ExportError when too low."""
    exported = OnnxEncoder(folder)
    lowest: dict[str, float] = {}
    kinds: tuple[tuple[Literal["query", "document"], Any], ...] = (
        ("query", model.encode_query),
        ("document", model.encode_document),
    )
    for kind, method in kinds:
        reference = method(list(CHECK_TEXTS), normalize_embeddings=True, convert_to_numpy=True)
        cosines = np.sum(reference * exported.encode(CHECK_TEXTS, kind=kind), axis=1)
        lowest[kind] = round(float(cosines.min()), 6)
    if min(lowest.values()) < _CHECK_COSINE[backend]:
        raise ExportError(
            f"the {backend} export does not reproduce the model (lowest cosine "
            f"{min(lowest.values()):.4f} < {_CHECK_COSINE[backend]})"
        )
    return lowest


def _fuse(source: Path, target: Path, config: Any) -> None:
    """ONNX Runtime's transformer fusions: attention, layer norms and GELU as single kernels.

    The fused graph computes the same vectors with fewer passes over memory (measured in
    benchmarks/studies/backends.md). A graph the fusions do not recognize is kept as exported.
    """
    from onnxruntime.transformers import optimizer

    try:
        with warnings.catch_warnings(), _quiet("onnxruntime.transformers"):
            warnings.simplefilter("ignore")
            fused = optimizer.optimize_model(
                str(source),
                model_type="bert",
                num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
                hidden_size=int(getattr(config, "hidden_size", 0) or 0),
                opt_level=1,
            )
            fused.save_model_to_file(str(target))
    except Exception as exc:  # an architecture the fusions trip over: keep the plain graph
        log.info("graph fusion skipped (%s)", exc)
        shutil.copyfile(source, target)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a chatty library logger for the duration of a block."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the weight matrices only.

    Per-channel scales follow each output column's own range; the reduced (7-bit) range avoids
    the int16 overflow of AVX2 int8 kernels on CPUs without VNNI. The fused attention's input
    projections are quantized too; matrix products between two activations (attention scores
    and their use) stay in float, where int8 hurts most.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    kept_float = [
        node.name
        for node in graph.node
        if node.op_type == "MatMul"
        and (
            not any(name in weights for name in node.input)
            or any(re.search(pattern, node.name) for pattern in INT8_FLOAT_MATMULS)
        )
    ]
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        op_types_to_quantize=["MatMul", "Attention"],
        nodes_to_exclude=kept_float,
        # Fused operators defeat shape inference; every tensor here is float32.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
