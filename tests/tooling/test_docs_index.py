"""docs/README.md indexes every folder of docs/, and raw measurements sit in dated folders, not beside the pages."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_every_folder_of_docs_is_linked_from_its_index():
    index = (DOCS / "README.md").read_text()
    links = set(re.findall(r"\]\(([^)#]+)", index))
    folders = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*") if p.is_dir())
    assert folders, "docs/ has no folders"
    unlisted = [f for f in folders if not any(link.rstrip("/") == f or link.startswith(f + "/") for link in links)]
    assert not unlisted, f"docs/README.md does not list {unlisted}"


def test_raw_measurements_sit_in_dated_folders():
    """At the top of docs/ only pages (Markdown); a file below it sits in a folder named by its date."""
    top = [p.name for p in DOCS.iterdir() if p.is_file()]
    assert all(name.endswith(".md") for name in top), top
    for path in DOCS.rglob("*"):
        if path.is_file() and path.parent != DOCS:
            assert re.match(r"\d{4}-\d{2}-\d{2}", path.parent.name), path.relative_to(DOCS)
