import torch

from crowdet.postprocess.groups import GroupTable, rank_in_group


def test_ranks_and_table_by_hand():
    group = torch.tensor([2, 0, 2, 2, 0, 5])
    assert rank_in_group(group).tolist() == [0, 0, 1, 2, 1, 0]
    table = GroupTable(group)
    assert table.shape == (6, 3)
    filled = table.fill(torch.tensor([10, 11, 12, 13, 14, 15]), -1)
    assert filled[0].tolist() == [11, 14, -1] and filled[2].tolist() == [10, 12, 13]
    assert filled[5].tolist() == [15, -1, -1] and filled[1].tolist() == [-1, -1, -1]
    empty = GroupTable(torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0, 0) and empty.fill(torch.zeros(0, 4), 0.0).shape == (0, 0, 4)
