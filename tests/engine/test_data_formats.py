"""data.format: the training and validation sets read by each format's reader from its usual
layout under data.root; the same data as odgt and as COCO json gives identical batches."""

import shutil

import pytest
import torch
from engine_helpers import tiny_config

from crowdet.data.convert import convert
from crowdet.engine import data as D
from crowdet.errors import CrowdetError


def batches(cfg, n: int = 3, epoch: int = 0):
    """The first n training batches, as the trainer draws them (augmentation included)."""
    records = D.load_records(cfg, "train")
    dataset = D.build_dataset(cfg, records, train=True)
    dataset.set_epoch(epoch)
    order = D.epoch_batches(len(dataset), cfg.train.batch_size, epoch, cfg.train.seed)
    loader = D.make_loader(dataset, order[:n], 0, cfg.data.size_divisor, seed=cfg.train.seed)
    return list(loader)


@pytest.fixture(scope="module")
def coco_root(tiny_data, tmp_path_factory):
    """tiny_data's annotations as COCO json in the usual COCO layout (annotations/*.json,
    images/ holding the same pictures)."""
    root = tmp_path_factory.mktemp("coco")
    shutil.copytree(tiny_data / "Images", root / "images")
    for split in ("train", "val"):
        src = tiny_data / f"annotation_{split}.odgt"
        convert(src, root / "annotations" / f"{split}.json", "odgt", "coco",
                images_dir=tiny_data / "Images")  # fmt: skip
    return root


def test_coco_json_and_odgt_give_identical_batches(tiny_data, coco_root):
    plain = tiny_config(tiny_data, "augment.scale=[0.8,1.2]", "augment.hsv=[0.1,0.3,0.3]")
    coco = tiny_config(coco_root, "data.format=coco", "augment.scale=[0.8,1.2]",
                       "augment.hsv=[0.1,0.3,0.3]", "data.synth=null")  # fmt: skip
    assert D.ann_path(coco, "train") == coco_root / "annotations" / "train.json"
    assert D.images_dir(coco, "train") == coco_root / "images"
    a, b = batches(plain), batches(coco)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        assert x.image_ids == y.image_ids
        assert int(x.valid.sum()) > 0
        for name in ("images", "image_sizes", "boxes", "valid", "ignore", "scales"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
    assert len(D.load_records(coco, "val")) == len(D.load_records(plain, "val"))


def test_each_format_has_its_usual_layout(tmp_path):
    expected = {
        "odgt": ("annotation_train.odgt", "annotation_val.odgt", "Images"),
        "coco": ("annotations/train.json", "annotations/val.json", "images"),
        "widerperson": ("train.txt", "val.txt", "Images"),
        "citypersons": ("anno_train.mat", "anno_val.mat", "leftImg8bit/val"),
        "ecp": ("ECP/day/labels/train", "ECP/day/labels/val", None),
    }
    for fmt, (train, val, images) in expected.items():
        cfg = tiny_config(tmp_path, f"data.format={fmt}")
        assert D.ann_path(cfg, "train") == tmp_path / train
        assert D.ann_path(cfg, "val") == tmp_path / val
        got = D.images_dir(cfg, "val")
        assert got == (None if images is None else tmp_path / images), fmt
    cfg = tiny_config(tmp_path, "data.format=coco", "data.train_ann=a.json", "data.images=pics")
    assert D.ann_path(cfg, "train") == tmp_path / "a.json"
    assert D.images_dir(cfg) == tmp_path / "pics"


def test_widerperson_layout_trains_from_its_files(tiny_data, tmp_path):
    """A WiderPerson set (Annotations/<name>.jpg.txt, train.txt / val.txt, Images/) read through
    data.format=widerperson: the people and ignore regions of the odgt records."""
    odgt = tiny_config(tiny_data)
    root = tmp_path / "wp"
    shutil.copytree(tiny_data / "Images", root / "Images")
    (root / "Annotations").mkdir()
    for split in ("train", "val"):
        names = []
        for rec in D.load_records(odgt, split):
            name = f"{rec.image_id}.jpg"
            names.append(rec.image_id)
            rows = [f"{4 if ign else 1} " + " ".join(f"{v:.2f}" for v in box)
                    for box, ign in zip(rec.fbox, rec.ignore_for("full"))]  # fmt: skip
            (root / "Annotations" / f"{name}.txt").write_text("\n".join([str(len(rows)), *rows]))
        (root / f"{split}.txt").write_text("\n".join(names))
    cfg = tiny_config(root, "data.format=widerperson", "data.synth=null")
    got, want = D.load_records(cfg, "train"), D.load_records(odgt, "train")
    assert [r.image_id for r in got] == [r.image_id for r in want]
    for g, w in zip(got, want):
        assert g.image_path == str(root / "Images" / f"{w.image_id}.jpg")
        assert torch.allclose(torch.as_tensor(g.fbox), torch.as_tensor(w.fbox), atol=0.01)
    assert len(batches(cfg, 1)[0].image_ids) == cfg.train.batch_size


def test_a_missing_annotation_file_names_the_key(tmp_path):
    cfg = tiny_config(tmp_path / "none", "data.format=coco")
    with pytest.raises(CrowdetError, match="annotations/train.json.*data.format=coco"):
        D.ensure_dataset(cfg)
    assert not (tmp_path / "none").exists()  # no synthetic odgt set generated for coco
