import pytest

from crowdet.config import diff_configs, load_config, parse_overrides
from crowdet.errors import ConfigError


def test_defaults_and_overrides_are_typed():
    cfg = load_config(None, ["train.lr=0.01", "model.neck.levels=[3,4]", "data.root=/x"])
    assert cfg.train.lr == 0.01
    assert cfg.model.neck.levels == [3, 4]
    assert cfg.data.root == "/x"


def test_unknown_key_names_path_and_closest(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.lrr'; did you mean 'train.lr'"):
        load_config(p)


def test_unknown_section_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"did you mean 'train'"):
        load_config(None, ["trian.lr=1"])


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"'train.max_iters'"):
        load_config(None, ["train.max_iters=lots"])


def test_bad_override_form():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["train.lr"])


def test_yaml_is_safe_loaded(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_one_base_level(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  lr: 0.5\n  max_iters: 7\n")
    (tmp_path / "top.yaml").write_text("base: base.yaml\ntrain:\n  lr: 0.1\n")
    cfg = load_config(tmp_path / "top.yaml")
    assert (cfg.train.lr, cfg.train.max_iters) == (0.1, 7)
    (tmp_path / "base.yaml").write_text("base: other.yaml\n")
    with pytest.raises(ConfigError, match="may not have a base"):
        load_config(tmp_path / "top.yaml")


def test_shipped_configs_load_and_have_interface_keys():
    for name in ("demo", "tiny"):
        cfg = load_config(f"configs/{name}.yaml")
        assert cfg.data.root and cfg.train.max_iters > 0
        assert cfg.train.eval_interval >= 0 and cfg.train.checkpoint_interval >= 0


def test_diff_configs_lists_changed_keys():
    a = {"train": {"lr": 1, "seed": 0}, "name": "x"}
    b = {"train": {"lr": 2, "seed": 0}, "name": "y"}
    assert diff_configs(a, b) == ["name", "train.lr"]


def test_amp_off_survives_yaml_booleans(tmp_path):
    # YAML 1.1 reads a bare `off` as false; the mode is still 'off', other booleans stay errors
    assert load_config(None, ["train.amp=off"]).train.amp == "off"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train: {amp: off}\n")
    assert load_config(cfg).train.amp == "off"
    with pytest.raises(ConfigError, match="train.amp"):
        load_config(None, ["train.amp=on"])
