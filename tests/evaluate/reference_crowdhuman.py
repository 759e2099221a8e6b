"""A slow, literal implementation of METRICS.md (CrowdHuman AP, MR^-2, JI): one image, one box,
one pair at a time, in Python floats. The fast evaluator is compared with it.

The edge cases METRICS.md leaves to crowdet follow crowdet's documented choices: recall 0 when
there is no GT, miss rates floored at 1e-10 in the log-average, JI 0 when no image counts.
"""

from __future__ import annotations

import math

EPS = 1e-6
THRESHOLD = 0.5
MR_REFS = [0.0100, 0.0178, 0.0316, 0.0562, 0.1000, 0.1778, 0.3162, 0.5623, 1.0000]
JI_THRESHOLDS = [0.1 * i for i in range(10)]


def clip(box, w, h):
    x1, y1, x2, y2 = box
    return [min(max(x1, 0), w - 1), min(max(y1, 0), h - 1), max(min(x2, w), 0), max(min(y2, h), 0)]


def area(b):
    return max(b[2] - b[0], 0) * max(b[3] - b[1], 0)


def inter(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    return max(iw, 0) * max(ih, 0)


def iou(a, b):
    i = inter(a, b)
    return i / (area(a) + area(b) - i + EPS)


def ioa(a, b):
    """Intersection over the area of `a`."""
    return inter(a, b) / (area(a) + EPS)


def in_ignore(box, ignores):
    return any(ioa(box, ig) > THRESHOLD for ig in ignores)


def prepare(gt, dets, box_kind="full", sizes=None):
    """Per image: (valid GT boxes, ignore boxes, [(score, box)] sorted by score), all clipped."""
    images = []
    for rec in gt:
        w, h = sizes[rec.image_id] if sizes and rec.image_id in sizes else (rec.width, rec.height)
        valid, ignores = [], []
        flags = rec.ignore_for(box_kind).tolist()
        for row, flag in zip(rec.boxes(box_kind).tolist(), flags):
            if not all(math.isfinite(v) for v in row):
                continue
            (ignores if flag else valid).append(clip(row, w, h))
        boxes, scores = dets.get(rec.image_id, ([], []))
        found = [(float(s), clip([float(v) for v in b], w, h)) for b, s in zip(boxes, scores)]
        found = sorted(found, key=lambda sb: -sb[0])
        images.append((valid, ignores, found))
    return images


def match_image(valid, ignores, found):
    """Greedy matching of one image -> [(score, 1 for TP / 0 for FP)], ignored ones left out."""
    used = [False] * len(valid)
    out = []
    for score, box in found:
        best, best_iou = -1, THRESHOLD
        for j, g in enumerate(valid):
            if used[j]:
                continue
            o = iou(box, g)
            if o > best_iou:
                best, best_iou = j, o
        if best >= 0:
            used[best] = True
            out.append((score, 1))
        elif not in_ignore(box, ignores):
            out.append((score, 0))
    return out


def curves(images):
    """(recall, precision, fppi) lists along the global score-sorted list."""
    scorelist = []
    for valid, ignores, found in images:
        scorelist.extend(match_image(valid, ignores, found))
    scorelist.sort(key=lambda x: -x[0])
    num_gt = sum(len(valid) for valid, _, _ in images)
    tp = fp = 0
    recall, precision, fppi = [], [], []
    for _, is_tp in scorelist:
        tp, fp = tp + is_tp, fp + (1 - is_tp)
        recall.append(tp / num_gt if num_gt else 0.0)
        precision.append(tp / (tp + fp))
        fppi.append(fp / len(images))
    return recall, precision, fppi


def average_precision(recall, precision):
    ap = 0.0
    for i in range(1, len(recall)):
        ap += (recall[i] - recall[i - 1]) * (precision[i] + precision[i - 1]) / 2
    return ap


def miss_rate_points(recall, fppi):
    points = []
    for ref in MR_REFS:
        pos = len(fppi) - 1
        for i, f in enumerate(fppi):
            if f >= ref:
                pos = i
                break
        points.append(1.0 - recall[pos] if fppi else 1.0)
    return points


def log_average(points):
    return math.exp(sum(math.log(max(p, 1e-10)) for p in points) / len(points))


def hungarian_max(weight):
    """Maximum-weight assignment of an n x m weight matrix (lists), n <= m -> {row: col}.

    The textbook Kuhn-Munkres with potentials, minimising -weight.
    """
    n, m = len(weight), len(weight[0])
    u, v, p, way = [0.0] * (n + 1), [0.0] * (m + 1), [0] * (m + 1), [0] * (m + 1)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [math.inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], math.inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = -weight[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    return {p[j] - 1: j - 1 for j in range(1, m + 1) if p[j]}


def max_weight_pairs(dts, gts):
    """Maximum-total-IoU matching over IoU > 0.5 pairs -> [(det, gt)]."""
    w = [[iou(d, g) if iou(d, g) > THRESHOLD else 0.0 for g in gts] for d in dts]
    if not dts or not gts:
        return []
    if len(dts) <= len(gts):
        pairs = hungarian_max(w).items()
    else:
        wt = [[w[i][j] for i in range(len(dts))] for j in range(len(gts))]
        pairs = [(d, g) for g, d in hungarian_max(wt).items()]
    return [(d, g) for d, g in pairs if w[d][g] > THRESHOLD]


def jaccard(images):
    """(JI, [JI at each threshold])."""
    per_t = []
    for t in JI_THRESHOLDS:
        total, counted = 0.0, 0
        for valid, ignores, found in images:
            dts = [box for score, box in found if score > t]
            pairs = max_weight_pairs(dts, valid)
            k = len(pairs)
            hit_d, hit_g = {d for d, _ in pairs}, {g for _, g in pairs}
            n = len(dts) - sum(
                1 for i, d in enumerate(dts) if i not in hit_d and in_ignore(d, ignores)
            )
            m = len(valid) - sum(
                1 for j, g in enumerate(valid) if j not in hit_g and in_ignore(g, ignores)
            )
            total += k / (m + n - k + EPS)
            counted += 1 if (m > 0 or n > 0) else 0
        per_t.append(total / counted if counted else 0.0)
    return max(per_t), per_t


def reference_metrics(gt, dets, box_kind="full", sizes=None, ji=True):
    """{"AP", "MR", "JI", "mr_points", "ji_curve", "recall", "precision", "fppi"}."""
    images = prepare(gt, dets, box_kind, sizes)
    recall, precision, fppi = curves(images)
    points = miss_rate_points(recall, fppi)
    out = {
        "AP": average_precision(recall, precision),
        "MR": log_average(points),
        "mr_points": points,
        "recall": recall,
        "precision": precision,
        "fppi": fppi,
    }
    if ji:
        out["JI"], out["ji_curve"] = jaccard(images)
    return out
