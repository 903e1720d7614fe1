"""Shared fixtures: the project root, the paper's scenario, and the public data folder."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAPER_SCENARIO = ROOT / "scenarios" / "paper-deepseek-v31-h200.yaml"
# The paper's decode benchmark (batch: TPOT ms), arXiv 2603.04716, 8xH200, DeepSeek-V3.1.
PAPER_TPOT_MS_BY_BATCH = {10: 12.8, 20: 16.4, 30: 18.8, 40: 21.6, 50: 23.9, 60: 26.2}


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def paper_scenario_path() -> Path:
    return PAPER_SCENARIO


@pytest.fixture
def paper_data() -> dict[str, Any]:
    """The paper's scenario as plain data; each test gets its own copy to modify."""
    return copy.deepcopy(_PAPER_DATA)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public data folder beside the project (../shared/data); skips when absent, as in a
    fresh clone."""
    path = ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"public data folder {path} is absent")
    return path


_PAPER_DATA: dict[str, Any] = yaml.safe_load(PAPER_SCENARIO.read_text(encoding="utf-8"))
