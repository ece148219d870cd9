"""The Gradio chat UI: a thin shell over :mod:`.render` and :class:`NexusService`.

Everything the page shows is computed by tested functions in ``assistant/``; this module only
lays out components and wires events. Its API endpoints have stable names for
``gradio_client``: ``/ask`` (a chat reply as JSON) and ``/search`` (passages as JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import gradio as gr

from ..config import SEARCH_MODES, SearchMode
from ..errors import AssistantError
from ..search.conversation import message_text
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
    """The index status panel: counts, model, build time and whether the corpus changed."""
    lines = [
        f"**{status.documents:,}** documents · **{status.chunks:,}** passages",
        f"Model: {escape_markdown(status.model)}",
        f"Built: {escape_markdown(status.built_at)}",
    ]
    if status.changes is not None and status.changes.stale:
        lines.append(
            f"⚠️ **The corpus changed since this index was built**: "
            f"{escape_markdown(status.changes.summary().removeprefix('changed since the build: '))}"
            f". Rebuild with\n\n```\n{status.rebuild_command}\n```\n\nThe app switches to the "
            "new index without a restart."
        )
    elif status.problem:
        lines.append(f"⚠️ Cannot compare with the corpus: {escape_markdown(status.problem)}")
    else:
        lines.append(f"✓ Up to date with {escape_markdown(status.corpus_dir)}")
    return "\n\n".join(lines)


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


def build_ui(
    service: NexusService, examples: Sequence[str] = EXAMPLES, *, allow_rebuild: bool = False
) -> gr.Blocks:
    """The chat page over ``service``; ``allow_rebuild`` adds a Rebuild button to the status."""
    settings = service.settings
    categories = [ALL_CATEGORIES, *service.categories()]

    def answer(
        message: str,
        history: list[dict[str, Any]],
        k: float,
        mode: str,
        category: str,
        turns: dict[str, Any],
    ) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
        history = list(history or [])
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
        first = len(history) + 1
        # Shown escaped, so markup typed into a question stays text.
        history.append({"role": "user", "content": escape_markdown(reply.question)})
        history.append({"role": "assistant", "content": render_answer(reply)})
        if reply.answered:
            history.append({"role": "assistant", "content": render_passages(reply)})
        record = reply_dict(reply)
        turns = {key: v for key, v in (turns or {}).items() if int(key) < first - 1}
        turns.update({str(i): record for i in range(first, len(history))})
        return history, "", turns

    def retry(
        history: list[dict[str, Any]],
        k: float,
        mode: str,
        category: str,
        turns: dict[str, Any],
        data: gr.RetryData,
    ) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
        index = data.index if isinstance(data.index, int) else data.index[0]
        users = [i for i, m in enumerate(history[: index + 1]) if m.get("role") == "user"]
        if not users:
            return history, "", turns
        last = users[-1]
        message = unescape_markdown(message_text(history[last]["content"]))
        return answer(message, history[:last], k, mode, category, turns)

    def vote(turns: dict[str, Any], data: gr.LikeData) -> None:
        index = data.index if isinstance(data.index, int) else data.index[0]
        record = (turns or {}).get(str(index))
        if record is None or service.feedback is None or data.liked in (None, ""):
            return
        up = data.liked is True or data.liked == "Like"
        service.feedback.record(record, "up" if up else "down")
        gr.Info("Thanks, your feedback was recorded.")

    def refresh_status() -> tuple[str, Any, Any]:
        """Status, stale-corpus banner and category choices, re-read after any rebuild."""
        status = service.status(refresh=True)
        warning = (
            f"⚠️ The corpus changed since the index was built. Rebuild with "
            f"`{status.rebuild_command}`"
        )
        choices = [ALL_CATEGORIES, *service.categories()]
        return (
            status_markdown(status),
            gr.update(value=warning, visible=status.stale),
            gr.update(choices=choices),
        )

    def show_catalog(query: str) -> tuple[str, list[list[Any]], list[list[str]]]:
        """The Documents tab: a summary line, the documents matching the filter, the skips."""
        documents, skipped = service.catalog(query or ""), service.skipped()
        return (
            catalog_summary(documents, skipped, filtered=bool((query or "").strip())),
            [[d.source, d.title, d.format, d.category, d.passages] for d in documents],
            [list(row) for row in skipped],
        )

    def rebuild() -> tuple[str, Any, Any]:
        gr.Info(service.rebuild())
        return refresh_status()

    def ask_api(
        question: str,
        history: list[dict[str, Any]] | None = None,
        k: int = settings.top_k,
        mode: str = settings.mode,
        category: str = "",
    ) -> dict[str, Any]:
        """Answer a question like the chat does: cited sentences, passages, the query searched.

        `history` is earlier chat messages ({"role", "content"}); follow-ups borrow the last
        question. Returns `answered` False, with `related` topics, when nothing fits.
        """
        try:
            reply = service.ask(
                question, history, k=k, mode=_mode(mode), category=_category(category)
            )
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc
        return reply_dict(reply)

    def search_api(
        query: str, k: int = settings.top_k, mode: str = settings.mode, category: str = ""
    ) -> list[dict[str, Any]]:
        """The passages that best match `query`, best first, with source file and lines."""
        try:
            hits = service.search(query, k, _mode(mode), _category(category))
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc
        return [hit_dict(h) for h in hits]

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
                    k = gr.Slider(1, 10, value=min(settings.top_k, 10), step=1, label="Passages")
                    mode = gr.Radio(list(SEARCH_MODES), value=settings.mode, label="Search mode")
                    category = gr.Dropdown(categories, value=ALL_CATEGORIES, label="Category")
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

        inputs = [box, chatbot, k, mode, category, turns]
        outputs = [chatbot, box, turns]
        box.submit(answer, inputs, outputs, api_visibility="private")
        send.click(answer, inputs, outputs, api_visibility="private")
        chatbot.retry(retry, [chatbot, k, mode, category, turns], outputs, api_visibility="private")
        chatbot.like(vote, [turns], None, api_visibility="private")
        clear.click(lambda: ([], "", {}), None, outputs, api_visibility="private")
        chatbot.clear(lambda: {}, None, [turns], api_visibility="private")
        status_outputs = [status_panel, banner, category]
        refresh.click(refresh_status, None, status_outputs, api_visibility="private")
        demo.load(refresh_status, None, status_outputs, api_visibility="private")
        if allow_rebuild:
            rebuild_button.click(rebuild, None, status_outputs, api_visibility="private")
        catalog_outputs = [doc_summary, doc_table, skipped_table]
        doc_filter.change(show_catalog, [doc_filter], catalog_outputs, api_visibility="private")
        demo.load(show_catalog, [doc_filter], catalog_outputs, api_visibility="private")
        gr.api(ask_api, api_name="ask")  # type: ignore[attr-defined]
        gr.api(search_api, api_name="search")  # type: ignore[attr-defined]
    return cast(gr.Blocks, demo)
