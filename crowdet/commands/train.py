"""`crowdet train CONFIG [key=value ...] [--out RUN] [--resume [CKPT]] [--force] [--overwrite]`.

`--out` naming a folder that already holds a run is refused unless `--resume` (continue it) or
`--overwrite` (start over in it: its checkpoints, config and logs are removed first).
`--resume` takes a run folder (its last.pt) or a checkpoint, and continues in that checkpoint's
run folder unless `--out` names another.

Exit status: 0 when the run ends (max_iters, time limit, early stop); after a stop by SIGINT or
SIGTERM, once last.pt is saved, 128 + the signal number: 130 (SIGINT) and 143 (SIGTERM), what
`timeout`, SLURM's requeue and Kubernetes read as "terminated by that signal", so a scheduler can
tell an interrupted run (requeue it with --resume) from a finished one; 2 for a user error.
The plots (RUN/plots/: precision-recall, MR-FPPI, JI, miss rate breakdowns of the latest
validation, validation predictions, training curves) are written at the end and on a stop.

Under torchrun (`torchrun --nproc-per-node N -m crowdet train ...`) each process joins the
process group from torchrun's environment variables. When torchrun restarts the workers
(`--max-restarts`), the run continues from RUN/last.pt by itself; RUN must then be given as --out.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import signal
from pathlib import Path

HELP = "train a detector from a YAML config"

log = logging.getLogger("crowdet.train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--out", type=Path, help="run folder (default runs/train/<name>-N)")
    p.add_argument(
        "--resume", nargs="?", const="", default=None, metavar="CKPT",
        help="continue a run: from CKPT, or from <--out>/last.pt when no path is given",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="resume even if the config changed")
    p.add_argument(
        "--overwrite", action="store_true",
        help="start a new run in an --out folder that holds one (its checkpoints are removed)",
    )  # fmt: skip


def run(args) -> int:
    from crowdet.config import load_config
    from crowdet.engine import dist

    cfg = load_config(args.config, args.overrides)
    info, device = dist.init_distributed(cfg.train.device, cfg.train.dist_timeout)
    if not info.is_main:  # one console voice: other ranks report only problems
        logging.getLogger().setLevel(logging.WARNING)
    try:
        return _train(args, cfg, info, device)
    finally:
        dist.cleanup()


def _resume_path(args, run_dir: Path) -> Path | None:
    """The checkpoint to continue from: after a torchrun restart the run's own last.pt (the
    latest state, whatever --resume named at launch), else --resume's path or RUN/last.pt."""
    from crowdet.engine import dist

    last = run_dir / "last.pt"
    if dist.restart_count() > 0 and last.is_file():
        log.info("torchrun restart %d: continuing from %s", dist.restart_count(), last)
        return last
    if args.resume:
        return _resume_checkpoint(Path(args.resume))
    return last if args.resume is not None else None


def _resume_checkpoint(path: Path) -> Path:
    """--resume's checkpoint: the path itself, or a run folder's last.pt."""
    from crowdet.errors import CrowdetError

    if path.is_dir():
        last = path / "last.pt"
        if not (last.is_file() or (path / "last.pt.prev").is_file()):
            raise CrowdetError(f"--resume {path}: a folder without last.pt (not a run folder)")
        return last
    return path


def _run_dir(args, cfg) -> Path:
    from crowdet.engine import dist
    from crowdet.engine.trainer import next_run_dir
    from crowdet.errors import CrowdetError

    if args.out is not None:
        return args.out
    if args.resume:  # continue in the checkpoint's own run folder
        return _resume_checkpoint(Path(args.resume)).parent
    if args.resume == "":
        raise CrowdetError("--resume without a checkpoint needs --out RUN (the run to continue)")
    if dist.max_restarts() > 0:
        raise CrowdetError(
            "torchrun --max-restarts needs --out RUN: a restart resumes from RUN/last.pt"
        )
    # rank 0 picks the next free folder; every rank uses the same one
    return dist.broadcast_object(next_run_dir(Path("runs/train"), cfg.name))


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _check_new_run(args, run_dir: Path, resume: Path | None) -> None:
    """A new run never reuses a run folder silently (a torchrun restart continues its own)."""
    from crowdet.engine import dist
    from crowdet.engine.run_folder import refuse_existing_run
    from crowdet.errors import CrowdetError

    if args.overwrite and resume is not None:
        raise CrowdetError("--overwrite starts a new run; it cannot go with --resume")
    if resume is None and not args.overwrite and dist.restart_count() == 0:
        refuse_existing_run(run_dir)


def _train(args, cfg, info, device) -> int:
    from crowdet.engine.checkpoint import load_with_fallback
    from crowdet.engine.run_folder import clear_run, make_run_dir
    from crowdet.engine.trainer import Trainer

    run_dir = _run_dir(args, cfg)
    resume = _resume_path(args, run_dir)
    _check_new_run(args, run_dir, resume)
    # the checkpoint is read (safely) before anything is built or written
    state = load_with_fallback(resume) if resume is not None else None
    if info.is_main:  # a one-line error now, not a traceback after the data is loaded
        make_run_dir(run_dir)
        if args.overwrite:
            clear_run(run_dir)
    trainer = Trainer(cfg, run_dir, dist=info, device=device)
    if state is not None:
        trainer.load_state(*state, force=args.force)
    metrics = trainer.train()
    if metrics is None:  # stopped by a signal and saved: a late Ctrl-C must not end in a
        atexit.register(_ignore_stop_signals)  # traceback from an exit hook (first to run)
    if info.is_main:
        _write_plots(trainer)
    if metrics is None:
        if info.is_main:
            print(f"stopped at iteration {trainer.iter}; continue with --resume {run_dir}")
        return stop_exit_code(trainer.stop_signal)
    if info.is_main:
        print(f"run folder: {run_dir}")
        print(
            f"CrowdHuman AP {metrics['AP']:.4f}  MR^-2 {metrics['MR']:.4f}  JI {metrics['JI']:.4f}"
        )
    return 0


def stop_exit_code(signum: int | None) -> int:
    """128 + the signal that stopped the run (130 SIGINT, 143 SIGTERM), as a shell reports a
    process killed by it."""
    return 128 + int(signum or signal.SIGTERM)


def _write_plots(trainer) -> None:
    """RUN/plots/; a plotting failure is logged, never the end of a saved run."""
    from crowdet.engine.run_plots import write_run_plots

    try:
        paths = write_run_plots(trainer, trainer.run_dir / "plots")
    except Exception as e:  # matplotlib / disk: the checkpoints are already written
        log.warning("could not write the plots to %s: %s", trainer.run_dir / "plots", e)
        return
    if paths:
        log.info("plots: %s", trainer.run_dir / "plots")
