"""Items by group without a loop over groups: ranks within a group, and a padded per-group table."""

from __future__ import annotations

import torch

__all__ = ["GroupTable", "rank_in_group"]


def rank_in_group(group: torch.Tensor) -> torch.Tensor:
    """group (n,) int64 >= 0 -> (n,) each item's position among the items of its group, in the
    order they come (0 for the first of each group)."""
    order = torch.sort(group, stable=True).indices
    counts = torch.bincount(group)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(group)
    rank[order] = torch.arange(len(group), device=group.device) - starts[group[order]]
    return rank


class GroupTable:
    """Places n items of groups (n,) int64 in 0..G-1 into a (G, width) table: one row per group,
    the items of a group left to right in their order."""

    def __init__(self, group: torch.Tensor):
        self.row, self.col = group, rank_in_group(group)
        empty = len(group) == 0
        self.shape = (0, 0) if empty else (int(group.max()) + 1, int(self.col.max()) + 1)
        self.width = self.shape[1]

    def fill(self, values: torch.Tensor, pad) -> torch.Tensor:
        """values (n, ...) -> (G, width, ...) with `pad` in the empty cells."""
        out = values.new_full(self.shape + tuple(values.shape[1:]), pad)
        out[self.row, self.col] = values
        return out
