"""The training-curves plot draws whatever loss terms the method logs."""

import json

from crowdet.visualize import loss_keys, plot_training_curves


def rows(terms: dict[str, float], n: int = 3) -> list[dict]:
    common = {"type": "train", "lr": 0.01, "data_time": 0.1, "step_time": 0.5, "ips": 8, "mem": 1}
    return [{**common, "iter": i + 1, "loss": sum(terms.values()), **terms} for i in range(n)]


def test_loss_keys_are_the_method_terms_loss_first():
    assert loss_keys(rows({"cls": 1.0, "box": 2.0})) == ["loss", "cls", "box"]
    assert loss_keys(rows({"pos_bag": 2.7, "neg_bag": 1e-5})) == ["loss", "pos_bag", "neg_bag"]
    # a term logged only by some rows (e.g. from a later step) is still drawn
    both = rows({"cls": 1.0}) + rows({"cls": 1.0, "rep_gt": 0.2})
    assert loss_keys(both) == ["loss", "cls", "rep_gt"]


def test_freeanchor_terms_plot(tmp_path):
    """FreeAnchor logs pos_bag / neg_bag and no cls / box: the plot used to raise KeyError."""
    evals = [{"type": "eval", "iter": 3, "AP": 0.1, "MR": 0.9, "JI": 0.1}]
    path = tmp_path / "metrics.jsonl"
    lines = rows({"pos_bag": 2.7, "neg_bag": 1e-5}) + evals
    path.write_text("\n".join(json.dumps(r) for r in lines))
    out = plot_training_curves(path, tmp_path / "curves.png")
    assert out.stat().st_size > 1000
