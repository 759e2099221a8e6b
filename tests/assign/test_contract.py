"""The assigner contract: every assigner of the table keeps it, a new assigner is one class plus
one table row (a toy defined here trains), and predictions reach an assigner that asks for them."""

from __future__ import annotations

import json
from typing import Literal

import pytest
import torch
import yaml
from pydantic import Field

from crowdet import boxes as box_ops
from crowdet.assign.codes import BACKGROUND, IGNORE
from crowdet.assign.common import assign_tensors, check_assign_inputs, mark_ignored
from crowdet.cli import main as cli_main
from crowdet.config import AssignConfigBase, load_config
from crowdet.engine.data import ensure_dataset
from crowdet.errors import ConfigError
from crowdet.losses.dense import DenseLoss
from crowdet.models import build
from crowdet.models.coders import DeltaCoder
from crowdet.structures import AssignResult, Batch, HeadOutput, Predictions, Priors, Targets

BG, IG = BACKGROUND, IGNORE
TINY = "configs/tiny.yaml"


# ----------------------------------------------------------------------------- a toy assigner


class NearestCentreConfig(AssignConfigBase):
    name: Literal["nearest_centre"] = "nearest_centre"
    max_distance: float = Field(12.0, gt=0.0)  # pixels between a prior's and a person's centres


class NearestCentre:
    """A prior is positive for the person whose centre is nearest its own, when that distance is
    at most max_distance pixels; the others are background, or IGNORE under ignore regions."""

    uses_predictions = False

    def __init__(self, max_distance: float, ignore_ioa: float, max_elements: int):
        self.max_distance, self.ignore_ioa, self.max_elements = (
            max_distance,
            ignore_ioa,
            max_elements,
        )
        self.positives: list[int] = []  # positives per call, for the test

    def __call__(self, priors: Priors, targets: Targets, predictions=None) -> AssignResult:
        check_assign_inputs(priors, targets, predictions)
        prior_boxes, people, regions, gt_boxes = assign_tensors(priors, targets)
        gt_centres = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2  # (B, G, 2)
        prior_centres = (prior_boxes[:, :2] + prior_boxes[:, 2:]) / 2  # (A, 2)
        distance = (gt_centres[:, :, None] - prior_centres[None, None]).norm(dim=-1)  # (B, G, A)
        distance = distance.masked_fill(~people[..., None], float("inf"))
        far = torch.full((len(people), len(prior_boxes)), float("inf"))
        nearest, person = distance.min(dim=1) if people.shape[1] else (far, far.long())
        matched = torch.where(nearest <= self.max_distance, person, BG)
        mark_ignored(matched, prior_boxes, gt_boxes, regions, self.ignore_ioa, self.max_elements)
        self.positives.append(int((matched >= 0).sum()))
        return AssignResult(matched)


def build_nearest_centre(c: NearestCentreConfig) -> NearestCentre:
    return NearestCentre(c.max_distance, c.ignore_ioa, c.max_elements)


@pytest.fixture
def with_toy(monkeypatch):
    """The toy in the assigner table; -> the assigners it builds, in order."""
    built = []

    def builder(c):
        built.append(build_nearest_centre(c))
        return built[-1]

    table = {**build.ASSIGNERS, "nearest_centre": (NearestCentreConfig, builder)}
    monkeypatch.setattr(build, "ASSIGNERS", table)
    return built


def one_image(boxes, ignore=None):
    """Targets of one image: boxes (G, 4) as lists, ignore (G,) bools (default none)."""
    boxes = torch.tensor([boxes], dtype=torch.float32)
    ignore = [False] * boxes.shape[1] if ignore is None else ignore
    return Targets(boxes, torch.ones(boxes.shape[:2], dtype=torch.bool), torch.tensor([ignore]))


def test_toy_assigner_hand_made():
    priors = Priors(torch.tensor([[0.0, 0, 10, 20], [20, 0, 30, 20], [60, 0, 70, 20]]), [3])
    targets = one_image([[1, 0, 11, 20], [19, 0, 29, 20], [50, 0, 80, 30]], [False, False, True])
    matched = NearestCentre(4.0, 0.5, 2**20)(priors, targets).matched
    assert matched.tolist() == [[0, 1, IG]]  # distances 1, 1; the third prior is in the region


