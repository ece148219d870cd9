"""Text files' bytes to text: UTF-8 when it is, the most likely legacy encoding when not."""

from __future__ import annotations

import codecs
import re

import charset_normalizer

from .documents import SkipFile

__all__ = ["decode", "decode_text"]

# Text in these would contain NUL bytes, which `read_file` already rejects as binary.
_WIDE_ENCODINGS = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]
_SNIFF_CHARS = 8192
# Real documents hold almost no control characters; binary data without NUL bytes (images,
# archives, compiled files renamed .txt) decodes to text full of them and must not be indexed.
_MAX_UNREADABLE_SHARE = 0.1
_UNREADABLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")


def decode_text(data: bytes, warnings: list[str]) -> str:
    """The text of a document's bytes, its decoding problems appended to ``warnings``.

    Raises:
        SkipFile: The bytes decode to control characters: binary data, not text.
    """
    text, problems = decode(data)
    sample = text[:_SNIFF_CHARS]
    if len(_UNREADABLE.findall(sample)) / max(1, len(sample)) > _MAX_UNREADABLE_SHARE:
        raise SkipFile("binary file (mostly control characters or undecodable bytes)")
    warnings.extend(problems)
    return text


def decode(data: bytes) -> tuple[str, list[str]]:
    """The text of a file's bytes with ``\\n`` line ends, and a warning when it was not UTF-8."""
    warnings: list[str] = []
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        matches = charset_normalizer.from_bytes(data, cp_exclusion=_WIDE_ENCODINGS)
        best = matches.best()
        if best is not None:
            # A few accented words fit many code pages equally cleanly, and the language guess
            # behind `best` is noise at that size; prefer Windows-1252, the usual legacy
            # encoding of English docs, when it decodes as cleanly as the best.
            clean = [m for m in matches if m.chaos <= best.chaos]
            western = next((m for m in clean if "cp1252" in m.could_be_from_charset), None)
            encoding = "cp1252" if western else best.encoding
            text = str(western or best)
            warnings.append(f"not valid UTF-8; decoded as {encoding} (best guess)")
        else:
            text = data.decode("utf-8", errors="replace")
            warnings.append("not valid UTF-8; undecodable bytes replaced with U+FFFD")
    return text.replace("\r\n", "\n").replace("\r", "\n"), warnings
