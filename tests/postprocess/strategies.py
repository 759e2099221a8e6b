"""Hypothesis strategies shared by the NMS tests."""

import torch
from hypothesis import strategies as st


@st.composite
def detections(draw, max_size=12):
    """(boxes (N, 4) on a small integer grid, zero-size boxes included; scores (N,) in [0, 1])."""
    count = draw(st.integers(0, max_size))
    coord = st.integers(0, 30)
    boxes = []
    for _ in range(count):
        x, y = draw(coord), draw(coord)
        boxes.append([x, y, x + draw(st.integers(0, 15)), y + draw(st.integers(0, 15))])
    scores = draw(st.lists(st.floats(0, 1, width=32), min_size=count, max_size=count))
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(scores)
