#!/usr/bin/env python3
"""The image's health check: exit 0 when ``/api/health`` answers ``"status": "ok"``.

It signs in when ``NEXUS_AUTH_USER`` and ``NEXUS_AUTH_PASSWORD`` are set, as every route then
asks, and exits 1 on any other answer: no answer yet, a refused login, or ``degraded`` (the
Milvus server behind the replica is not serving), so a load balancer stops sending it work.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.request

URL = "http://127.0.0.1:7860/api/health"


def main() -> int:
    request = urllib.request.Request(URL)
    user, password = os.environ.get("NEXUS_AUTH_USER"), os.environ.get("NEXUS_AUTH_PASSWORD")
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    # No proxy: a proxy set for the container's outgoing traffic must not answer for it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            health = json.load(response)
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    status, problem = health.get("status"), (health.get("store") or {}).get("problem")
    print(f"{status}: {problem}" if problem else status)
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
