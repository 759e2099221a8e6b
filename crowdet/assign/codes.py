"""Named codes of an assignment `matched_gt (B, A)`.

A value >= 0 is the index g of the matched person in the padded targets `(B, G)`; the negative
values below are the only other codes an assigner returns.
"""

from __future__ import annotations

BACKGROUND = -1  # a negative prior: trained towards "no person"
IGNORE = -2  # neither positive nor negative: no loss at all

__all__ = ["BACKGROUND", "IGNORE"]
