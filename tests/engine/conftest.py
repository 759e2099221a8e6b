"""One small synthetic dataset per test session (configs/tiny.yaml's 16 train / 8 val images)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_helpers import tiny_config  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from crowdet.engine.data import ensure_dataset

    root = tmp_path_factory.mktemp("tiny-data")
    ensure_dataset(tiny_config(root))
    return root
