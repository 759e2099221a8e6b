import pytest

from crowdet.config import load_config
from crowdet.data.synth.generate import MARKER
from crowdet.engine.data import ensure_dataset
from crowdet.errors import CrowdetError


def test_a_users_folder_is_never_filled_with_synthetic_data(tmp_path):
    (tmp_path / "notes.txt").write_text("my dataset, annotations not copied yet")
    cfg = load_config("configs/tiny.yaml", [f"data.root={tmp_path}"])
    with pytest.raises(CrowdetError, match="annotation_train.odgt"):
        ensure_dataset(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_missing_root_is_generated_and_marked(tmp_path):
    root = tmp_path / "new"
    cfg = load_config(
        "configs/tiny.yaml", [f"data.root={root}", "data.synth.train=2", "data.synth.val=1"]
    )
    ensure_dataset(cfg)
    assert (root / MARKER).is_file()
    lines = (root / "annotation_train.odgt").read_text().splitlines()
    assert len(lines) == 2


def test_no_synth_means_a_clear_error(tmp_path):
    cfg = load_config("configs/tiny.yaml", [f"data.root={tmp_path / 'x'}", "data.synth=null"])
    with pytest.raises(CrowdetError, match="CrowdHuman layout"):
        ensure_dataset(cfg)
