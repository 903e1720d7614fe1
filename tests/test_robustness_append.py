"""`pdopt profile import --append` (issue 10, section 4): the scenario keeps its line endings, its
byte-order mark and its file mode, and a file whose instance types come from its `extends:` base
is refused (one line, exit 2) instead of having the base's list silently replaced."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pdopt.cli import main
from pdopt.profiles.import_append import append_instance
from pdopt.profiles.importers import ProfileImportError
from pdopt.scenario.variants import read_with_extends

FIX = Path(__file__).parent / "fixtures" / "profiles"
SCENARIO = FIX / "scenario-llama8b.yaml"
PREFILL = sorted(str(p) for p in (FIX / "vllm" / "prefill").glob("*.json"))
DECODE = sorted(str(p) for p in (FIX / "vllm" / "decode").glob("*.json"))
COMMON = ["--model", "llama-3.1-8b", "--gpu", "H100", "--gpus-per-instance", "1"]


def append(scenario: Path, role: str = "prefill") -> Result:
    files = PREFILL if role == "prefill" else DECODE
    return CliRunner().invoke(main, ["profile", "import", "vllm", *files, *COMMON, "--role", role,
                                     "--append", str(scenario)])


def test_crlf_line_endings_and_a_bom_are_kept(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    text = SCENARIO.read_text(encoding="utf-8").replace("\n", "\r\n")
    scenario.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    result = append(scenario)
    assert result.exit_code == 0, result.output
    raw = scenario.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.count(b"\n") == raw.count(b"\r\n") > text.count("\r\n")  # every break is CRLF
    assert b"\r\r" not in raw
    assert [i["name"] for i in read_with_extends(scenario)["instances"]] == [
        "llama-3.1-8b-prefill-1xh100"]


def test_lf_stays_lf(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    shutil.copy(SCENARIO, scenario)
    assert append(scenario).exit_code == 0
    assert b"\r" not in scenario.read_bytes()


@pytest.mark.parametrize("mode", [0o644, 0o664, 0o600])
def test_the_file_mode_is_kept(tmp_path: Path, mode: int) -> None:
    scenario = tmp_path / "s.yaml"
    shutil.copy(SCENARIO, scenario)
    os.chmod(scenario, mode)
    assert append(scenario).exit_code == 0
    assert stat.S_IMODE(os.stat(scenario).st_mode) == mode


def test_instances_inherited_through_extends_are_refused(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    shutil.copy(SCENARIO, base)
    assert append(base).exit_code == 0  # the base now has one instance type
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\n", encoding="utf-8")
    before = child.read_bytes()
    result = append(child, "decode")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [f"error: {child}: extends: its instances come from the base file (base.yaml); "
                     "appending here would replace the base's 1 instance type(s). Append to the "
                     "base file instead, or copy its instances into this file first"]
    assert child.read_bytes() == before


def test_a_child_with_its_own_instances_or_an_empty_base(tmp_path: Path) -> None:
    """Lists replace in a merge: a child that lists its own instances appends to its own list;
    a base without instance types loses nothing."""
    base = tmp_path / "base.yaml"
    shutil.copy(SCENARIO, base)  # `instances: []`
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\n", encoding="utf-8")
    assert append(child).exit_code == 0
    assert [i["name"] for i in read_with_extends(child)["instances"]] == [
        "llama-3.1-8b-prefill-1xh100"]
    with pytest.raises(ProfileImportError, match="already exists"):
        append_instance(child, {"name": "llama-3.1-8b-prefill-1xh100"})
