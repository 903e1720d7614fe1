"""The example outputs in README.md and docs/*.md are what the commands print.

An example is a marker comment followed by a fenced block:

    <!-- example: pdopt ratio scenarios/paper-deepseek-v31-h200.yaml --rounding nearest -->
    ```console
    $ pdopt ratio scenarios/paper-deepseek-v31-h200.yaml --rounding nearest
    pdopt ratio: 3P4D
    ...
    ```

The block is `$ COMMAND` and the command's output (stdout and stderr as a terminal shows them),
run from the project root; arguments with `*` are expanded as a shell would. A marker may hold a
session of several commands, each line beginning `$ ` (run in order, in one folder). Options
between `example` and the colon: `head=N` keeps the first N lines of each command's output and
ends it with `...` (`tail=N`: the last N, after `...`); `setup=NAME` runs the commands in a
scratch folder prepared by SETUPS[NAME] (e.g. benchmark results as `results/` and a scenario the
commands change); `slow` marks an example whose commands take more than a few seconds: it is
compared only when PDOPT_SLOW_DOC_EXAMPLES=1 is set (the update rewrites it only with --slow).
Timings (`build 0.04 s`, `simulated in 1.1 s`) and import timestamps are masked when comparing.

Regenerate every block after a change of output:

    python -m tests.test_doc_examples --update            # README.md and docs/*.md
    python -m tests.test_doc_examples --update docs/cli.md
    python -m tests.test_doc_examples --update --slow     # the slow examples too
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(
    r"<!-- example(?P<options>[^:\n]*):\s+(?P<command>.*?) -->\n"
    r"(?P<fence>```(?P<lang>[a-z]*)\n(?P<body>.*?)```)",
    re.S,
)
# numbers that change from run to run: wall-clock times
VOLATILE = re.compile(r"(?<=build )[\d.]+(?= s)|(?<=solve )[\d.]+(?= s)"
                      r"|(?<=simulated in )[\d.]+(?= s)|(?<=imported_at: ')[\dT:Z-]+")


def _vllm_results(folder: Path) -> None:
    """The vLLM result files of tests/fixtures as `results/`, and the scenario they fill in as
    `llama8b.yaml` (README.md, "From your own benchmarks to a plan")."""
    shutil.copytree(ROOT / "tests" / "fixtures" / "profiles" / "vllm", folder / "results")
    shutil.copy(ROOT / "tests" / "fixtures" / "profiles" / "scenario-llama8b.yaml",
                folder / "llama8b.yaml")


def _my_model(folder: Path) -> None:
    """`my-model/config.json`: a Llama config.json without `num_hidden_layers` (docs/cli.md,
    `pdopt profile estimate`)."""
    from pdopt.profiles.catalog import bundled_models

    config = dict(bundled_models()["llama-3.1-8b"].config)
    del config["num_hidden_layers"]
    (folder / "my-model").mkdir()
    (folder / "my-model" / "config.json").write_text(json.dumps(config, indent=2))


def _scenarios(folder: Path) -> None:
    """The shipped scenarios as `scenarios/`, in a folder the commands may write to."""
    (folder / "scenarios").symlink_to(ROOT / "scenarios", target_is_directory=True)


def _bad_trace(folder: Path) -> None:
    """The shipped scenarios and `trace.csv`, a trace whose line 3 has a word for a number
    (docs/simulation.md)."""
    _scenarios(folder)
    (folder / "trace.csv").write_text("arrival_s,input_tokens,output_tokens\n0.0,6144,512\n"
                                      "0.5,ten,512\n")


SETUPS: dict[str, Callable[[Path], None]] = {
    "vllm-results": _vllm_results, "my-model": _my_model, "scenarios": _scenarios,
    "bad-trace": _bad_trace,
}


@dataclass(frozen=True)
class Example:
    path: Path
    line: int
    command: str  # as written in the marker (continuation lines end with `\`)
    head: int | None
    tail: int | None
    slow: bool
    setup: str | None
    start: int  # span of the fenced block in the file's text
    end: int
    lang: str
    body: str

    @property
    def commands(self) -> list[str]:
        """The commands of the marker (one, or a session of lines beginning `$ `)."""
        if not self.command.lstrip().startswith("$ "):
            return [self.command]
        return [c.rstrip() for c in re.split(r"(?m)^\s*\$ ", self.command) if c.strip()]

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples(path: Path) -> Iterator[Example]:
    text = path.read_text(encoding="utf-8")
    for m in MARKER.finditer(text):
        options = m["options"].split()
        values = dict(o.split("=", 1) for o in options if "=" in o)
        unknown = [o for o in options
                   if o != "slow" and o.split("=")[0] not in ("head", "tail", "setup")]
        if unknown or values.get("setup", "vllm-results") not in SETUPS:
            raise ValueError(f"{path}: unknown example options {options}")
        head = int(values["head"]) if "head" in values else None
        tail = int(values["tail"]) if "tail" in values else None
        yield Example(path, text.count("\n", 0, m.start()) + 1, m["command"], head, tail,
                      "slow" in options, values.get("setup"), m.start("fence"), m.end("fence"),
                      m["lang"], m["body"])


def _expand(args: list[str]) -> list[str]:
    """Arguments with `*`/`?` as a shell expands them (sorted; left as written when nothing
    matches)."""
    out: list[str] = []
    for arg in args:
        matches = sorted(glob.glob(arg)) if glob.has_magic(arg) else []
        out += matches or [arg]
    return out


def _run_one(example: Example, command: str) -> list[str]:
    from pdopt.cli import main

    args = shlex.split(command.replace("\\\n", " "))
    if args[0] != "pdopt":
        raise ValueError(f"{example.name}: examples run pdopt, not {args[0]}")
    result = CliRunner().invoke(main, _expand(args[1:]))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise RuntimeError(f"{example.name}: {command}: {result.exception!r}")
    output = result.output.rstrip("\n").splitlines()
    if example.head is not None and len(output) > example.head:
        output = output[:example.head] + ["..."]
    if example.tail is not None and len(output) > example.tail:
        output = ["..."] + output[-example.tail:]
    lines = command.splitlines()
    return ["$ " + lines[0].strip()] + ["    " + line.strip() for line in lines[1:]] + output


def run(example: Example) -> str:
    """The block the example's commands give: `$ COMMAND`, then its output, for each."""
    cwd = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="pdopt-doc-example-") as scratch:
        folder = ROOT
        if example.setup is not None:
            folder = Path(scratch)
            SETUPS[example.setup](folder)
        os.chdir(folder)
        try:
            lines = [line for command in example.commands
                     for line in _run_one(example, command)]
        finally:
            os.chdir(cwd)
    return "\n".join(lines) + "\n"


def masked(text: str) -> str:
    return VOLATILE.sub("#", text)


def update(paths: list[Path], slow: bool = False) -> int:
    """Rewrite the blocks whose output changed (beyond timings); `slow` examples only when asked
    (their solves may stop at a time limit on a busy machine)."""
    changed = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        found = list(examples(path))
        for ex in reversed(found):  # from the end, so earlier spans stay valid
            if ex.slow and not slow:
                continue
            block = f"```{ex.lang}\n{run(ex)}```"
            if masked(block) != masked(text[ex.start:ex.end]):
                changed += 1
                print(f"updated {ex.name}: {ex.commands[0].splitlines()[0]}", file=sys.stderr)
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
        f"{example.name} no longer matches `{example.commands[0].splitlines()[0]}`; "
        "regenerate with python -m tests.test_doc_examples --update"
    )


if __name__ == "__main__":
    flags = {"--update", "--slow"}
    if "--update" not in sys.argv[1:]:
        sys.exit("usage: python -m tests.test_doc_examples --update [--slow] [FILE.md ...]")
    files = [Path(a).resolve() for a in sys.argv[1:] if a not in flags] or doc_files()
    print(f"{update(files, '--slow' in sys.argv[1:])} example(s) changed", file=sys.stderr)
