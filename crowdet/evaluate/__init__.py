"""Evaluation: the CrowdHuman AP / MR^-2 / JI exactly as the field computes them, COCO metrics
(faster-coco-eval), the Caltech/CityPersons MR^-2 setups, plots and detection files.

    from crowdet.evaluate import evaluate, format_table, write_results
    result = evaluate(records, {image_id: (boxes_xyxy, scores)})
    print(format_table(result)); write_results(result, "out/")
"""

from crowdet.evaluate.evaluator import EvalResult, evaluate
from crowdet.evaluate.report import format_table, write_results

__all__ = ["EvalResult", "evaluate", "format_table", "write_results"]
