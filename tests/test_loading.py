"""Reading scenario files: YAML, JSON and TOML; every kind of broken file gives clean `FILE: ...`
lines (pdopt/scenario/loading.py, docs/scenario-format.md "Errors")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdopt.scenario import loading
from pdopt.scenario.loading import expanded_size, load_scenario, parse_text, read_document
from pdopt.scenario.problems import ScenarioError

PAPER_TOML = """\
name = "paper-deepseek-v31-h200"
description = "DeepSeek-V3.1 on 8xH200 instances, SGLang; arXiv 2603.04716 evaluation case"

[gpus.H200]
cost_per_hour = 3.99
memory_gib = 141

[[instances]]
name = "ds-prefill-8xh200"
model = "deepseek-v3.1"
role = "prefill"
gpu = "H200"
gpus_per_instance = 8
prefill_tokens_per_s = 28309

[[instances]]
name = "ds-decode-8xh200"
model = "deepseek-v3.1"
role = "decode"
gpu = "H200"
gpus_per_instance = 8
measured_at = { input_tokens = 6144, output_tokens = 512 }
tpot_ms_by_batch = { 10 = 12.8, 20 = 16.4, 30 = 18.8, 40 = 21.6, 50 = 23.9, 60 = 26.2 }

[[workloads]]
name = "chat"
model = "deepseek-v3.1"
tokens_per_minute = 5000000
input_tokens = 6144
output_tokens = 512
slo = { ttft_ms = 2000, tpot_ms = 20 }
ttft_overhead_ms = 100
"""


def errors(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value.lines()


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_yaml_json_and_toml_give_the_same_scenario(
    tmp_path: Path, paper_scenario_path: Path, paper_data: dict[str, Any]
) -> None:
    from_yaml = load_scenario(paper_scenario_path)
    from_json = load_scenario(write(tmp_path, "paper.json", json.dumps(paper_data)))
    from_toml = load_scenario(write(tmp_path, "paper.toml", PAPER_TOML))
    assert from_json == from_yaml
    assert from_toml == from_yaml
    # JSON and TOML keys are text: the batch keys come back as integers
    assert from_json.instances[1].tpot_ms_by_batch == {10: 12.8, 20: 16.4, 30: 18.8, 40: 21.6,
                                                       50: 23.9, 60: 26.2}


def test_yml_suffix_and_byte_order_mark(tmp_path: Path, paper_scenario_path: Path) -> None:
    text = paper_scenario_path.read_text(encoding="utf-8")
    assert load_scenario(write(tmp_path, "a.yml", text)).name == "paper-deepseek-v31-h200"
    assert load_scenario(write(tmp_path, "b.yaml", b"\xef\xbb\xbf" + text.encode())).name \
        == "paper-deepseek-v31-h200"


def test_error_lines_name_the_file(tmp_path: Path, paper_scenario_path: Path) -> None:
    text = paper_scenario_path.read_text(encoding="utf-8").replace("tpot_ms: 20}", "tpot_ms: 0}")
    path = write(tmp_path, "zero.yaml", text)
    assert errors(path) == [f"{path}: workloads[0].slo.tpot_ms: must be > 0"]


def test_empty_and_blank_files(tmp_path: Path) -> None:
    for name, content in (("empty.yaml", ""), ("blank.yaml", "  \n\n# only a comment\n"),
                          ("empty.json", ""), ("empty.toml", "\n")):
        path = write(tmp_path, name, content)
        if name == "blank.yaml":  # a comment-only YAML document is null
            assert errors(path) == [
                f"{path}: expected a mapping of scenario fields at the top level, got NoneType"
            ]
        else:
            assert errors(path) == [f"{path}: empty file, expected a scenario"]


def test_binary_garbage(tmp_path: Path) -> None:
    path = write(tmp_path, "garbage.yaml", bytes(range(256)) * 4)
    assert errors(path) == [f"{path}: binary file (contains NUL bytes), not a scenario"]


def test_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "latin1.yaml", "name: caf\u00e9\n".encode("latin-1"))
    assert errors(path) == [f"{path}: not UTF-8 text (bad byte at offset 9)"]


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    # "billion laughs": 9 levels of 9 aliases = 9^9 (387 million) strings once expanded
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    path = write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n")
    assert errors(path) == [
        f"{path}: document expands to more than 2000000 nodes (YAML alias bomb?); refused"
    ]


def test_a_few_aliases_are_fine(tmp_path: Path, paper_scenario_path: Path) -> None:
    text = paper_scenario_path.read_text(encoding="utf-8")
    text = text.replace("slo: {ttft_ms", "slo: &slo {ttft_ms")
    text += ("  - {name: chat2, model: deepseek-v3.1, requests_per_s: 1, input_tokens: 100,\n"
             "     output_tokens: 10, slo: *slo}\n")
    sc = load_scenario(write(tmp_path, "alias.yaml", text))
    assert [w.slo.tpot_ms for w in sc.workloads] == [20, 20]


def test_deep_nesting(tmp_path: Path) -> None:
    for name in ("deep.json", "deep.yaml"):
        path = write(tmp_path, name, "[" * 100_000 + "]" * 100_000)
        assert errors(path) == [f"{path}: document is nested too deeply to be a scenario"]


@pytest.mark.parametrize("name, content, kind", [
    ("list.yaml", "- a\n- b\n", "list"),
    ("scalar.yaml", "just text\n", "str"),
    ("list.json", "[1, 2]", "list"),
    ("number.json", "42", "int"),
])
def test_top_level_must_be_a_mapping(tmp_path: Path, name: str, content: str, kind: str) -> None:
    path = write(tmp_path, name, content)
    assert errors(path) == [
        f"{path}: expected a mapping of scenario fields at the top level, got {kind}"
    ]


def test_syntax_errors_give_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "name: x\ngpus: {H200: [\n")
    [line] = errors(path)
    assert line.startswith(f"{path}: not valid YAML: ") and "(line 3, column 1)" in line
    path = write(tmp_path, "bad.json", '{"name": "x",\n "gpus": }')
    assert errors(path) == [f"{path}: not valid JSON: Expecting value (line 2)"]
    path = write(tmp_path, "bad.toml", 'name = "x"\ngpus = \n')
    [line] = errors(path)
    assert line.startswith(f"{path}: not valid TOML: ") and "line 2" in line


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    path = write(tmp_path, "evil.yaml", "name: !!python/object/apply:os.system ['true']\n")
    [line] = errors(path)
    assert line.startswith(f"{path}: not valid YAML: ")
    assert "python/object/apply" in line


def test_missing_file_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert errors(path) == [f"{path}: cannot read file: No such file or directory"]
    [line] = errors(tmp_path)
    assert line.startswith(f"{tmp_path}: cannot read file: ")


def test_oversized_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "MAX_FILE_BYTES", 100)
    path = write(tmp_path, "big.yaml", "name: " + "x" * 200 + "\n")
    assert errors(path) == [f"{path}: file is 207 bytes; scenario files are limited to 100 bytes"]


def test_every_problem_in_one_file_is_reported(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    paper_data["workloads"][0]["slo"]["tpot_msx"] = 20
    paper_data["instances"][0]["gpu"] = "H100"  # reported once the structure is valid
    paper_data["workloads"][0]["tokens_per_minute"] = -1
    path = write(tmp_path, "many.json", json.dumps(paper_data))
    assert errors(path) == [
        f"{path}: workloads[0].tokens_per_minute: must be > 0",
        f"{path}: workloads[0].slo.tpot_msx: unknown field; did you mean 'tpot_ms'? "
        "(see docs/scenario-format.md)",
    ]


def test_parse_text_and_expanded_size() -> None:
    assert parse_text('{"a": 1}', ".JSON") == {"a": 1}
    assert parse_text("a = 1", ".toml") == {"a": 1}
    assert parse_text("a: 1", ".txt") == {"a": 1}  # anything else is YAML
    # root, keys a and b, the list and its 2 items, the inner mapping, its key c and value 3
    assert expanded_size({"a": [1, 2], "b": {"c": 3}}) == 9
    shared = [0] * 10
    assert expanded_size([shared] * 10) == 1 + 10 * 11  # aliases counted as if expanded
    assert expanded_size([shared] * 10, limit=20) == 21  # stops early past the limit


def test_read_document_returns_plain_data(paper_scenario_path: Path) -> None:
    data = read_document(paper_scenario_path)
    assert data["instances"][1]["tpot_ms_by_batch"][34 - 4] == 18.8


def test_a_key_given_twice_is_an_error(tmp_path: Path, paper_scenario_path: Path) -> None:
    text = paper_scenario_path.read_text(encoding="utf-8")
    assert text.endswith("    ttft_overhead_ms: 100\n") and text.count("\n") == 26
    path = write(tmp_path, "dup.yaml", text + "    input_tokens: 1\n")  # line 27
    assert errors(path) == [f"{path}: not valid YAML: duplicate key 'input_tokens' (line 27, "
                            "column 5)"]
    path = write(tmp_path, "dup-batch.yaml", text.replace("{10: 12.8,", "{10: 12.8, 10: 9.0,"))
    [line] = errors(path)
    assert "duplicate key '10'" in line
    path = write(tmp_path, "dup.json", '{"name": "a", "name": "b"}')
    assert errors(path) == [f"{path}: not valid JSON: duplicate key 'name'"]
    path = write(tmp_path, "dup.toml", 'name = "a"\nname = "b"\n')
    [line] = errors(path)
    assert line.startswith(f"{path}: not valid TOML: ")
    # a merge key may still be overridden: that is what merges are for
    assert parse_text("base: &b {x: 1}\nother: {<<: *b, x: 2}\n", ".yaml") == {
        "base": {"x": 1}, "other": {"x": 2}}


def test_table_keys_read_the_same_in_every_format(
    tmp_path: Path, paper_data: dict[str, Any]
) -> None:
    paper_data["instances"][1]["tpot_ms_by_batch"][20] = -1
    path = write(tmp_path, "neg.json", json.dumps(paper_data))
    assert errors(path) == [f"{path}: instances[1].tpot_ms_by_batch[20]: must be > 0"]


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
       st.sampled_from([".yaml", ".json", ".toml"]))
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_bytes_give_a_scenario_or_clean_errors(
    tmp_path: Path, content: bytes, suffix: str
) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(content)
    try:
        load_scenario(path)
    except ScenarioError as e:
        assert e.lines() and all(line.startswith(f"{path}: ") for line in e.lines())


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["name", "gpus", "instances", "workloads", "slo", "role",
                                       "ttft_ms", "tpot_ms_by_batch", "models", "x"]),
                      children, max_size=4),
    max_leaves=30,
))
def test_any_document_gives_a_scenario_or_clean_problems(data: Any) -> None:
    from pdopt.scenario.loading import scenario_from_data

    if not isinstance(data, dict):
        return
    try:
        scenario_from_data(data, "f")
    except ScenarioError as e:
        assert e.problems and all(p.message for p in e.problems)
