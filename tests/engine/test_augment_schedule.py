"""augment.strong_off_last in the training loop: the strong augmentation is on exactly for the
steps before the switch, and a run stopped and resumed around the switch ends with the same
weights as a straight one."""

import pytest
from engine_helpers import assert_same_training_state, state_of, stop_after, train_cli

from crowdet.data.dataset import CrowdDataset

MAX_ITERS = 8  # configs/tiny.yaml: 4 images a batch, 4 batches an epoch
STRONG = [
    f"train.max_iters={MAX_ITERS}", "train.checkpoint_interval=0", "augment.mosaic=0.7",
    "augment.mixup=0.5", "augment.affine=0.7", "augment.copy_paste=0.5",
    "augment.strong_off_last=3",
]  # fmt: skip


@pytest.mark.slow
def test_strong_off_for_the_last_steps_and_exact_on_resume(tmp_path, tiny_data, monkeypatch):
    seen = []  # (strong, index) of every sample made
    getitem = CrowdDataset.__getitem__

    def spy(self, index):
        if self.min_box_size is not None:  # the training set
            seen.append(self.strong)
        return getitem(self, index)

    monkeypatch.setattr(CrowdDataset, "__getitem__", spy)
    assert train_cli(tiny_data, tmp_path / "straight", *STRONG) == 0
    # workers 0: batches are made when a step asks for them; 5 strong steps, then 3 without
    assert seen == [True] * 20 + [False] * 12
    straight = state_of(tmp_path / "straight" / "last.pt")

    for stop in (4, 6):  # before and after the switch at step 5
        run = tmp_path / f"run{stop}"
        stop_after(monkeypatch, stop)
        assert train_cli(tiny_data, run, *STRONG) == 143  # stopped as by SIGTERM
        monkeypatch.undo()
        assert train_cli(tiny_data, run, *STRONG, resume=True) == 0
        assert_same_training_state(state_of(run / "last.pt"), straight)