def test_a_toy_assigner_in_the_table_trains_from_the_config(tmp_path, with_toy):
    ensure_dataset(load_config(TINY, [f"data.root={tmp_path / 'data'}"]))
    run = tmp_path / "run"
    overrides = [f"data.root={tmp_path / 'data'}", "train.threads=1", "train.vis_images=0"]
    extra = ["assign.name=nearest_centre", "assign.max_distance=10", "train.max_iters=3"]
    assert cli_main(["train", TINY, *overrides, *extra, "--out", str(run)]) == 0
    toy = with_toy[-1]
    assert toy.max_distance == 10.0 and len(toy.positives) == 3 and min(toy.positives) > 0
    saved = yaml.safe_load((run / "config.yaml").read_text())["assign"]
    assert saved == {"name": "nearest_centre", "ignore_ioa": 0.5, "max_elements": 2**20,
                     "max_distance": 10.0}  # fmt: skip
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["type"] == "train"]
    assert losses and all(0 < x < float("inf") for x in losses)


def test_a_toy_assigner_validates_its_own_keys(with_toy):
    cfg = load_config(TINY, ["assign.name=nearest_centre"])
    assert isinstance(cfg.assign, NearestCentreConfig) and cfg.assign.max_distance == 12.0
    with pytest.raises(ConfigError, match=r"'assign.max_distance': Input should be greater than 0"):
        load_config(TINY, ["assign.name=nearest_centre", "assign.max_distance=0"])
    message = (
        r"unknown key 'assign.topk'; it is a key of assign.name=atss "
        r"\(valid here: name, ignore_ioa, max_elements, max_distance\)"
    )
    with pytest.raises(ConfigError, match=message):
        load_config(TINY, ["assign.name=nearest_centre", "assign.topk=3"])


def test_without_the_row_the_toy_is_an_unknown_name():
    with pytest.raises(ConfigError, match=r"'assign.name': unknown name 'nearest_centre'"):
        load_config(TINY, ["assign.name=nearest_centre"])


# ----------------------------------------------------------------------------- every assigner


@pytest.mark.parametrize("name", sorted(set(build.ASSIGNERS) - build.WHOLE_LOSSES))
def test_every_assigner_keeps_the_contract(name):
    model, builder = build.ASSIGNERS[name]
    assigner = builder(model())
    assert isinstance(assigner.uses_predictions, bool)
    boxes = torch.tensor([[0.0, 0, 10, 20], [30, 0, 40, 20], [0, 0, 20, 40]])
    priors = Priors(boxes, [2, 1], strides=torch.tensor([8.0, 8.0, 16.0]))  # point assigners
    targets = one_image([[0, 0, 10, 20], [0, 0, 0, 0]])
    scores, boxes = torch.full((1, 3, 1), 0.5), priors.boxes[None].clone()
    result = assigner(priors, targets, Predictions(scores, boxes))
    assert isinstance(result, AssignResult) and result.matched.dtype == torch.long
    assert result.matched.tolist()[0][0] == 0 and set(result.matched.tolist()[0]) <= {0, BG, IG}
    empty = Targets(
        torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=bool), torch.zeros(2, 0, dtype=bool)
    )
    assert assigner(priors, empty).matched.tolist() == [[BG] * 3] * 2
    with pytest.raises(ValueError, match="max_elements must be >= 1, got 0"):
        builder(model().model_copy(update={"max_elements": 0}))


def test_contract_checks_name_the_bad_argument():
    priors = Priors(torch.zeros(3, 4), [2, 1], strides=torch.tensor([8.0, 8.0, 16.0]))
    targets = one_image([[0, 0, 10, 20]])
    check_assign_inputs(priors, targets, Predictions(torch.zeros(1, 3, 1), torch.zeros(1, 3, 4)))
    with pytest.raises(ValueError, match="strides of 1 priors for 3 prior boxes"):
        bad = Priors(torch.zeros(3, 4), [2, 1], strides=torch.tensor([8.0]))
        check_assign_inputs(bad, targets, None)
    with pytest.raises(ValueError, match="level_sizes"):
        check_assign_inputs(Priors(torch.zeros(3, 4), [2, 2]), targets, None)
    visible = Targets(targets.boxes, targets.valid, targets.ignore, visible=torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"target visible must have shape \(B, G, 4\)"):
        check_assign_inputs(priors, visible, None)
    with pytest.raises(ValueError, match=r"predicted scores must have shape \(B, A, C\)"):
        check_assign_inputs(
            priors, targets, Predictions(torch.zeros(1, 2, 1), torch.zeros(1, 3, 4))
        )
    with pytest.raises(ValueError, match=r"predicted boxes must have shape \(B, A, 4\)"):
        check_assign_inputs(
            priors, targets, Predictions(torch.zeros(1, 3, 1), torch.zeros(1, 3, 5))
        )


