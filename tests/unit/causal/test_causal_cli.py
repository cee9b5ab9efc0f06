"""``headatlas ablate`` / ``patch``: bad input is one line on stderr and exit code 2, before any model loads."""

from __future__ import annotations

import re

import pytest

from headatlas.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ablate", "--heads", "L1H1", "--metric", "accuracy"], "valid metrics are"),
        (["ablate", "--heads", "L1H1", "--method", "shuffle"], "valid methods are zero, mean, resample"),
        (["ablate", "--heads", ""], "empty head list"),
        (["ablate", "--heads", "L1H1", "--metric", "logit_diff"], "needs --prompt"),
        (["ablate", "--heads", "L1H1", "--format", "yaml"], "valid formats"),
        (["patch", "--clean", "a", "--corrupt", "b", "--metric", "logit_diff"], "needs --answer and --wrong"),
        (["patch", "--clean", "a", "--metric", "logit_diff"], "both --clean and --corrupt"),
        (["patch", "--clean", "a", "--corrupt", "b", "--metric", "induction_loss"], "prompt metrics"),
        (
            ["patch", "--clean", "a", "--corrupt", "b", "--answer", "x", "--wrong", "y", "--direction", "up"],
            "valid directions",
        ),
        (
            ["patch", "--clean", "a", "--corrupt", "b", "--answer", "x", "--wrong", "y", "--attribution", "eap"],
            r"valid methods are atp, atp\*, atp\*-qk",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(message, lines[0]), lines[0]
