"""The house rules: each stage of the pipeline in its own package, imports flowing one way.

Read from the source with ``ast``, so a rule broken anywhere in a module (inside a function
too) fails here, whether or not a test happens to run that line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import assistant

PACKAGE = Path(assistant.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> Iterator[str]:
    """Every module ``name`` imports, anywhere in its source, as absolute names."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            yield origin
            # ``from . import onnx`` imports a module, not a name.
            for alias in node.names:
                if f"{origin}.{alias.name}" in MODULES:
                    yield f"{origin}.{alias.name}"


def importers_of(*top_level: str) -> set[str]:
    return {
        name
        for name in MODULES
        if any(i == t or i.startswith(t + ".") for i in imports(name) for t in top_level)
    }


def test_every_public_name_resolves() -> None:
    for name in assistant.__all__:
        assert getattr(assistant, name) is not None, name


def test_only_the_web_package_imports_web_frameworks() -> None:
    web = importers_of("gradio", "gradio_client", "fastapi", "starlette", "uvicorn")
    assert web and all(name.startswith("assistant.web.") for name in web), web


@pytest.mark.parametrize(
    ("library", "owner"),
    [
        ("pymilvus", "assistant.stores.milvus"),
        ("ray", "assistant.encoders.ray"),
        ("Stemmer", "assistant.analysis"),
        ("bm25s", "assistant.analysis"),
        ("watchfiles", "assistant.watch"),
        ("prometheus_client", "assistant.web.metrics"),
    ],
)
def test_one_module_owns_each_optional_or_shared_library(library: str, owner: str) -> None:
    assert importers_of(library) == {owner}


@pytest.mark.parametrize(
    "lower",
    [
        "assistant.ingest",
        "assistant.stores",
        "assistant.encoders",
        "assistant.build",
        "assistant.watch",  # builds and servers both use it, so it sits below both
    ],
)
def test_lower_stages_never_import_search_or_web(lower: str) -> None:
    for name in MODULES:
        if name == lower or name.startswith(lower + "."):
            upward = {
                i for i in imports(name) if i.startswith(("assistant.search", "assistant.web"))
            }
            assert not upward, f"{name} imports {upward}"


def test_no_import_circles() -> None:
    graph = {name: {i for i in imports(name) if i in MODULES and i != name} for name in MODULES}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise AssertionError("import circle: " + " -> ".join(cycle))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_searching_loads_no_document_parser() -> None:
    code = (
        "import sys\n"
        "from assistant import Assistant\n"
        "loaded = [m for m in ('bs4', 'markdown_it', 'yaml', 'charset_normalizer') "
        "if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
