"""The example outputs in README.md and docs/*.md are what the commands print.

An example is a marker comment followed by a fenced block:

    <!-- example: pdopt ratio scenarios/paper-deepseek-v31-h200.yaml --rounding nearest -->
    ```console
    $ pdopt ratio scenarios/paper-deepseek-v31-h200.yaml --rounding nearest
    pdopt ratio: 3P4D
    ...
    ```

The block is `$ COMMAND` and the command's output (stdout and stderr as a terminal shows them),
run from the project root. Options between `example` and the colon: `head=N` keeps the first N
lines of the output and ends the block with `...`; `slow` marks an example whose command takes
more than a few seconds: it is compared only when PDOPT_SLOW_DOC_EXAMPLES=1 is set (the update
always runs it). Timings (`build 0.04 s`, `simulated in 1.1 s`) are masked when comparing.

Regenerate every block after a change of output:

    python -m tests.test_doc_examples --update            # README.md and docs/*.md
    python -m tests.test_doc_examples --update docs/cli.md
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(
    r"<!-- example(?P<options>[^:\n]*): (?P<command>.*?) -->\n"
    r"(?P<fence>```(?P<lang>[a-z]*)\n(?P<body>.*?)```)",
    re.S,
)
# numbers that change from run to run: wall-clock times
VOLATILE = re.compile(r"(?<=build )[\d.]+(?= s)|(?<=solve )[\d.]+(?= s)"
                      r"|(?<=simulated in )[\d.]+(?= s)")


@dataclass(frozen=True)
class Example:
    path: Path
    line: int
    command: str  # as written in the marker (continuation lines end with `\`)
    head: int | None
    slow: bool
    start: int  # span of the fenced block in the file's text
    end: int
    lang: str
    body: str

    @property
    def args(self) -> list[str]:
        return shlex.split(self.command.replace("\\\n", " "))

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples(path: Path) -> Iterator[Example]:
    text = path.read_text(encoding="utf-8")
    for m in MARKER.finditer(text):
        options = m["options"].split()
        head = next((int(o.split("=", 1)[1]) for o in options if o.startswith("head=")), None)
        unknown = [o for o in options if o != "slow" and not o.startswith("head=")]
        if unknown:
            raise ValueError(f"{path}: unknown example options {unknown}")
        yield Example(path, text.count("\n", 0, m.start()) + 1, m["command"], head,
                      "slow" in options, m.start("fence"), m.end("fence"), m["lang"], m["body"])


def run(example: Example) -> str:
    """The block the example's command gives: `$ COMMAND`, then its output."""
    from pdopt.cli import main

    args = example.args
    if args[0] != "pdopt":
        raise ValueError(f"{example.name}: examples run pdopt, not {args[0]}")
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        result = CliRunner().invoke(main, args[1:])
    finally:
        os.chdir(cwd)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise RuntimeError(f"{example.name}: {example.command}: {result.exception!r}")
    output = result.output.rstrip("\n").splitlines()
    if example.head is not None and len(output) > example.head:
        output = output[:example.head] + ["..."]
    lines = example.command.splitlines()
    shown = ["$ " + lines[0].strip()] + ["    " + line.strip() for line in lines[1:]]
    return "\n".join(shown + output) + "\n"


def masked(text: str) -> str:
    return VOLATILE.sub("#", text)


def update(paths: list[Path]) -> int:
    changed = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        found = list(examples(path))
        for ex in reversed(found):  # from the end, so earlier spans stay valid
            block = f"```{ex.lang}\n{run(ex)}```"
            if masked(block) != masked(text[ex.start:ex.end]):
                changed += 1
                print(f"updated {ex.name}: {ex.command.splitlines()[0]}", file=sys.stderr)
            text = text[:ex.start] + block + text[ex.end:]
        path.write_text(text, encoding="utf-8")
    return changed


ALL = [ex for path in doc_files() for ex in examples(path)]


def test_the_docs_have_examples() -> None:
    names = {ex.path.name for ex in ALL}
    assert {"README.md", "cli.md"} <= names
    assert len(ALL) >= 10


@pytest.mark.parametrize("example", ALL, ids=[ex.name for ex in ALL])
def test_doc_example_is_what_the_command_prints(example: Example) -> None:
    if example.slow and not os.environ.get("PDOPT_SLOW_DOC_EXAMPLES"):
        pytest.skip("slow example: set PDOPT_SLOW_DOC_EXAMPLES=1 to compare it")
    assert masked(run(example)) == masked(example.body), (
        f"{example.name} no longer matches `{example.command.splitlines()[0]}`; regenerate with "
        "python -m tests.test_doc_examples --update"
    )


if __name__ == "__main__":
    if "--update" not in sys.argv[1:]:
        sys.exit("usage: python -m tests.test_doc_examples --update [FILE.md ...]")
    files = [Path(a).resolve() for a in sys.argv[1:] if a != "--update"] or doc_files()
    print(f"{update(files)} example(s) changed", file=sys.stderr)
