"""Every equation the foundation modules cite (`Eq. P4`, `Eqs. D1-D6`) is derived under that label
in docs/ (the foundation's in docs/method.md; a few, such as the simulator's S1, elsewhere)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

FOUNDATION = ["scenario/schema.py", "queueing.py", "decode.py", "capacity.py", "ratio.py"]
CITATION = re.compile(r"Eqs?\.\s+([A-Z]\d+[a-z]?(?:\s*[-,]\s*[A-Z]\d+[a-z]?)*)")


def cited_labels(text: str) -> set[str]:
    labels: set[str] = set()
    for group in CITATION.findall(text):
        for part in re.split(r"\s*,\s*", group):
            first, _, last = part.partition("-")
            labels.add(first.strip())
            if last:
                start, end = re.match(r"([A-Z])(\d+)", first.strip()), re.match(
                    r"([A-Z])(\d+)", last.strip())
                assert start and end and start[1] == end[1], part
                labels.update(f"{start[1]}{n}" for n in range(int(start[2]), int(end[2]) + 1))
    return labels


def test_cited_labels_parse() -> None:
    assert cited_labels("Eqs. D1-D3, K1 and Eq. D5a") == {"D1", "D2", "D3", "K1", "D5a"}


@pytest.mark.parametrize("module", FOUNDATION)
def test_every_cited_equation_is_derived_in_docs(project_root: Path, module: str) -> None:
    derived: set[str] = set()
    for doc in (project_root / "docs").glob("*.md"):
        text = doc.read_text(encoding="utf-8")
        derived.update(re.findall(r"\(([A-Z]\d+[a-z]?)\)\s*$", text, flags=re.M))
    cited = cited_labels((project_root / "pdopt" / module).read_text(encoding="utf-8"))
    assert cited, module
    missing = {label for label in cited if label not in derived
               and not any(d.startswith(label) for d in derived)}  # D5 -> D5a, D5b
    assert not missing, f"{module} cites {sorted(missing)}, derived nowhere in docs/"
