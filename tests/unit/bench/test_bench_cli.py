"""``python -m headatlas.bench cli``: fresh processes, a JSON last line, the heavy-import check."""

from __future__ import annotations

import json

import pytest

from headatlas.bench import cli as bench_cli


def test_bench_cli_times_fresh_processes(capsys):
    assert bench_cli.main(["--repeats", "1", "--only", "help,serve"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["benchmark"] == "cli"
    assert set(result) >= {"python_pass_s", "help_s", "serve_s", "help_vs_python", "serve_vs_python", "ok"}
    assert "papers_search_s" not in result and "heads_list_s" not in result
    assert 0 < result["python_pass_s"] < result["help_s"]  # importing the CLI costs more than a bare interpreter
    assert result["imports_torch"] == []


def test_the_heavy_import_pattern_reads_importtime_lines():
    lines = "import time:      1642 |     206788 |   torch\nimport time: 50 | 50 |     torch.nn\n"
    assert bench_cli.HEAVY.findall(lines) == ["torch"]


def test_bad_options_are_refused():
    with pytest.raises(SystemExit):
        bench_cli.main(["--only", "nope"])
    with pytest.raises(SystemExit):
        bench_cli.main(["--repeats", "0"])
