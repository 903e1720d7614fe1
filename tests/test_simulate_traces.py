"""Trace readers: the three formats on small generated files, clean errors naming file, line and
field, and the real public traces when ../shared/data is present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pdopt.simulate import Requests, TraceError, read_trace, write_simple_csv
from pdopt.simulate.traces import merge, read_length_pairs


def test_azure_csv(tmp_path: Path) -> None:
    f = tmp_path / "azure.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 "2023-11-16 18:17:04.0319600,3180,8\n"
                 "2023-11-16 18:17:03.9799600,4808,10\n"
                 "2023-11-16 18:17:05.4799600,120,0\n")
    r = read_trace(f, "azure", workload=2)
    # Sorted by time, from 0; a zero output is served as one token.
    assert r.arrival_s.tolist() == pytest.approx([0.0, 0.052, 1.5])
    assert r.input_tokens.tolist() == [4808, 3180, 120]
    assert r.output_tokens.tolist() == [10, 8, 1]
    assert r.workload.tolist() == [2, 2, 2]


def test_mooncake_jsonl(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    rows = [{"timestamp": 0, "input_length": 40160, "output_length": 6, "hash_ids": [0, 1]},
            {"timestamp": 3000, "input_length": 512, "output_length": 100, "hash_ids": []}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    r = read_trace(f, "mooncake")
    assert r.arrival_s.tolist() == [0.0, 3.0]
    assert r.input_tokens.tolist() == [40160, 512] and r.output_tokens.tolist() == [6, 100]


def test_simple_csv_round_trip(tmp_path: Path) -> None:
    req = Requests(np.array([0.0, 0.25, 1.5]), np.array([10, 20, 30]), np.array([1, 2, 3]),
                   np.zeros(3, dtype=np.int64))
    f = tmp_path / "t.csv"
    write_simple_csv(f, req)
    back = read_trace(f, "csv")
    assert back.arrival_s.tolist() == [0.0, 0.25, 1.5]
    assert back.input_tokens.tolist() == [10, 20, 30]
    assert back.output_tokens.tolist() == [1, 2, 3]


def test_scaling_windowing_and_merging() -> None:
    a = Requests(np.array([0.0, 2.0, 4.0]), np.array([1, 2, 3]), np.array([1, 1, 1]),
                 np.zeros(3, dtype=np.int64))
    assert a.scaled(2.0).arrival_s.tolist() == [0.0, 1.0, 2.0]
    assert a.window(1.0, 4.0).arrival_s.tolist() == [1.0]
    b = Requests(np.array([1.0]), np.array([9]), np.array([1]), np.ones(1, dtype=np.int64))
    m = merge([a, b])
    assert m.arrival_s.tolist() == [0.0, 1.0, 2.0, 4.0] and m.workload.tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize(
    ("fmt", "name", "text", "expected"),
    [
        ("csv", "t.csv", "arrival_s,input_tokens\n0,1\n",
         "line 1: missing column(s) output_tokens"),
        ("csv", "t.csv", "arrival_s,input_tokens,output_tokens\n0,10,5\n1,ten,5\n",
         "line 3: input_tokens: not a number ('ten')"),
        ("csv", "t.csv", "arrival_s,input_tokens,output_tokens\n-1,10,5\n",
         "line 2: arrival_s: expected a number >= 0"),
        ("csv", "t.csv", "arrival_s,input_tokens,output_tokens\n", "no requests"),
        ("azure", "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,1\n",
         "line 2: TIMESTAMP: not a date-time"),
        ("azure", "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
         "2023-11-16 18:17:04.03,3.5,1\n", "line 2: ContextTokens: expected a whole number"),
        ("mooncake", "m.jsonl", '{"timestamp": 0, "input_length": 5}\n',
         "line 1: output_length: missing"),
        ("mooncake", "m.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 1}\n{oops\n',
         "line 2: not valid JSON"),
        ("mooncake", "m.jsonl", "[1, 2]\n", "line 1: expected a JSON object"),
    ],
)
def test_bad_traces_name_file_line_and_field(tmp_path: Path, fmt: str, name: str, text: str,
                                             expected: str) -> None:
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(TraceError) as e:
        read_trace(f, fmt)  # type: ignore[arg-type]
    assert str(e.value).startswith(str(f)) and expected in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read file"):
        read_trace(tmp_path / "absent.csv", "csv")
    f = tmp_path / "bin.csv"
    f.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(TraceError, match="not UTF-8"):
        read_trace(f, "csv")


def test_length_pairs_accept_the_vidur_column_names(tmp_path: Path) -> None:
    f = tmp_path / "v.csv"
    f.write_text("num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n74,918,992,0.08\n")
    i, o = read_length_pairs(f)
    assert i.tolist() == [74.0] and o.tolist() == [918.0]


@pytest.mark.parametrize(
    ("name", "fmt", "count", "input_mean"),
    [
        ("AzureLLMInferenceTrace_code.csv", "azure", 8819, 2047.8),
        ("AzureLLMInferenceTrace_conv.csv", "azure", 19366, 1154.7),
        ("mooncake_conversation_trace.jsonl", "mooncake", 12031, 12035),
        ("mooncake_synthetic_trace.jsonl", "mooncake", 3993, 15326),
    ],
)
def test_public_traces(shared_data: Path, name: str, fmt: str, count: int,
                       input_mean: float) -> None:
    # Request counts and mean input lengths as in the data folder's trace_summary.csv.
    path = shared_data / "traces" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    r = read_trace(path, fmt)  # type: ignore[arg-type]
    assert len(r) == count
    assert r.input_tokens.mean() == pytest.approx(input_mean, rel=1e-3)
    assert r.arrival_s[0] == 0.0 and bool(np.all(np.diff(r.arrival_s) >= 0))
