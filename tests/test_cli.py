"""The command line: overrides wherever they stand, clear errors for anything else."""

import re
from pathlib import Path

import pytest

from crowdet.cli import COMMANDS, build_parser, command_modules, parse_args


@pytest.fixture(scope="module")
def parser():
    return build_parser(command_modules())


def test_overrides_before_and_after_options_keep_their_order(parser):
    argv = ["eval", "c.yaml", "a.b=1", "--checkpoint", "x.pt", "c.d=2", "--out", "o", "e=3"]
    args = parse_args(parser, argv)
    assert args.config == "c.yaml"
    assert args.overrides == ["a.b=1", "c.d=2", "e=3"]
    assert str(args.checkpoint) == "x.pt" and str(args.out) == "o"


@pytest.mark.parametrize(
    "argv, named",
    [
        (["eval", "c.yaml", "--checkpoint", "x.pt", "--bogus"], "--bogus"),
        (["eval", "c.yaml", "--checkpoint", "x.pt", "stray"], "stray"),
        (["synth", "out", "a.b=1"], "a.b=1"),  # synth takes no overrides
    ],
)
def test_anything_else_is_an_error_naming_it(parser, argv, named, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(parser, argv)
    assert e.value.code == 2
    assert f"unrecognized arguments: {named}" in capsys.readouterr().err


def test_the_readme_lists_exactly_the_commands_there_are():
    """Every command of the README's table has its module, and every module its row."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = re.findall(r"^\| `crowdet ([a-z-]+)", readme, flags=re.MULTILINE)
    assert sorted(rows) == sorted(COMMANDS)
    assert set(command_modules()) == set(COMMANDS)
