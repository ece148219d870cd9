"""The web app: the Gradio chat page, the REST API and what both show.

The only part of Nexus that imports Gradio, FastAPI, uvicorn or prometheus_client. ``render``
turns replies and documents into HTML and JSON, ``service`` is what the app serves (kept
current as builds publish), ``ui`` lays out the page, ``metrics`` counts what the app does for
Prometheus, ``requests`` gives every request an id, a log line and its count, and ``server``
mounts the page beside the REST routes.
"""
