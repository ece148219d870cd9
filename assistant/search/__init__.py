"""Searching: turn a question into ranked passages and a short cited answer.

``query`` holds the rules a search request must meet; ``fusion`` merges the dense and keyword
candidates; ``assistant`` is the :class:`~.assistant.Assistant` that searches one index;
``conversation`` decides what a chat message searches; ``answer`` quotes the passages.
"""
