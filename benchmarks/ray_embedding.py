"""Embedding throughput in this process versus on a local Ray instance with 1 and 2 workers.

The same seeded sample of Django chunks (``benchmarks.common.django_texts``) is embedded by
three variants on the same CPUs (two by default):

* ``local``: the encoder in this process, as ``nexus build`` runs it, on every core;
* ``ray-1x<cpus>``: ``embed_on_ray`` with one worker holding every core;
* ``ray-<cpus>x1``: ``embed_on_ray`` with one worker per core, one thread each.

Each Ray call is what a build's embed stage pays: it starts its workers, which load the model,
and then embeds. A call on 8 texts, in batches of one so every worker gets some, measures
that start-up alone, so the steady rate after it is also given. Variants take turns, their
order rotating from round to round, and medians over the rounds are reported. The Ray
instance itself is started once, before the clock.

Usage (from the repository root, under the shared lock)::

    flock /tmp/nexus-timing.lock .venv/bin/python -m benchmarks.ray_embedding \\
        --chunks 64 --rounds 2 --json benchmarks/results/ray_embedding.json
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import BACKENDS, DJANGO_INDEX, WORK, command_line, django_texts, report

STARTUP_TEXTS = 8


def _timed(
    embed: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str]
) -> tuple[float, np.ndarray]:
    tick = time.perf_counter()
    vectors = embed(texts)
    return time.perf_counter() - tick, vectors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--django-index", type=Path, default=DJANGO_INDEX)
    parser.add_argument("--work", type=Path, default=WORK / "ray")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import ray
    import torch

    from assistant import Settings
    from assistant.encoders import load_encoder, probe_vector
    from assistant.encoders.ray import EncoderRecipe, embed_on_ray

    settings = Settings(backend=args.backend, index_dir=args.work, threads=args.cpus)
    torch.set_num_threads(args.cpus)
    encoder = load_encoder(settings, cache_dir=args.work / "encoders")
    probe = probe_vector(encoder)
    texts = django_texts(args.django_index, args.chunks)
    word_pieces = sum(encoder.count_tokens(texts))
    encoder.encode(texts[:8], kind="document")  # first-call setup off the clock

    tick = time.perf_counter()
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        logging_level=logging.WARNING,
        _node_ip_address="127.0.0.1",
    )
    ray_init = time.perf_counter() - tick

    def on_ray(workers: int, batch_size: int) -> Callable[[Sequence[str]], np.ndarray]:
        # threads=0: each worker runs as many threads as the CPUs it is given.
        ray_settings = settings.replace(
            executor="ray", ray_workers=workers, threads=0, batch_size=batch_size
        )
        recipe = EncoderRecipe(ray_settings, args.work / "encoders")
        return lambda part: embed_on_ray(part, recipe, probe=probe, dim=encoder.dim)

    variants: dict[str, Callable[[Sequence[str]], np.ndarray]] = {
        "local": lambda part: encoder.encode(part, kind="document"),
        f"ray-1x{args.cpus}": on_ray(1, settings.batch_size),
        f"ray-{args.cpus}x1": on_ray(args.cpus, settings.batch_size),
    }
    # Start-up alone: a few texts in batches of one, so that every worker gets some.
    starts = {
        f"ray-1x{args.cpus}": on_ray(1, 1),
        f"ray-{args.cpus}x1": on_ray(args.cpus, 1),
    }
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    startup: dict[str, list[float]] = {name: [] for name in starts}
    vectors: dict[str, np.ndarray] = {}
    for round_ in range(args.rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            elapsed, vectors[name] = _timed(variants[name], texts)
            seconds[name].append(elapsed)
            if name in startup:
                startup[name].append(_timed(starts[name], texts[:STARTUP_TEXTS])[0])
            print(f"round {round_ + 1} {name}: {elapsed:.1f}s", file=sys.stderr)
    ray.shutdown()

    base = statistics.median(seconds["local"])
    results: dict[str, Any] = {
        "command": command_line("benchmarks.ray_embedding"),
        "backend": args.backend,
        "cpus": args.cpus,
        "chunks": len(texts),
        "word_pieces": word_pieces,
        "rounds": args.rounds,
        "ray_init_s": round(ray_init, 2),
        "variants": {},
    }
    for name in names:
        median = statistics.median(seconds[name])
        row: dict[str, Any] = {
            "seconds": [round(s, 2) for s in seconds[name]],
            "median_s": round(median, 2),
            "chunks_per_s": round(len(texts) / median, 2),
            "vs_local": round(base / median, 2),
        }
        if name in startup:
            start = statistics.median(startup[name])
            row["startup_seconds"] = [round(s, 2) for s in startup[name]]
            row["median_startup_s"] = round(start, 2)
            row["chunks_per_s_after_startup"] = round(len(texts) / max(median - start, 1e-9), 2)
            # The vectors themselves: every variant must give the local ones.
            difference = np.abs(vectors[name] - vectors["local"]).max()
            row["max_abs_difference_vs_local"] = float(difference)
        results["variants"][name] = row
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
