"""``bench causal``: shape parsing, the comparison figures and refusals (no model loads)."""

from __future__ import annotations

import pytest

from headatlas.bench.causal import compare, main, parse_shapes


def test_shapes_parse_and_refuse():
    assert parse_shapes("2x16, 4x20") == [(2, 16), (4, 20)]
    for bad in ("4x1", "0x8", "4*20", ""):
        with pytest.raises(ValueError, match="bad shape"):
            parse_shapes(bad)


def test_compare_reports_signed_and_magnitude_ranks_and_top_overlap():
    exact = [5.0, -4.0, 3.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.05]
    same = compare(exact, exact)
    assert same == {"spearman": 1.0, "spearman_abs": 1.0, "top10_overlap": 10}
    flipped = compare([-v for v in exact], exact)
    assert flipped["spearman"] == -1.0 and flipped["spearman_abs"] == 1.0 and flipped["top10_overlap"] == 10
    swapped = compare([0.05, *exact[1:-1], 5.0], exact)  # the largest and the smallest trade places
    assert swapped["top10_overlap"] == 9


@pytest.mark.parametrize("argv", [["--shapes", "4y20"], ["--qk-targets", "-1"], ["--repeats", "0"]])
def test_bad_options_exit_2_before_loading(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
