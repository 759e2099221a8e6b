import pytest

from crowdet.config import config_from_dict, diff_configs, load_config, parse_overrides
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


def test_config_path_that_is_a_folder_is_one_line_naming_it(tmp_path):
    (tmp_path / "tiny.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError, match=r"is a folder, not a config file.*tiny\.yaml") as e:
        load_config(tmp_path)
    assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_config_file_is_an_error_not_all_defaults(tmp_path, text):
    p = tmp_path / "empty.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=r"empty\.yaml: the config file is empty"):
        load_config(p)


def test_an_explicit_empty_mapping_means_every_default(tmp_path):
    p = tmp_path / "defaults.yaml"
    p.write_text("{}\n")
    assert load_config(p) == load_config(None)


def test_duplicate_key_is_refused_naming_both_lines(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("name: a\ntrain:\n  lr: 0.1\n  batch_size: 2\n  lr: 0.2\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value) == f"{p}:5: duplicate key 'lr' (first given at line 3); keep one"
    p.write_text("name: a\ntrain: {lr: 0.1}\nname: b\n")  # at the top level too
    with pytest.raises(ConfigError, match=r"dup\.yaml:3: duplicate key 'name' \(first .* line 1\)"):
        load_config(p)


def test_duplicate_key_in_a_base_or_an_override_value_is_refused(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  lr: 0.5\n  lr: 0.6\n")
    (tmp_path / "top.yaml").write_text("base: base.yaml\n")
    with pytest.raises(ConfigError, match=r"base\.yaml:3: duplicate key 'lr'"):
        load_config(tmp_path / "top.yaml")
    with pytest.raises(ConfigError, match=r"duplicate key 'lr'"):
        load_config(None, ["train={lr: 1, lr: 2}"])


def test_a_key_next_to_a_yaml_merge_overrides_it_and_is_no_duplicate(tmp_path):
    p = tmp_path / "merge.yaml"
    p.write_text("train:\n  <<: {lr: 0.1, batch_size: 2}\n  lr: 0.3\n")
    cfg = load_config(p)
    assert (cfg.train.lr, cfg.train.batch_size) == (0.3, 2)


def test_base_must_be_a_path(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("base: 5\n")
    with pytest.raises(ConfigError, match=r"'base' must be the path of a config file, got 5"):
        load_config(p)


def test_assign_section_has_one_model_per_assigner(tmp_path):
    from crowdet.config import ATSSAssignConfig, MaxIoUAssignConfig, config_to_dict

    cfg = load_config(None, ["assign.name=atss", "assign.topk=4"])
    assert isinstance(cfg.assign, ATSSAssignConfig) and cfg.assign.topk == 4
    assert set(config_to_dict(cfg)["assign"]) == {
        "name", "ignore_ioa", "max_elements", "topk", "low_quality"
    }  # fmt: skip
    message = (
        r"unknown key 'assign.topk'; it is a key of assign.name=atss \(valid here: name, "
        r"ignore_ioa, max_elements, pos_iou, neg_iou, low_quality\)"
    )
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["assign.topk=4"])
    (tmp_path / "c.yaml").write_text("assign: {name: atss, pos_iou: 0.4}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'assign.pos_iou'.*assign.name=max_iou"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "c.yaml").write_text("assign: {pos_iou: 0.6}\n")  # no name: max-IoU
    cfg = load_config(tmp_path / "c.yaml")
    assert isinstance(cfg.assign, MaxIoUAssignConfig) and cfg.assign.pos_iou == 0.6
    with pytest.raises(ConfigError, match=r"'assign': must be a mapping of keys with a 'name'"):
        load_config(None, ["assign=3"])


def test_a_checkpoint_config_from_before_the_assign_models_loads():
    from crowdet.config import config_to_dict, saved_config
    from crowdet.engine.weights import checkpoint_config

    saved = config_to_dict(load_config("configs/demo.yaml"))
    saved["assign"] = {"name": "max_iou", "pos_iou": 0.4, "neg_iou": 0.3, "topk": 9,
                       "ignore_ioa": 0.5, "max_elements": 2**20}  # fmt: skip
    with pytest.raises(ConfigError, match="assign.topk"):
        config_from_dict(saved)
    assert "topk" not in saved_config(saved)["assign"] and "topk" in saved["assign"]
    cfg = checkpoint_config({"config": saved}, "old.pt")
    assert (cfg.assign.pos_iou, cfg.assign.neg_iou, cfg.assign.low_quality) == (0.4, 0.3, True)


def test_an_override_of_the_name_switches_the_assigner(tmp_path):
    # the file's keys of the other assigner go; its shared keys stay; the overrides are checked
    (tmp_path / "c.yaml").write_text("assign: {pos_iou: 0.6, ignore_ioa: 0.7}\n")
    cfg = load_config(tmp_path / "c.yaml", ["assign.name=atss", "assign.topk=18"])
    assert cfg.assign.model_dump() == {
        "name": "atss", "ignore_ioa": 0.7, "max_elements": 2**20, "topk": 18, "low_quality": True
    }  # fmt: skip
    assert load_config("configs/demo.yaml", ["assign.name=atss"]).assign.name == "atss"
    with pytest.raises(ConfigError, match=r"unknown key 'assign.pos_iou'"):
        load_config("configs/demo.yaml", ["assign.name=atss", "assign.pos_iou=0.5"])
    (tmp_path / "c.yaml").write_text("assign: {pos_iou: 0.6, ignore_iao: 0.7}\n")  # a typo
    with pytest.raises(ConfigError, match=r"unknown key 'assign.ignore_iao'; did you mean"):
        load_config(tmp_path / "c.yaml", ["assign.name=atss"])
