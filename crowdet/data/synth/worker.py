"""Making one image file and its record; runs in the worker processes (no torch import here).

Each image's random generator is seeded from (seed, split, index) only, so the bytes of an image do
not depend on how many processes share the work or in which order they run.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from crowdet.data.records import ImageRecord
from crowdet.data.synth.presets import SynthPreset
from crowdet.data.synth.render import Scene, render_scene
from crowdet.errors import CrowdetError

SPLIT_CODES = {"train": 0, "val": 1}


def image_id(split: str, index: int) -> str:
    return f"synth_{split}_{index:06d}"


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLIT_CODES[split], int(index)])


def scene_record(scene: Scene, image_id: str, path: str) -> ImageRecord:
    """People first (box_id 0..N-1), then one `mask` row per ignore region."""
    n, m = len(scene.fbox), len(scene.ignore)
    return ImageRecord(
        image_id=image_id,
        image_path=path,
        width=scene.image.shape[1],
        height=scene.image.shape[0],
        fbox=np.concatenate([scene.fbox, scene.ignore]),
        vbox=np.concatenate([scene.vbox, scene.ignore]),
        hbox=np.concatenate([scene.hbox, scene.ignore]),
        ignore=np.concatenate([np.zeros(n, bool), np.ones(m, bool)]),
        head_ignore=np.concatenate([scene.head_ignore, np.zeros(m, bool)]),
        box_ids=np.concatenate([np.arange(n), np.full(m, -1)]).astype(np.int64),
        occ=np.concatenate([scene.occ.astype(np.float32), np.full(m, np.nan, np.float32)]),
    )


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """Encode and write through a temporary name, so a file under the final name is complete."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CrowdetError(f"could not encode {path.name} as JPEG")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def make_image(
    cfg: SynthPreset, images_dir: str, seed: int, split: str, index: int
) -> tuple[ImageRecord, np.ndarray, np.ndarray]:
    """Render, write `images_dir/<ID>.jpg`; return (record, visible shares (N,), head occ (N,))."""
    scene = render_scene(cfg, image_rng(seed, split, index))
    iid = image_id(split, index)
    path = Path(images_dir) / f"{iid}.jpg"
    _write_jpeg(path, scene.image, scene.jpeg_quality)
    return scene_record(scene, iid, str(path)), scene.visible, scene.head_occ


_STATE: dict = {}


def init_worker(cfg: SynthPreset, images_dir: str, seed: int) -> None:
    cv2.setNumThreads(1)
    _STATE.update(cfg=cfg, images_dir=images_dir, seed=seed)


def work(job: tuple[str, int]) -> tuple[ImageRecord, np.ndarray, np.ndarray]:
    return make_image(_STATE["cfg"], _STATE["images_dir"], _STATE["seed"], *job)
