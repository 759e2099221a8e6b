"""The command line: overrides wherever they stand, clear errors for anything else."""

import pytest

from crowdet.cli import _available, build_parser, parse_args


@pytest.fixture(scope="module")
def parser():
    return build_parser(_available())


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
