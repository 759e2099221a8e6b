"""Writing COCO-style json for people (the reader is `crowdet.data.coco`).

One image entry per record (records without boxes included), every row as an annotation of
category 1 "person" with a unique `id`, the record's own box ID as `box_id`, ignore regions as
`iscrowd: 1, ignore: 1`, `vis_bbox` / `head_bbox` / `occ` / `head_ignore` when present. With
`box="visible"` or `"head"` that kind goes to `bbox` (COCO tools evaluate it; `iscrowd` then
follows that kind's ignore flags, and a row without such a box is written with its full box as
`iscrowd: 1`) and the full box is kept as `full_bbox`, so reading the file back gives the same
records. The source fields no record attribute holds (`fields`, `box_fields`) are merged into the
image and annotation entries; the fields above win.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from crowdet.data.atomic import atomic_open
from crowdet.data.boxfmt import xywh_lists_per_record
from crowdet.data.fields import merge_fields
from crowdet.data.records import BOX_KINDS, ImageRecord

# Written in `info`: which box kind `bbox` holds. Files from elsewhere hold "full".
BBOX_KIND_KEY = "crowdet_bbox"


def file_name_of(rec: ImageRecord) -> str:
    """COCO `file_name` of a record: its ID plus the image's extension (default .jpg)."""
    return rec.image_id + (Path(rec.image_path).suffix or ".jpg")


def records_to_coco(records: list[ImageRecord], box: str = "full") -> dict:
    """Records -> a COCO dict; `box` ("full", "visible", "head") is the kind written as `bbox`."""
    if box not in BOX_KINDS:
        raise ValueError(f"unknown box kind {box!r}; expected one of {BOX_KINDS}")
    images, annotations = [], []
    xywh = {kind: xywh_lists_per_record([r.boxes(kind) for r in records]) for kind in BOX_KINDS}
    for index, rec in enumerate(records, 1):
        image = {"id": index, "file_name": file_name_of(rec), "width": rec.width}
        image["height"] = rec.height
        images.append(merge_fields(image, rec.fields))
        parts = {kind: xywh[kind][index - 1] for kind in BOX_KINDS}
        annotations += _annotations(rec, index, box, len(annotations) + 1, parts)
    info = {"description": "people, written by crowdet", BBOX_KIND_KEY: box}
    categories = [{"id": 1, "name": "person", "supercategory": "person"}]
    return {"info": info, "images": images, "annotations": annotations, "categories": categories}


def _annotations(rec: ImageRecord, image_index: int, box: str, start: int, parts) -> list[dict]:
    """COCO annotations of one record; `parts`: box kind -> xywh lists (None where absent)."""
    full, vis, head, chosen = parts["full"], parts["visible"], parts["head"], parts[box]
    # a row without the chosen kind keeps its full box, as a region to ignore for that kind
    crowd = (rec.ignore_for(box) | ~np.isfinite(rec.boxes(box)).all(1)).tolist()
    ignore, head_ignore = rec.ignore.tolist(), rec.head_ignore.tolist()
    box_ids, occ = rec.box_ids.tolist(), rec.occ.tolist()
    out = []
    for i in range(len(rec)):
        bbox = chosen[i] if chosen[i] is not None else full[i]
        ann = {
            "id": start + len(out),
            "image_id": image_index,
            "category_id": 1,
            "bbox": bbox,
            "area": float(bbox[2]) * float(bbox[3]),
            "iscrowd": int(crowd[i]),
            "ignore": int(ignore[i]),
            "box_id": box_ids[i],
        }
        if box != "full":
            ann["full_bbox"] = full[i]
        for key, part in (("vis_bbox", vis), ("head_bbox", head)):
            if part[i] is not None:
                ann[key] = part[i]
        if head_ignore[i]:
            ann["head_ignore"] = 1
        if math.isfinite(occ[i]):
            ann["occ"] = int(occ[i]) if float(occ[i]).is_integer() else occ[i]
        out.append(merge_fields(ann, rec.fields_of(i)))
    return out


def write_coco(records: list[ImageRecord], path: str | os.PathLike, box: str = "full") -> None:
    """Write records as a COCO json, atomically (see `records_to_coco`)."""
    data = records_to_coco(records, box)
    with atomic_open(path, "w") as f:
        f.write(json.dumps(data))
