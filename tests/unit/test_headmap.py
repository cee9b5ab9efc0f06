from __future__ import annotations

import math

import pytest

from headatlas.census import ScanSettings, run_census
from headatlas.errors import InvalidSettingError, UnknownHeadTypeError
from headatlas.headmap import HeadMap, check_out_dir
from headatlas.probes import ProbeSettings
from headatlas.testing.tiny import tiny_llama

SMALL = ProbeSettings(n_repeat=4, repeat_len=10, n_text=3, text_len=32, needle_contexts=(256,), needle_per_context=2)


@pytest.fixture(scope="module")
def headmap():
    return run_census(tiny_llama("gqa"), ScanSettings(seed=0, probes=SMALL))


def test_one_row_per_head_and_type_with_the_contract_columns(headmap):
    assert len(headmap.rows) == 2 * 4 * len(headmap.head_types)
    header = headmap.csv_text().splitlines()[0]
    assert header == "layer,head,head_type,score,score_se,n_samples,threshold,member"
    assert "-1" not in {cell for line in headmap.csv_text().splitlines()[1:] for cell in line.split(",")[3:5]}


def test_census_rows_and_the_api_model_follow_the_one_declaration(headmap):
    from headatlas.headmap import CSV_COLUMNS, HEAD_SCORE
    from headatlas.web.schemas import HeadScore

    assert all(list(r) == list(CSV_COLUMNS) for r in headmap.rows)  # no --verify: the columns every scan has
    assert list(HeadScore.model_fields) == ["name", *(f.name for f in HEAD_SCORE)]
    row = HeadScore.model_validate({"name": "L0H0", **headmap.rows[0]})
    assert row.model_dump()["n_samples"] == headmap.rows[0]["n_samples"]


def test_same_seed_same_bytes_other_seed_other_scores(tmp_path, headmap):
    again = run_census(tiny_llama("gqa"), ScanSettings(seed=0, probes=SMALL))
    assert again.csv_text() == headmap.csv_text()
    assert again.json_text() == headmap.json_text()
    other = run_census(tiny_llama("gqa"), ScanSettings(seed=1, probes=SMALL))
    assert other.csv_text() != headmap.csv_text()


def test_views(headmap):
    matrix = headmap.matrix("induction")
    assert matrix.shape == (2, 4)
    top = headmap.top("induction", 3)
    assert [r["score"] for r in top] == sorted((r["score"] for r in top), reverse=True)
    assert math.isclose(top[0]["score"], float(matrix.max()))
    assert top[0]["name"] == f"L{top[0]['layer']}H{top[0]['head']}"
    frame = headmap.to_pandas()
    assert list(frame.columns[:3]) == ["layer", "head", "name"]
    with pytest.raises(UnknownHeadTypeError, match=r"not in this scan"):
        headmap.matrix("nonexistent")


def test_write_and_read_round_trip(tmp_path, headmap):
    csv_path, json_path = headmap.write(tmp_path / "out")
    loaded = HeadMap.read(tmp_path / "out")
    assert loaded.json_text() == json_path.read_text()
    assert csv_path.read_text() == headmap.csv_text()
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_missing_scores_are_empty_cells_not_sentinels(headmap):
    rows = [dict(r) for r in headmap.rows]
    rows[0]["score"] = None
    rows[0]["score_se"] = None
    broken = HeadMap(headmap.facts, rows, headmap.settings, headmap.head_types)
    first = broken.csv_text().splitlines()[1].split(",")
    assert first[3] == "" and first[4] == ""
    assert broken.to_dict()["heads"][0]["score"] is None


def test_out_dir_that_is_a_file_is_refused(tmp_path, headmap):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InvalidSettingError, match="is a file"):
        headmap.write(target)
    assert target.read_text() == "x"


def test_selected_types_only_and_duplicates_refused():
    loaded = tiny_llama("mqa")
    hm = run_census(loaded, ScanSettings(head_types=("induction", "sink"), probes=SMALL))
    assert list(hm.head_types) == ["induction", "sink"]
    assert set(hm.settings["head_types"]) == {"induction", "sink"}
    with pytest.raises(InvalidSettingError, match="twice"):
        run_census(loaded, ScanSettings(head_types=("sink", "sink"), probes=SMALL))


