"""Scenes of filled rectangles in distinct colours, and the check of every box of a transformed
sample against the pixels it was made from.

A person is three nested rectangles: the full box in colour F, the visible box inside it in V, the
head inside the top of the visible box in H; an ignore region is one rectangle in G. After a
transform, each row's owner is found from the colour inside its visible box, and its boxes are
compared with the pixels of the owner's colours near them (visible = V + H, head = H,
full = F + V + H, ignore region = G)."""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from crowdet.data.sample import Sample

BACKGROUND = (0, 0, 0)
GREY = (114, 114, 114)  # the fill of mosaic and affine
PALETTE = [c for c in itertools.product((0, 85, 170, 255), repeat=3) if c != BACKGROUND]
PER_IMAGE = 13  # colours per scene: 4 people x 3 + 1 ignore region
NAN4 = [np.nan] * 4


def scene(k: int, h: int = 120, w: int = 160, seed: int = 0) -> Sample:
    """Scene `k` (0-3: its own colours): 4 people and 1 ignore region in a 2 x 3 grid of cells,
    at integer coordinates drawn from `seed`."""
    rng = np.random.default_rng((seed, k))
    colours = PALETTE[k * PER_IMAGE : (k + 1) * PER_IMAGE]
    image = np.zeros((h, w, 3), np.uint8)
    cells = [(x, y) for y in range(2) for x in range(3)]
    rng.shuffle(cells)
    ch, cw = h // 2, w // 3
    full, visible, head, ignore = [], [], [], []
    for i, (cx, cy) in enumerate(cells[:5]):
        x1, y1 = cx * cw + int(rng.integers(1, 6)), cy * ch + int(rng.integers(1, 6))
        x2, y2 = x1 + int(rng.integers(30, cw - 6)), y1 + int(rng.integers(34, ch - 6))
        if i == 4:  # the ignore region
            image[y1:y2, x1:x2] = colours[12]
            full.append([x1, y1, x2, y2]), visible.append([x1, y1, x2, y2]), head.append(NAN4)
            ignore.append(True)
            continue
        vx1, vy1 = x1 + int(rng.integers(3, 7)), y1 + int(rng.integers(3, 7))
        vx2, vy2 = x2 - int(rng.integers(3, 7)), y2 - int(rng.integers(6, 12))
        hx1, hy1, hx2, hy2 = vx1 + 3, vy1, vx1 + 13, vy1 + 10
        image[y1:y2, x1:x2] = colours[3 * i]
        image[vy1:vy2, vx1:vx2] = colours[3 * i + 1]
        image[hy1:hy2, hx1:hx2] = colours[3 * i + 2]
        full.append([x1, y1, x2, y2]), visible.append([vx1, vy1, vx2, vy2])
        head.append([hx1, hy1, hx2, hy2]), ignore.append(False)
    boxes = {
        "full": np.array(full, np.float32),
        "visible": np.array(visible, np.float32),
        "head": np.array(head, np.float32),
    }
    ignore = np.array(ignore)
    return Sample(image, f"scene{k}", boxes, ignore, np.zeros(5, bool), orig_size=(h, w))