# ----------------------------------------------------------------------------- predictions


class BestPrediction:
    """Each person takes the prior whose predicted box overlaps it most, its soft target that
    IoU (a dynamic assigner in miniature); every other prior is background."""

    uses_predictions = True

    def __init__(self):
        self.seen: list[Predictions] = []

    def __call__(self, priors, targets, predictions):
        check_assign_inputs(priors, targets, predictions)
        self.seen.append(predictions)
        iou = box_ops.iou(targets.boxes, predictions.boxes)  # (B, G, A)
        best = iou.argmax(dim=2)  # (B, G)
        image, person = targets.valid.nonzero(as_tuple=True)
        matched = torch.full(iou.shape[::2], BG, dtype=torch.long)
        matched[image, best[image, person]] = person
        soft = torch.zeros(matched.shape)
        soft[image, best[image, person]] = iou[image, person, best[image, person]]
        return AssignResult(matched, soft_targets=soft)


def test_the_loss_hands_detached_predictions_to_an_assigner_that_uses_them():
    # Prior 0 is the person's own box; prior 1's deltas move its prediction onto the person
    # exactly, prior 0's away from it: the predictions, not the priors, pick prior 1.
    priors = torch.tensor([[0.0, 0, 10, 20], [40, 0, 50, 20]])
    person = [0.0, 0, 10, 20]
    deltas = torch.tensor([[[3.0, 0, 0, 0], [-4.0, 0, 0, 0]]], requires_grad=True)
    logits = torch.tensor([[[0.0], [2.0]]], requires_grad=True)
    batch = Batch(
        images=torch.zeros(1, 3, 32, 64), image_sizes=torch.tensor([[32, 64]]),
        boxes=torch.tensor([[person]]), valid=torch.tensor([[True]]),
        ignore=torch.tensor([[False]]), scales=torch.ones(1), orig_sizes=torch.tensor([[32, 64]]),
    )  # fmt: skip
    assigner = BestPrediction()
    out = DenseLoss(assigner, box="giou")(
        HeadOutput(logits, deltas), Priors(priors, [2]), batch, DeltaCoder()
    )
    (seen,) = assigner.seen
    assert not seen.scores.requires_grad and not seen.boxes.requires_grad
    torch.testing.assert_close(seen.scores, torch.sigmoid(logits.detach()))
    torch.testing.assert_close(seen.boxes[0, 1], torch.tensor(person))
    assert seen.boxes[0, 0, 0].item() == pytest.approx(30.0)  # prior 0 moved by 3 widths
    assert out["box"].item() == pytest.approx(0.0, abs=1e-6)  # prior 1 was matched: exact box
    out["cls"].backward()
    assert logits.grad[0, 1, 0] < 0 < logits.grad[0, 0, 0]  # prior 1 positive, prior 0 negative


def test_assigners_that_do_not_use_predictions_get_none():
    seen = []

    class Record:
        uses_predictions = False

        def __call__(self, priors, targets, predictions=None):
            seen.append(predictions)
            return AssignResult(torch.full((1, len(priors.boxes)), BG))

    batch = Batch(
        images=torch.zeros(1, 3, 8, 8), image_sizes=torch.tensor([[8, 8]]),
        boxes=torch.zeros(1, 0, 4), valid=torch.zeros(1, 0, dtype=bool),
        ignore=torch.zeros(1, 0, dtype=bool), scales=torch.ones(1),
        orig_sizes=torch.tensor([[8, 8]]),
    )  # fmt: skip
    outputs = HeadOutput(torch.zeros(1, 2, 1), torch.zeros(1, 2, 4))
    DenseLoss(Record())(outputs, Priors(torch.zeros(2, 4), [2]), batch, DeltaCoder())
    assert seen == [None]
