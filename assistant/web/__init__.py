"""The web app: the Gradio chat page, the REST API and what both show.

The only part of Nexus that imports Gradio, FastAPI or uvicorn. ``render`` turns replies and
documents into HTML and JSON, ``service`` is what the app serves (kept current as builds
publish), ``ui`` lays out the page and ``server`` mounts it beside the REST routes.
"""
