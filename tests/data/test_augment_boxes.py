"""The box arithmetic of the augmentations against rasterised references (hypothesis): what a
pasted rectangle leaves of a box, the corners of an affine map, the cut to a window."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdet.data.augment import affine_matrix
from crowdet.data.transforms import affine_boxes, box_minus_rect, clip_to_window

coord = st.integers(0, 30)


def rect(draw):
    x1, x2 = sorted(draw(st.lists(coord, min_size=2, max_size=2, unique=True)))
    y1, y2 = sorted(draw(st.lists(coord, min_size=2, max_size=2, unique=True)))
    return [x1, y1, x2, y2]


@st.composite
def box_and_rect(draw):
    return rect(draw), rect(draw)


def raster(b, size=32):
    m = np.zeros((size, size), bool)
    m[b[1] : b[3], b[0] : b[2]] = True
    return m


@settings(max_examples=300, deadline=None)
@given(box_and_rect())
def test_box_minus_rect_is_the_box_around_the_uncovered_pixels(br):
    box, paste = br
    left = raster(box) & ~raster(paste)
    got = box_minus_rect(np.array([box], np.float32), paste)[0]
    if not left.any():
        assert np.isnan(got).all()
        return
    ys, xs = np.nonzero(left)
    assert got.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@settings(max_examples=100, deadline=None)
@given(box_and_rect())
def test_clip_to_window_is_the_intersection(br):
    box, window = br
    got = clip_to_window(np.array([box], np.float32), window)[0]
    inter = raster(box) & raster(window)
    if inter.any():
        ys, xs = np.nonzero(inter)
        assert got.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    else:
        assert got[2] <= got[0] or got[3] <= got[1]  # empty


@settings(max_examples=100, deadline=None)
@given(
    st.floats(0.5, 1.5), st.floats(-30, 30), st.floats(-10, 10), st.floats(-10, 10),
    st.floats(-0.2, 0.2), st.floats(-0.2, 0.2),
)  # fmt: skip
def test_affine_boxes_enclose_the_moved_corners_and_points_inside(s, deg, shx, shy, tx, ty):
    m = affine_matrix((60, 80), s, deg, (shx, shy), (tx, ty))
    box = np.array([[10.0, 12.0, 40.0, 50.0]], np.float32)
    got = affine_boxes(box, m)[0]
    pts = np.random.default_rng(0).uniform([10, 12], [40, 50], (200, 2))
    corners = np.array([[10, 12], [40, 12], [40, 50], [10, 50]], float)
    for p in (pts, corners):
        moved = p @ m[:, :2].T + m[:, 2]
        assert (moved >= got[:2] - 1e-3).all() and (moved <= got[2:] + 1e-3).all()
    moved = corners @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(got, [*moved.min(0), *moved.max(0)], atol=1e-3)
