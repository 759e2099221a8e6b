"""`crowdet` as one process of a test run, with test-only patches chosen by the comma-separated
CROWDET_TEST_PATCHES variable:

    frozen_bn        BatchNorm uses running statistics (per-image outputs independent of batch)
    nan_rank1_call2  rank 1's third loss evaluation returns a NaN term
    crash_rank1_iter3  rank 1 exits with an error after iteration 3, on torchrun's first attempt
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_helpers  # noqa: E402


def crash_after(iteration: int) -> None:
    from crowdet.engine.trainer import Trainer

    original = Trainer._periodic

    def periodic(self):
        original(self)
        if self.iter == iteration:
            raise SystemExit(f"test crash on rank {self.dist.rank} after iteration {iteration}")

    Trainer._periodic = periodic


def main() -> int:
    patches = set(filter(None, os.environ.get("CROWDET_TEST_PATCHES", "").split(",")))
    rank = int(os.environ.get("RANK", 0))
    if "frozen_bn" in patches:
        engine_helpers.freeze_batchnorm()
    if "nan_rank1_call2" in patches and rank == 1:
        engine_helpers.inject_nan({2})
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if "crash_rank1_iter3" in patches and rank == 1 and first_attempt:
        crash_after(3)
    from crowdet.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
