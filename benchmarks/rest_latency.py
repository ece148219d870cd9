"""REST search latency with one client, next to the cost of the search itself.

Starts ``app.py --no-build`` on a free port in its own process (without a login), then asks
questions of the question set through ``GET /api/search`` (k=5) over one keep-alive HTTP
connection, each once so no query cache helps: some in hybrid mode (the default) and others
in keyword mode, whose search takes about a millisecond, so its round trip shows what the web
layer itself costs.
Each response carries ``took_ms``, the time ``Assistant.search`` took inside the server, so
round trip and search are measured on the same requests.

    flock /tmp/nexus-timing.lock .venv/bin/python -m benchmarks.rest_latency --index index \\
        --json benchmarks/results/rest_latency.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from assistant.evaluation import load_questions
from benchmarks.common import QUESTIONS_FILE, report, served_index


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=Path("index"))
    parser.add_argument("--questions", type=Path, default=QUESTIONS_FILE)
    parser.add_argument("--limit", type=int, default=120, help="Questions per half.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    questions = [q.question for q in load_questions(args.questions)]
    hybrid, keyword = questions[0::2][: args.limit], questions[1::2][: args.limit]
    # Served without a login, whatever NEXUS_AUTH_USER says: this client sends none.
    with (
        served_index(args.index, startup_timeout=300, auth=False) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        for _ in range(5):  # warm the model and the connection with a throwaway query
            client.get("/api/search", params={"q": "warm up the model", "k": 5})
        result: dict[str, object] = {"health": client.get("/api/health").json()}
        for mode, batch in (("hybrid", hybrid), ("keyword", keyword)):
            round_trip, inside = [], []
            for q in batch:
                tick = time.perf_counter()
                response = client.get("/api/search", params={"q": q, "k": 5, "mode": mode})
                round_trip.append(time.perf_counter() - tick)
                response.raise_for_status()
                inside.append(response.json()["took_ms"] / 1000)
            result[mode] = {
                "rest_round_trip": _summary(round_trip),
                "search_inside_the_server": _summary(inside),
                "web_layer_p50_ms": round(
                    float(np.median(np.array(round_trip) - np.array(inside))) * 1000, 2
                ),
            }
    result["load_average_after"] = os.getloadavg()
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