def _window(loaded, limit: int):
    loaded.facts = type(loaded.facts)(**{**loaded.facts.__dict__, "max_positions": limit})
    return loaded


def test_explicit_needle_contexts_longer_than_the_window_are_refused():
    probes = ProbeSettings(**{**SMALL.__dict__, "fit_to_window": False})
    with pytest.raises(InvalidSettingError, match="context window of 128"):
        run_census(_window(tiny_llama("gqa"), 128), ScanSettings(head_types=("retrieval",), probes=probes))


def test_default_needle_contexts_adapt_to_the_window_and_say_so():
    """GPT-2 (1,024) and Pythia (2,048) windows: the contexts that fit are scanned, the others named as left out."""
    probes = ProbeSettings(**{**SMALL.__dict__, "needle_contexts": (256, 384)})
    headmap = run_census(_window(tiny_llama("gqa"), 300), ScanSettings(head_types=("retrieval",), probes=probes))
    assert headmap.probes["needle"]["n_samples"] == 2  # the two 256-token samples; the 384-token ones are left out
    assert "2 of 4 needle samples exceed the 300-token context window" in headmap.probes["needle"]["window"]
    assert all(r["score"] is not None for r in headmap.rows)


def test_a_probe_that_fits_nowhere_leaves_its_types_unscored_and_the_scan_goes_on():
    headmap = run_census(
        _window(tiny_llama("gqa"), 128), ScanSettings(head_types=("retrieval", "previous_token"), probes=SMALL)
    )
    assert "exceeds the model's context window of 128" in headmap.probes["needle"]["unavailable"]
    assert headmap.members("retrieval") == [] and not headmap.top("retrieval", 1)
    assert headmap.top("previous_token", 1)  # the other type is scored as usual


def test_same_machine_same_versions_give_the_same_bytes_with_verification(tmp_path):
    """Byte determinism holds where it is true: two verified scans (gradients included) in one process.
    Across processors the atlas test compares by value instead."""
    from headatlas.api import scan
    from headatlas.causal import VerifySettings

    quick = VerifySettings(top_n=2, max_exact_members=2, max_batch=48)
    types = ["induction", "previous_token", "sink"]
    runs = [scan(tiny_llama("gqa"), head_types=types, verify=True, verify_settings=quick) for _ in range(2)]
    assert any(r.get("attribution") is not None for r in runs[0].rows)
    assert runs[0].json_text() == runs[1].json_text() and runs[0].csv_text() == runs[1].csv_text()


def _broken(doc: dict, change) -> dict:
    import copy

    doc = copy.deepcopy(doc)
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["heads"][0].pop("score"), "heads[0].score must be a number or null, and present"),
        (lambda d: d["heads"][0].update(score="high"), "heads[0].score must be a number"),
        (lambda d: d.update(head_types=None), "field 'head_types' must be an object"),
        (lambda d: d["model"].update(n_layers=10**9), "model.n_layers must be an integer 1..1024"),
        (lambda d: d["heads"][0].update(layer=99), "heads[0].layer must be an integer 0..1"),
        (lambda d: d.update(heads=None), "field 'heads' must be a list"),
    ],
)
def test_report_of_a_broken_headmap_is_one_line(tmp_path, headmap, capsys, change, message):
    import json

    from headatlas.cli import main

    (tmp_path / "headmap.json").write_text(json.dumps(_broken(headmap.to_dict(), change)))
    assert main(["report", str(tmp_path), "--db", str(tmp_path / "none.sqlite3")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "report.html").exists()


def test_headmap_round_trips_through_validation(tmp_path, headmap):
    headmap.write(tmp_path)
    again = HeadMap.read(tmp_path)
    assert again.json_text() == headmap.json_text()


def test_an_out_dir_that_cannot_be_created_is_refused_before_the_scan():
    with pytest.raises(InvalidSettingError, match="cannot be"):
        check_out_dir("/proc/headatlas-x/y")
