"""A tiny trained checkpoint shared by the command tests (configs/tiny.yaml, 16 steps)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"


def tiny_overrides(root: Path, *extra: str) -> list[str]:
    return [f"data.root={root}", "train.threads=1", "train.vis_images=0", *extra]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, run folder holding last.pt) of a 16-step tiny run."""
    from crowdet.config import load_config
    from crowdet.engine.trainer import Trainer

    base = tmp_path_factory.mktemp("tiny-run")
    cfg = load_config(TINY, tiny_overrides(base / "data", "train.max_iters=16", "train.lr=0.005"))
    Trainer(cfg, base / "run").train(final_eval=False)
    return base / "data", base / "run"
