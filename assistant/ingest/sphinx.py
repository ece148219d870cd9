"""Sphinx's vocabulary, read the same way in reStructuredText and in MyST Markdown.

Sphinx adds roles and directives that plain docutils and Markdown parsers do not know. Both
readers understand them generically through these tables: a role shows its visible text, a
directive is code, navigation to drop, a labelled note, or an object whose arguments are its
signature.
"""

from __future__ import annotations

import re

__all__ = [
    "ADMONITIONS",
    "CODE_DIRECTIVES",
    "DROPPED_DIRECTIVES",
    "NO_SIGNATURE",
    "PROSE_ROLES",
    "SUFFIX_LANGUAGES",
    "VERSION_NOTES",
    "looks_like_python",
    "role_text",
]

# Roles whose text is prose (a page title, a term, a label), not a name from the code.
PROSE_ROLES = frozenset(
    {"doc", "ref", "term", "abbr", "dfn", "numref", "guilabel", "menuselection", "download"}
    | {"pep", "rfc", "manpage", "title", "ticket", "commit", "issue", "pr", "user", "sup", "sub"}
)
# Directives whose content is code, shown as it is.
CODE_DIRECTIVES = frozenset(
    {"code-block", "sourcecode", "code", "doctest", "testcode", "testoutput", "console"}
    | {"ipython", "jinja", "highlight-block", "prompt", "parsed-literal", "code-cell"}
)
# Navigation, markup for the renderer and hidden setup: nothing a reader sees as text.
DROPPED_DIRECTIVES = frozenset(
    {"toctree", "index", "highlight", "currentmodule", "module", "contents", "raw", "meta"}
    | {"tabularcolumns", "sectionauthor", "moduleauthor", "codeauthor", "program", "autosummary"}
    | {"testsetup", "testcleanup", "spelling:word-list", "rst-class", "cssclass", "sectnum"}
    | {"target-notes", "header", "footer", "default-domain", "py:currentmodule", "py:module"}
)
# Directives whose arguments are a condition or a label, not a signature to keep.
NO_SIGNATURE = frozenset({"only", "ifconfig", "tabs", "tab", "glossary", "hlist", "centered"})
VERSION_NOTES = {
    "versionadded": "New in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
    "versionremoved": "Removed in version",
}
# Notes shown as prose behind their label (docutils knows the standard ones in rst itself).
ADMONITIONS = {
    "seealso": "See also",
    "todo": "To do",
    "note": "Note",
    "warning": "Warning",
    "tip": "Tip",
    "hint": "Hint",
    "important": "Important",
    "caution": "Caution",
    "attention": "Attention",
    "danger": "Danger",
    "error": "Error",
    "admonition": "",
}
# A literal include without a language option is shown as the language of its suffix.
SUFFIX_LANGUAGES = {".py": "python", ".js": "javascript", ".ts": "typescript", ".sh": "bash"} | {
    ".json": "json",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".ini": "ini",
    ".cfg": "ini",
}

_TITLED_TARGET = re.compile(r"^(.*?)\s*<([^<>]*)>$", re.DOTALL)


def role_text(name: str, text: str) -> tuple[str, bool]:
    """What Sphinx shows for a role, and whether it shows as code.

    ``:class:`QuerySet``` → ("QuerySet", True); ``:doc:`title <path>``` → ("title", False);
    ``:meth:`~a.b.c``` → ("c", True); ``:doc:`/topics/db-models``` → ("db models", False),
    the page's own title not being known while one page is read.
    """
    titled = _TITLED_TARGET.match(text)
    short = name.rsplit(":", 1)[-1]
    if titled and titled.group(1):
        shown = titled.group(1)
    else:
        shown = (titled.group(2) if titled else text).lstrip("!")
        if shown.startswith("~"):  # only the last part of a dotted name
            shown = shown[1:].rsplit(".", 1)[-1]
        elif short == "doc":
            shown = re.split(r"[/:]", shown)[-1].replace("-", " ").replace("_", " ")
    return shown, short not in PROSE_ROLES


def looks_like_python(text: str) -> bool:
    """Whether a directive's body is code rather than prose (a project's own example
    directive, such as ``.. click:example::``, holds a program): it parses as Python and
    uses its syntax. Sentences do not parse."""
    import ast
    import textwrap

    body = textwrap.dedent(text).strip()
    if not body or not any(mark in body for mark in "()=[]:"):
        return False
    try:
        ast.parse(body)
    except (SyntaxError, ValueError):
        return False
    return True