class Source:
    """A SampleSource of scenes (duck-typed: len and load)."""

    def __init__(self, samples: list[Sample]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Sample:
        return self.samples[index]


def labels(image: np.ndarray, near: float = 30.0, interior: bool = False) -> np.ndarray:
    """(H, W) index into PALETTE of each pixel's colour; -1 background, grey or a blend.
    interior: only pixels whose four neighbours have their colour (an interpolated image blends
    two colours at an edge into what may be a third colour of the palette)."""
    colours = np.array([*PALETTE, BACKGROUND, GREY], np.float32)
    d = np.linalg.norm(image[:, :, None, :].astype(np.float32) - colours, axis=-1)
    best = d.argmin(-1)
    out = np.where(d.min(-1) < near, best, -1)
    out = np.where(out >= len(PALETTE), -1, out)
    if interior:
        p = np.pad(out, 1, mode="edge")
        same = (p[:-2, 1:-1] == out) & (p[2:, 1:-1] == out) & (p[1:-1, :-2] == out)
        out = np.where(same & (p[1:-1, 2:] == out), out, -1)
    return out


def _pixel_box(mask: np.ndarray, box: np.ndarray, margin: int) -> np.ndarray | None:
    """xyxy enclosing the True pixels of `mask` within `box` grown by `margin` (None: none)."""
    h, w = mask.shape
    x1, y1 = (max(0, int(np.floor(v)) - margin) for v in box[:2])
    x2, y2 = (min(lim, int(np.ceil(v)) + margin) for v, lim in zip(box[2:], (w, h)))
    ys, xs = np.nonzero(mask[y1:y2, x1:x2])
    if not len(xs):
        return None
    return np.array([xs.min() + x1, ys.min() + y1, xs.max() + x1 + 1, ys.max() + y1 + 1], float)


def _owners(lab: np.ndarray, box: np.ndarray) -> list[tuple[str, int]]:
    """The people ("p", id) and ignore regions ("g", scene) whose visible colours show in `box`,
    most pixels first (a person occluded by a pasted one may show less of itself there)."""
    x1, y1, x2, y2 = np.round(box).astype(int)
    inside = lab[max(y1, 0) : y2, max(x1, 0) : x2].ravel()
    scene_, j = np.divmod(inside[inside >= 0], PER_IMAGE)
    code = np.where(j == 12, 1000 + scene_, np.where(j % 3 > 0, scene_ * 4 + j // 3, -1))
    values, counts = np.unique(code[code >= 0], return_counts=True)
    order = values[np.argsort(-counts)].tolist()
    return [("g", c - 1000) if c >= 1000 else ("p", c) for c in order]


def _colours(owner) -> dict[str, list[int]]:
    kind, ident = owner
    if kind == "g":
        return {"full": [ident * PER_IMAGE + 12]}
    scene_, i = divmod(ident, 4)
    base = scene_ * PER_IMAGE + 3 * i
    return {"full": [base, base + 1, base + 2], "visible": [base + 1, base + 2], "head": [base + 2]}


def check(sample: Sample, tol: float = 2.0, amodal: bool = False) -> int:
    """Assert every row's boxes (clipped to the image) match the pixels of its owner within
    `tol` pixels (tol > 0: an interpolated image, compared on the interior pixels), that a
    region of an ignore colour is an ignore row and that every visible
    region of 8+ pixels lies in some row's visible box -> the number of rows checked. amodal:
    full boxes need only contain their pixels (pasted people cover others' full boxes)."""
    lab = labels(sample.image, interior=tol > 0)
    h, w = lab.shape
    margin = int(np.ceil(tol)) + 1
    boxes = {k: b.copy() for k, b in sample.boxes.items()}
    for b in boxes.values():
        b[:, 0::2], b[:, 1::2] = b[:, 0::2].clip(0, w), b[:, 1::2].clip(0, h)
    checked, sliver = 0, 3 + 2 * tol  # narrower boxes: their pixels may be blended away
    for r in range(len(sample)):
        vis = boxes["visible"][r]
        if (vis[2:] - vis[:2] < sliver).any():
            continue
        owners = _owners(lab, vis)
        assert owners, f"row {r}: no colour of a person in its visible box {vis}"
        errors = [_mismatch(lab, boxes, r, o, tol, margin, sliver, amodal) for o in owners]
        assert "" in errors, f"row {r}: {errors[0]}"
        if owners[errors.index("")][0] == "g":
            assert sample.ignore[r], f"row {r} covers an ignore region but is not ignore"
        checked += 1
    _check_coverage(lab, boxes["visible"], tol)
    return checked


def _mismatch(lab, boxes, r, owner, tol, margin, sliver, amodal) -> str:
    """Why row `r`'s boxes do not match the pixels of `owner` ("" when they do)."""
    for kind, colours in _colours(owner).items():
        box = boxes[kind][r] if owner[0] == "p" else boxes["full"][r]
        if not np.isfinite(box).all() or (box[2:] - box[:2] < sliver).any():
            continue
        got = _pixel_box(np.isin(lab, colours), box, margin)
        if got is None:
            return f"{kind} {box}: no pixels of {owner}"
        if kind == "full" and amodal:
            if not ((got[:2] >= box[:2] - tol).all() and (got[2:] <= box[2:] + tol).all()):
                return f"full {box} does not hold the pixels {got} of {owner}"
        elif np.abs(got - box).max() > tol:
            return f"{kind}: box {box}, pixels {got} of {owner}"
    return ""


def _check_coverage(lab: np.ndarray, visible: np.ndarray, tol: float) -> None:
    """Every region of a visible or ignore colour (8+ pixels) lies in some row's visible box."""
    for c in np.unique(lab[lab >= 0]):
        if c % PER_IMAGE != 12 and c % PER_IMAGE % 3 != 1:
            continue
        count, comp, stats, _ = cv2.connectedComponentsWithStats((lab == c).astype(np.uint8))
        for x, y, bw, bh, area in stats[1:]:
            if area < 8:
                continue
            inside = (
                (visible[:, 0] <= x + tol)
                & (visible[:, 1] <= y + tol)
                & (visible[:, 2] >= x + bw - tol)
                & (visible[:, 3] >= y + bh - tol)
            )
            assert inside.any(), f"colour {c} at {(x, y, bw, bh)} has no row"
