"""The AIConfigurator backend (runs only with `pdopt[aiconfigurator]` installed; offline, CPU)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip("aiconfigurator")

from pdopt.cli import main  # noqa: E402
from pdopt.profiles import aiconfigurator as aic  # noqa: E402
from pdopt.profiles.resolve import resolve_profiles  # noqa: E402
from pdopt.scenario.loading import scenario_from_data  # noqa: E402
from pdopt.scenario.profile_spec import AiconfiguratorProfile  # noqa: E402


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDOPT_CACHE_DIR", str(tmp_path / "cache"))


def test_tested_version_is_installed() -> None:
    assert aic.installed_version() == aic.TESTED_VERSION


def test_run_resolution_from_catalog_and_bundled_names() -> None:
    run = aic.resolve_run(AiconfiguratorProfile(model="qwen3-32b", backend="sglang"), "H200", 2)
    assert (run.model_path, run.system) == ("Qwen/Qwen3-32B", "h200_sxm")
    assert run.parallel_kwargs() == {"tp_size": 2, "attention_dp_size": 1, "moe_ep_size": 2,
                                     "moe_tp_size": 1}


def test_prefill_and_decode_tables() -> None:
    run = aic.resolve_run(AiconfiguratorProfile(model="Qwen/Qwen3-32B", backend="sglang"),
                          "H200", 2)
    prefill, version = aic.prefill_table(run, [2048])
    assert version == "0.5.14"
    # 8 prompts of 2048 fill one 16,384-token step; tens of thousands of tokens/s on 2 x H200
    assert aic.prefill_batch(2048) == 8 and 5_000 < prefill[2048] < 100_000
    tpot, _ = aic.tpot_table(run, 2048, 256, [1, 8, 64])
    assert list(tpot) == [1, 8, 64] and tpot[1] <= tpot[8] <= tpot[64]
    assert aic.source_line(run, version) == (
        f"aiconfigurator {aic.TESTED_VERSION} h200_sxm sglang 0.5.14 Qwen/Qwen3-32B 2 GPUs")


def test_moe_model_with_expert_parallel() -> None:
    spec = AiconfiguratorProfile(model="qwen3-30b-a3b", moe_ep=2)
    run = aic.resolve_run(spec, "H100", 2)
    assert run.parallel_kwargs()["moe_ep_size"] == 2 and run.model_path == "Qwen/Qwen3-30B-A3B"
    tpot, _ = aic.tpot_table(run, 1024, 128, [1, 32])
    assert 0 < tpot[1] <= tpot[32]


def test_out_of_memory_ends_the_table() -> None:
    run = aic.resolve_run(AiconfiguratorProfile(model="Qwen/Qwen3-32B"), "H100", 1)
    tpot, _ = aic.tpot_table(run, 8192, 1024, [1, 4096])
    assert list(tpot) == [1]


def test_scenario_block_resolves() -> None:
    block: dict[str, Any] = {"aiconfigurator": {"model": "Qwen/Qwen3-32B", "backend": "sglang",
                                                "batches": [1, 16]}}
    data = {
        "name": "aic", "gpus": {"H200": {"cost_per_hour": 3.99}},
        "instances": [
            {"name": "p", "model": "qwen3-32b", "role": "prefill", "gpu": "H200",
             "gpus_per_instance": 2, "profile": copy.deepcopy(block)},
            {"name": "d", "model": "qwen3-32b", "role": "decode", "gpu": "H200",
             "gpus_per_instance": 2, "profile": copy.deepcopy(block)},
        ],
        "workloads": [{"name": "w", "model": "qwen3-32b", "requests_per_s": 1,
                       "input_tokens": 2048, "output_tokens": 256,
                       "slo": {"ttft_ms": 1000, "tpot_ms": 50}}],
    }
    resolved = resolve_profiles(scenario_from_data(data))
    assert resolved.instances[0].source.startswith("aiconfigurator 0.12.0 h200_sxm sglang")
    assert list(resolved.instances[1].decode_tables[0].tpot_ms_by_batch) == [1, 16]


def test_cli_prints_blocks() -> None:
    result = CliRunner().invoke(main, [
        "profile", "aiconfigurator", "--model", "Qwen/Qwen3-32B", "--system", "h200_sxm",
        "--backend", "sglang", "--tp", "2", "--lengths", "2048:256", "--role", "decode",
        "--batches", "1,8"])
    assert result.exit_code == 0, result.output
    item = yaml.safe_load(result.stdout)[0]
    assert item["gpu"] == "H200" and item["gpus_per_instance"] == 2
    result = CliRunner().invoke(main, [
        "profile", "aiconfigurator", "--model", "no/such-model", "--system", "h200_sxm",
        "--lengths", "2048:256", "--role", "decode", "--batches", "1"])
    assert result.exit_code == 2
    assert result.stderr.startswith("profile.aiconfigurator: AIConfigurator failed for "
                                    "no/such-model on h200_sxm")
