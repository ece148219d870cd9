"""The Gradio chat UI: a thin shell over :mod:`.render` and :class:`NexusService`.

Everything the page shows is computed by tested functions in ``assistant/``; this module only
lays out components and wires events. Its API endpoints have stable names for
``gradio_client``: ``/ask`` (a chat reply as JSON) and ``/search`` (passages as JSON); the same
two are the MCP tools ``ask`` and ``search``, described by their docstrings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import gradio as gr

from ..config import SEARCH_MODES, SearchMode, Settings
from ..errors import AssistantError
from ..search.conversation import message_text
from ..search.query import MAX_K
from .collections import Collections
from .render import (
    DOCUMENT_COLUMNS,
    catalog_summary,
    escape_markdown,
    hit_dict,
    render_answer,
    render_passages,
    reply_dict,
    unescape_markdown,
)
from .service import IndexStatus, NexusService

__all__ = ["EXAMPLES", "UI_CSS", "build_ui", "status_markdown"]

ALL_CATEGORIES = "All"
STATUS_EVERY_S = 5.0  # how often a page of a watching server re-reads the index status
MCP_PATH = "/gradio_api/mcp"  # where Gradio serves MCP (streamable HTTP)

EXAMPLES = (
    "How do I prevent race conditions when two users update the same row?",
    "When should I invalidate a cached value?",
    "How do multi-stage builds make a Docker image smaller?",
    "What is the difference between select_related and prefetch_related?",
    "How should I version a REST API?",
)

UI_CSS = """
.nexus-card { border: 1px solid #d0d7de; border-radius: 8px; padding: .6rem .8rem;
  margin: .5rem 0; background: var(--background-fill-primary, #fff); }
.nexus-card-head { font-size: 1rem; }
.nexus-num { color: #6b7280; font-weight: 600; }
.nexus-path { color: #4b5563; }
.nexus-card-meta { font-size: .85rem; color: #6b7280; margin: .15rem 0 .4rem; }
.nexus-card-body { font-size: .92rem; max-height: 22rem; overflow: auto; }
.nexus-card-body pre, .nexus-document pre { white-space: pre; overflow-x: auto; }
mark { background: #fde68a; color: inherit; padding: 0 .1em; border-radius: 2px; }
.nexus-passage { display: block; background: #fef9c3; border-left: 4px solid #eab308;
  padding-left: .5rem; }
.nexus-warning { border: 1px solid #f59e0b; background: #fffbeb; border-radius: 8px;
  padding: .5rem .8rem; }
"""


def status_markdown(status: IndexStatus) -> str:
    """The index status panel: counts, model, when the index last changed and what that build
    took in, what the watcher is doing, and whether the corpus changed since."""
    update = status.update
    built = f"Index updated {escape_markdown(_when(status.built_at))}"
    if status.last_build:
        taken, removed = status.taken_in, status.last_build.get("removed", 0)
        built += f": took in {_count(taken, 'file')}, removed {removed}"
    lines = [
        f"**{status.documents:,}** documents · **{status.chunks:,}** passages",
        f"Model: {escape_markdown(status.model)}",
        built,
    ]
    if update.building:
        lines.append("⏳ Updating the index with the latest changes…")
    elif update.watching:
        lines.append("**Live**: changes to the corpus are indexed as they are saved")
    if update.problem:
        lines.append(
            f"⚠️ **The last update failed** ({escape_markdown(_when(update.failed or ''))}): "
            f"{escape_markdown(update.problem)}. The index above keeps serving."
        )
    if status.reload_problem:
        lines.append(
            f"⚠️ A newer index could not be opened ({escape_markdown(status.reload_problem)}); "
            "the index above keeps serving."
        )
    if status.skipped:
        lines.append(f"{_count(status.skipped, 'file')} not indexed: see Documents for why")
    if status.changes is not None and status.changes.stale:
        changed = status.changes.summary().removeprefix("changed since the build: ")
        warning = (
            f"⚠️ **The corpus changed since this index was built**: {escape_markdown(changed)}."
        )
        if update.watching and not update.problem:
            lines.append(f"{warning} The watcher is taking the changes in.")
        else:
            lines.append(
                f"{warning} Rebuild with\n\n```\n{status.rebuild_command}\n```\n\nThe app "
                "switches to the new index without a restart."
            )
    elif status.problem:
        lines.append(f"⚠️ Cannot compare with the corpus: {escape_markdown(status.problem)}")
    else:
        lines.append(f"✓ Up to date with {escape_markdown(status.corpus_dir)}")
    return "\n\n".join(lines)


def _categories(collections: Collections, name: str | None = None) -> list[str]:
    """The category choices of a collection; none while it is unavailable."""
    try:
        return collections.get(name).categories()
    except AssistantError:
        return []


def _when(stamp: str) -> str:
    """An ISO 8601 time as people read it: ``2026-12-08 01:40:58 +0000``."""
    day, _, clock = stamp.partition("T")
    for sign in "+-":
        if sign in clock:
            clock, _, zone = clock.partition(sign)
            return f"{day} {clock} {sign}{zone.replace(':', '')}"
    return f"{day} {clock}".strip()


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _category(value: str | None) -> str | None:
    return None if not value or value == ALL_CATEGORIES else value


def _mode(value: str | None) -> SearchMode | None:
    """A search mode from a UI or API value; the search itself rejects unknown ones."""
    return cast(SearchMode, value) if value else None


def _typed_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history with the user's questions as typed (the chat shows them escaped)."""
    return [
        {**m, "content": unescape_markdown(message_text(m.get("content")))}
        if m.get("role") == "user"
        else m
        for m in history
    ]


# What an agent reads about the tools (MCP) and a developer about the API endpoints. Gradio
# takes a tool's description from the lines before "Args:" and each parameter's from its one
# line below it, so every entry stays on one line.
_ASK_DOC = (
    "Answer a question from the documentation the way the Nexus chat does.",
    "Returns JSON: `answered` (false when nothing in the documentation is close enough, with "
    "`related` topics instead), `answer` (sentences quoted from the passages, each with the "
    "`citation` number of its passage), `query` (what was searched: a follow-up is searched "
    "together with the previous question) and `hits`, the passages cited, best first, each "
    "with its `text`, `source` file, `start_line` and `end_line`, `title`, `heading_path` and "
    "`url` of its document view.",
)
_SEARCH_DOC = (
    "Search the documentation for the passages that best answer a query.",
    "Returns a JSON list of passages, best first, each with its `text`, the `source` file and "
    "the lines it comes from (`start_line`, `end_line`; pages for a PDF), `title`, "
    "`heading_path`, `category`, `score`, `relevance` (cosine between query and passage) and "
    "`url` of its document view.",
)


def _for_caller(request: gr.Request | None, data: Any) -> Any:
    """An API endpoint's result as its caller reads it best: JSON text for an MCP client (to
    which Gradio would otherwise hand Python's repr of the data), the data itself for others."""
    path = str(request.url.path) if request is not None else ""
    return json.dumps(data, ensure_ascii=False) if MCP_PATH in path else data


def _docstring(summary: Sequence[str], args: dict[str, str]) -> str:
    body = "\n\n".join(summary)
    return body + "\n\nArgs:\n" + "\n".join(f"    {name}: {text}" for name, text in args.items())


def _tool_args(settings: Settings, collections: Collections) -> dict[str, str]:
    """The parameters the ask and search tools share, described with this server's values."""
    args = {
        "k": f"How many passages to return, 1 to {MAX_K}; default {settings.top_k}.",
        "mode": (
            "How to search: 'hybrid' (default: meaning and keywords together), 'semantic' "
            "(meaning only) or 'keyword' (BM25 on the words only)."
        ),
        "category": "Only passages from this top-level folder of the documentation; '' for all.",
    }
    if len(collections) > 1:
        names = ", ".join(repr(name) for name in collections.names)
        args["collection"] = (
            f"Which documentation collection to use: one of {names}; '' for the default "
            f"({collections.default!r})."
        )
    else:
        args["collection"] = "Leave empty: this server has one collection."
    return args


def build_ui(
    collections: Collections,
    examples: Sequence[str] = EXAMPLES,
    *,
    allow_rebuild: bool = False,
    live_status: bool = False,
) -> gr.Blocks:
    """The chat page over ``collections``.

    Args:
        collections: The collections to answer from; a picker shows when there are several.
        examples: Questions offered under the chat.
        allow_rebuild: Add a Rebuild button to the status panel.
        live_status: Refresh the status panel every few seconds (for servers that watch
            their corpus, so the page shows each update as it lands).
    """
    first = next(collections.services())  # the server opens one at least
    settings = first.settings
    max_chars = settings.max_query_chars

    def service_of(name: str | None) -> NexusService:
        try:
            return collections.get(name or None)
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc

    def link_name(service: NexusService) -> str | None:
        """The collection named in document addresses: none for the default."""
        return None if service.name == collections.default else service.name

    def answer(
        message: str,
        history: list[dict[str, Any]],
        k: float,
        mode: str,
        category: str,
        collection: str,
        turns: dict[str, Any],
    ) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
        history = list(history or [])
        service = service_of(collection)
        try:
            reply = service.ask(
                message,
                _typed_history(history),
                k=int(k),
                mode=_mode(mode),
                category=_category(category),
            )
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc
        link = link_name(service)
        first_new = len(history) + 1
        # Shown escaped, so markup typed into a question stays text.
        history.append({"role": "user", "content": escape_markdown(reply.question)})
        history.append({"role": "assistant", "content": render_answer(reply, link)})
        if reply.answered:
            history.append({"role": "assistant", "content": render_passages(reply, link)})
        record = {**reply_dict(reply, link), "collection": service.name}
        turns = {key: v for key, v in (turns or {}).items() if int(key) < first_new - 1}
        turns.update({str(i): record for i in range(first_new, len(history))})
        return history, "", turns

    def retry(
        history: list[dict[str, Any]],
        k: float,
        mode: str,
        category: str,
        collection: str,
        turns: dict[str, Any],
        data: gr.RetryData,
    ) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
        index = data.index if isinstance(data.index, int) else data.index[0]
        users = [i for i, m in enumerate(history[: index + 1]) if m.get("role") == "user"]
        if not users:
            return history, "", turns
        last = users[-1]
        message = unescape_markdown(message_text(history[last]["content"]))
        return answer(message, history[:last], k, mode, category, collection, turns)

    def vote(turns: dict[str, Any], data: gr.LikeData) -> None:
        index = data.index if isinstance(data.index, int) else data.index[0]
        record = (turns or {}).get(str(index))
        if record is None or first.feedback is None or data.liked in (None, ""):
            return
        up = data.liked is True or data.liked == "Like"
        first.feedback.record(record, "up" if up else "down")
        gr.Info("Thanks, your feedback was recorded.")

    def refresh_status(collection: str, category: str) -> tuple[str, Any, Any]:
        """Status, stale-corpus banner and category choices of the chosen collection."""
        try:
            service = collections.get(collection or None)
        except AssistantError as exc:
            return (
                f"⚠️ {escape_markdown(str(exc))}",
                gr.update(visible=False),
                gr.update(choices=[ALL_CATEGORIES], value=ALL_CATEGORIES),
            )
        status = service.status(refresh=True)
        warning = (
            f"⚠️ The corpus changed since the index was built. Rebuild with "
            f"`{status.rebuild_command}`"
        )
        choices = [ALL_CATEGORIES, *_categories(collections, service.name)]
        return (
            status_markdown(status),
            gr.update(value=warning, visible=status.stale and not status.update.watching),
            gr.update(choices=choices, value=category if category in choices else ALL_CATEGORIES),
        )

    def show_catalog(query: str, collection: str) -> tuple[str, list[list[Any]], list[list[str]]]:
        """The Documents tab: a summary line, the documents matching the filter, the skips."""
        try:
            service = collections.get(collection or None)
        except AssistantError as exc:
            return f"⚠️ {escape_markdown(str(exc))}", [], []
        documents, skipped = service.catalog(query or ""), service.skipped()
        return (
            catalog_summary(documents, skipped, filtered=bool((query or "").strip())),
            [[d.source, d.title, d.format, d.category, d.passages] for d in documents],
            [list(row) for row in skipped],
        )

    def rebuild(collection: str, category: str) -> tuple[str, Any, Any]:
        gr.Info(service_of(collection).rebuild())
        return refresh_status(collection, category)

    def ask(
        question: str,
        history: list[dict[str, Any]] | None = None,
        k: int = settings.top_k,
        mode: str = settings.mode,
        category: str = "",
        collection: str = "",
        request: gr.Request | None = None,
    ) -> dict[str, Any]:
        try:
            service = collections.get(collection or None)
            reply = service.ask(
                question, history, k=k, mode=_mode(mode), category=_category(category)
            )
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc
        answer = {**reply_dict(reply, link_name(service)), "collection": service.name}
        return cast(dict[str, Any], _for_caller(request, answer))

    def search(
        query: str,
        k: int = settings.top_k,
        mode: str = settings.mode,
        category: str = "",
        collection: str = "",
        request: gr.Request | None = None,
    ) -> list[dict[str, Any]]:
        try:
            service = collections.get(collection or None)
            hits = service.search(query, k, _mode(mode), _category(category))
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc
        found = [hit_dict(h, link_name(service)) for h in hits]
        return cast(list[dict[str, Any]], _for_caller(request, found))

    shared = _tool_args(settings, collections)
    ask.__doc__ = _docstring(
        _ASK_DOC,
        {
            "question": f"The question, in plain language, at most {max_chars:,} characters.",
            "history": (
                "Earlier messages of the conversation, oldest first, as {'role', 'content'} "
                "objects; a follow-up such as 'and how do I test it?' borrows the last question."
            ),
            **shared,
        },
    )
    search.__doc__ = _docstring(
        _SEARCH_DOC,
        {"query": f"A question or keywords, at most {max_chars:,} characters.", **shared},
    )

    with gr.Blocks(title="Nexus", fill_height=True) as demo:
        turns = gr.State({})
        gr.Markdown(
            "# Nexus\nAsk a question about backend engineering; Nexus answers from the "
            "knowledge base and shows the passages it used, with their sources."
        )
        banner = gr.Markdown(visible=False, elem_classes="nexus-warning", elem_id="nexus-banner")
        with gr.Tab("Chat", elem_id="nexus-tab-chat"), gr.Row(equal_height=False):
            with gr.Column(scale=4):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    elem_id="nexus-chat",
                    height=640,
                    buttons=["copy", "copy_all"],
                    latex_delimiters=[],
                    feedback_options=("Like", "Dislike"),
                    placeholder="Ask a question, or pick an example below.",
                    sanitize_html=True,
                )
                with gr.Row():
                    box = gr.Textbox(
                        placeholder="How do I invalidate a cache when the data changes?",
                        show_label=False,
                        elem_id="nexus-question",
                        scale=8,
                        autofocus=True,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="nexus-ask")
                    clear = gr.Button("Clear", scale=1, elem_id="nexus-clear")
                gr.Examples(examples=[[q] for q in examples], inputs=[box], label="Examples")
            with gr.Column(scale=1, min_width=260):
                with gr.Accordion("Search settings", open=True):
                    collection = gr.Dropdown(
                        collections.names,
                        value=collections.default,
                        label="Collection",
                        visible=len(collections) > 1,
                        elem_id="nexus-collection",
                    )
                    k = gr.Slider(1, 10, value=min(settings.top_k, 10), step=1, label="Passages")
                    mode = gr.Radio(list(SEARCH_MODES), value=settings.mode, label="Search mode")
                    category = gr.Dropdown(
                        [ALL_CATEGORIES, *_categories(collections)],
                        value=ALL_CATEGORIES,
                        label="Category",
                        elem_id="nexus-category",
                    )
                with gr.Accordion("Index status", open=True):
                    status_panel = gr.Markdown(elem_id="nexus-status")
                    refresh = gr.Button("Refresh status", size="sm")
                    rebuild_button = gr.Button(
                        "Rebuild index", size="sm", visible=allow_rebuild, variant="stop"
                    )

        with gr.Tab("Documents", elem_id="nexus-tab-documents"):
            doc_filter = gr.Textbox(
                placeholder="Filter by file or title", show_label=False, elem_id="nexus-doc-filter"
            )
            doc_summary = gr.Markdown(elem_id="nexus-doc-summary")
            doc_table = gr.Dataframe(
                headers=list(DOCUMENT_COLUMNS),
                interactive=False,
                wrap=True,
                elem_id="nexus-documents",
            )
            with gr.Accordion("Files not indexed", open=False):
                skipped_table = gr.Dataframe(
                    headers=["File", "Reason"],
                    interactive=False,
                    wrap=True,
                    elem_id="nexus-skipped",
                )

        inputs = [box, chatbot, k, mode, category, collection, turns]
        outputs = [chatbot, box, turns]
        private: dict[str, Any] = {"api_visibility": "private"}
        box.submit(answer, inputs, outputs, **private)
        send.click(answer, inputs, outputs, **private)
        chatbot.retry(retry, [chatbot, k, mode, category, collection, turns], outputs, **private)
        chatbot.like(vote, [turns], None, **private)
        clear.click(lambda: ([], "", {}), None, outputs, **private)
        chatbot.clear(lambda: {}, None, [turns], **private)
        status_inputs = [collection, category]
        status_outputs = [status_panel, banner, category]
        refresh.click(refresh_status, status_inputs, status_outputs, **private)
        demo.load(refresh_status, status_inputs, status_outputs, **private)
        if allow_rebuild:
            rebuild_button.click(rebuild, status_inputs, status_outputs, **private)
        catalog_inputs = [doc_filter, collection]
        catalog_outputs = [doc_summary, doc_table, skipped_table]
        doc_filter.change(show_catalog, catalog_inputs, catalog_outputs, **private)
        demo.load(show_catalog, catalog_inputs, catalog_outputs, **private)
        collection.change(refresh_status, status_inputs, status_outputs, **private)
        collection.change(show_catalog, catalog_inputs, catalog_outputs, **private)
        if live_status:
            gr.Timer(STATUS_EVERY_S).tick(
                refresh_status, status_inputs, status_outputs, show_progress="hidden", **private
            )
        # Not queued: the MCP server then calls them in-process, and calls run side by side.
        gr.api(ask, api_name="ask", queue=False)  # type: ignore[attr-defined]
        gr.api(search, api_name="search", queue=False)  # type: ignore[attr-defined]
    return cast(gr.Blocks, demo)
