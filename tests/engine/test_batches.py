"""The per-rank batch order: seeded, padded so every rank takes the same number of steps, and the
union of the ranks' batches at a step is the one-process batch of the same total size."""

from hypothesis import given, settings
from hypothesis import strategies as st

from crowdet.engine.data import epoch_batches, position_for_world


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60), batch=st.integers(1, 5), world=st.integers(1, 4), epoch=st.integers(0, 3)
)
def test_ranks_take_equal_full_batches_covering_the_one_process_batches(n, batch, world, epoch):
    per_rank = [epoch_batches(n, batch, epoch, seed=7, rank=r, world=world) for r in range(world)]
    single = epoch_batches(n, batch * world, epoch, seed=7)
    steps = max(1, n // (batch * world))
    assert all(len(b) == steps for b in per_rank)
    assert all(len(x) == batch for b in per_rank for x in b)
    for step in range(steps):
        union = sorted(i for b in per_rank for i in b[step])
        assert union == sorted(single[step])
    seen = {i for b in per_rank for x in b for i in x}
    assert seen <= set(range(n))
    if n >= batch * world:  # no image repeats within an epoch unless the set is too small
        assert len(seen) == steps * batch * world


def test_order_is_seeded_and_changes_with_the_epoch():
    a = epoch_batches(40, 4, epoch=0, seed=1)
    assert a == epoch_batches(40, 4, epoch=0, seed=1)
    assert a != epoch_batches(40, 4, epoch=1, seed=1)
    assert a != epoch_batches(40, 4, epoch=0, seed=2)


def test_position_survives_a_change_of_world_size():
    # 3 steps with 4 ranks consumed 12 per-rank batches' worth: 6 steps with 2 ranks
    assert position_for_world(3, old_world=4, new_world=2) == 6
    assert position_for_world(5, old_world=2, new_world=4) == 2  # a partial step is redone
