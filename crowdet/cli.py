"""The `crowdet` command line: one sub-command per module in `crowdet.commands`.

Each command module exposes `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their command runs, so `crowdet --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from crowdet.errors import CrowdetError

# command name -> module in crowdet.commands
COMMANDS = {
    "demo": "demo",
    "synth": "synth",
    "train": "train",
    "eval": "eval",
    "val": "val",
    "eval-dets": "eval_dets",
    "convert": "convert",
    "check-data": "check_data",
    "show": "show",
    "detect": "detect",
    "export": "export",
    "info": "info",
}


def command_modules() -> dict[str, object]:
    """Command name -> its module, for every command of COMMANDS."""
    return {name: importlib.import_module(f"crowdet.commands.{m}") for name, m in COMMANDS.items()}


def build_parser(modules: dict[str, object], only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with `only`, the options of that command alone are added
    (the others keep their name and help), so a command's start-up does not import what the
    other commands' options need (the synth presets pull in scipy)."""
    parser = argparse.ArgumentParser(prog="crowdet", description="Detect people in crowds.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in modules.items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
        if only is None or name == only:
            module.add_arguments(p)
    return parser


def setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Like parser.parse_args, but `key=value` overrides may also follow options
    (`crowdet eval C --checkpoint X a.b=1`), as in ultralytics and detectron2."""
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-") or "=" not in a]
    if unknown or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def _command_in(argv: list[str]) -> str | None:
    """The command named on the command line (the first word that is one), or None."""
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    modules = command_modules()
    only = _command_in(sys.argv[1:] if argv is None else argv)
    args = parse_args(build_parser(modules, only), argv)
    setup_logging(args.debug)
    try:
        return int(modules[args.command].run(args) or 0)
    except CrowdetError as e:
        if args.debug:
            raise
        print(f"crowdet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
