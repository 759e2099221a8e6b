"""A slow, literal Caltech/CityPersons MR^-2 (the loops of CityPersons' `evaluateImg` and
`accumulate`, per image, per box, in Python floats), with crowdet's documented choices: recall 0
before the first point, miss rates floored at 1e-10."""

from __future__ import annotations

import math

REFS = [0.0100, 0.0178, 0.0316, 0.0562, 0.1000, 0.1778, 0.3162, 0.5623, 1.0000]


def _inter(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


def _visibility(full, vis):
    if not all(math.isfinite(v) for v in vis):
        return 1.0
    return _inter(full, vis) / _area(full) if _area(full) > 0 else 1.0


def _image_gt(rec, box_kind, setup):
    """[(box, is_ignore)] with the regular people first (stable)."""
    rows = []
    boxes = rec.boxes(box_kind).tolist()
    for i, box in enumerate(boxes):
        if not all(math.isfinite(v) for v in box):
            continue
        ignore = bool(rec.ignore_for(box_kind)[i])
        if not ignore:
            h = box[3] - box[1]
            v = _visibility(rec.fbox[i].tolist(), rec.vbox[i].tolist())
            ignore = not (setup.height[0] <= h <= setup.height[1])
            ignore = ignore or not (setup.visibility[0] <= v <= setup.visibility[1])
        rows.append((box, ignore))
    return [r for r in rows if not r[1]] + [r for r in rows if r[1]]


def _match_image(gts, found):
    """[(score, 1 TP / 0 FP)] of one image; detections matched to an ignore region left out."""
    used = [False] * len(gts)
    out = []
    for score, d in found:
        best_oa, best_g, best_m = 0.5, -2, -2
        for j, (g, ignore) in enumerate(gts):
            if used[j]:
                continue
            if best_m != -2 and ignore:
                break
            inter = _inter(d, g)
            overlap = 0.0
            if inter > 0:
                overlap = inter / (_area(d) if ignore else _area(d) + _area(g) - inter)
            if overlap < best_oa:
                continue
            best_oa, best_g, best_m = overlap, j, (-1 if ignore else 1)
        if best_g == -2:
            out.append((score, 0))
        elif best_m == 1:
            used[best_g] = True
            out.append((score, 1))
    return out


def caltech_reference(gt, dets, box_kind, setup):
    """MR^-2 of one setup."""
    scorelist, num_people = [], 0
    for rec in gt:
        gts = _image_gt(rec, box_kind, setup)
        num_people += sum(1 for _, ignore in gts if not ignore)
        boxes, scores = dets.get(rec.image_id, ([], []))
        found = sorted(
            [(float(s), [float(v) for v in b]) for b, s in zip(boxes, scores)], key=lambda x: -x[0]
        )
        lo, hi = setup.height[0] / 1.25, setup.height[1] * 1.25
        found = [(s, b) for s, b in found if lo <= b[3] - b[1] < hi]
        scorelist.extend(_match_image(gts, found))
    if num_people == 0:
        return 1.0
    scorelist.sort(key=lambda x: -x[0])
    tp = fp = 0
    recall, fppi = [], []
    for _, is_tp in scorelist:
        tp, fp = tp + is_tp, fp + 1 - is_tp
        recall.append(tp / num_people)
        fppi.append(fp / len(gt))
    logs = []
    for ref in REFS:
        r = 0.0
        for rec_value, f in zip(recall, fppi):
            if f <= ref:
                r = rec_value
        logs.append(math.log(max(1e-10, 1 - r)))
    return math.exp(sum(logs) / len(logs))
