"""`atlas strict`: the strict set tests of the published members, kept in strict.json and reused by `atlas build`
while the members they tested stay (the planted model, small probes: the zoo models' code path in seconds)."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace

import pytest

from headatlas.api import scan
from headatlas.atlas import (
    PARTIAL_NAME,
    STRICT_NAME,
    adopt_strict,
    read_strict,
    render_readme,
    resume_records,
    strict_atlas,
    strict_model_atlas,
    write_strict,
)
from headatlas.causal import VerifySettings, verify
from headatlas.causal.verify import strict_set_tests
from headatlas.errors import InvalidSettingError
from headatlas.heads import causal_metrics, resolve_head_types
from headatlas.probes import ProbeSettings
from headatlas.testing.planted import build_planted_model

TYPES = ["induction", "previous_token"]
SCREEN = VerifySettings(repeat_len=12, n_repeat=4, top_n=1, max_exact_members=1, max_batch=48, n_random_max=40)


@pytest.fixture(scope="module")
def planted():
    return build_planted_model(0, spare_heads=24)


@pytest.fixture(scope="module")
def screened(planted):
    """The planted model (28 heads a layer) screened, and its strict set tests (up to 40 sets here)."""
    probes = ProbeSettings(repeat_len=12, n_repeat=4, batch_size=4)
    headmap = scan(planted, head_types=TYPES, probes=probes, verify=True, verify_settings=SCREEN)
    strict = replace(SCREEN, strict=True)
    records = strict_set_tests(planted, headmap, strict, metrics=causal_metrics(resolve_head_types(TYPES)))
    return headmap, records, strict


def test_build_adopts_the_strict_file_while_its_members_stay(screened, tmp_path):
    headmap, records, strict = screened
    assert records and all("p_holm" in r for r in records.values())
    write_strict(tmp_path, headmap, records, strict)
    said: list[str] = []
    adopted = copy.deepcopy(headmap)
    assert adopt_strict(adopted, tmp_path, say=said.append) and not said
    for type_id, record in records.items():
        assert {k: v for k, v in record.items()} == {
            k: v for k, v in adopted.verification[type_id].items() if k not in ("per_head", "screen")
        }
        assert adopted.verification[type_id]["per_head"] == headmap.verification[type_id]["per_head"]
        assert adopted.verification[type_id]["screen"]["n_random"] == headmap.verification[type_id]["n_random"]

    text = render_readme({"tiny": adopted, "plain": headmap})
    assert re.search(r"^\| `tiny` \(.*\) \| .* \| \*strict\* \|$", text, re.M)
    assert re.search(r"^\| `plain` \(.*\) \| .* \| screen \|$", text, re.M)
    assert "Models marked *strict* replace the screen" in text
    tested = next(iter(records))
    cell = re.search(rf"^\| `{tested}` \(\w+\) \| (.*) \| (.*) \|$", text, re.M).group(1)
    assert f"Holm p={records[tested]['p_holm']:.2g}" in cell, cell
    assert f"] over {records[tested]['n_prompts']} prompts vs random" in cell, cell

    # a strict test that overturns the screen says so in the cell
    flipped = copy.deepcopy(adopted)
    flipped.verification[tested]["screen"]["verified"] = not records[tested]["verified"]
    cell = re.search(rf"^\| `{tested}` \(\w+\) \| (.*) \|$", render_readme({"tiny": flipped}), re.M).group(1)
    assert re.search(r"; the 20-set screen: (not )?verified \(p=[\d.e-]+\)", cell), cell


def test_a_stale_strict_file_is_removed_with_a_message(screened, tmp_path):
    headmap, records, strict = screened
    write_strict(tmp_path, headmap, records, strict)
    changed = copy.deepcopy(headmap)
    tested = next(iter(records))
    changed.verification[tested]["members"] = ["L0H0", "L1H3"]  # a rebuild found other members
    said: list[str] = []
    assert not adopt_strict(changed, tmp_path, say=said.append)
    assert not (tmp_path / STRICT_NAME).exists()
    assert len(said) == 1 and "other members" in said[0] and "atlas strict" in said[0]
    assert changed.verification[tested]["members"] == ["L0H0", "L1H3"] and "screen" not in changed.verification[tested]

    write_strict(tmp_path, headmap, records, replace(strict, seed=1))  # run at another seed than the scan's
    assert not adopt_strict(copy.deepcopy(headmap), tmp_path, say=said.append)
    assert "other verification settings" in said[-1]


def test_a_file_that_is_not_a_strict_file_is_a_clear_error(tmp_path):
    assert read_strict(tmp_path) is None
    (tmp_path / STRICT_NAME).write_text(json.dumps({"format": "something else", "records": {}}))
    with pytest.raises(InvalidSettingError, match="is not a headatlas strict file"):
        read_strict(tmp_path)
    (tmp_path / STRICT_NAME).write_text("{not json")
    with pytest.raises(InvalidSettingError, match="cannot read"):
        read_strict(tmp_path)


def test_an_interrupted_strict_run_resumes_from_its_partial_file(planted, screened, tmp_path, monkeypatch):
    headmap, records, strict = screened
    first, second = TYPES
    assert list(records) == TYPES
    headmap.write(tmp_path)
    real = verify.set_test

    def stop_at_the_second(loaded, head_type, *args, **kwargs):
        if head_type == second:
            raise KeyboardInterrupt
        return real(loaded, head_type, *args, **kwargs)

    monkeypatch.setattr(verify, "set_test", stop_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        strict_model_atlas(planted, tmp_path, settings=strict)
    monkeypatch.undo()
    saved = json.loads((tmp_path / PARTIAL_NAME).read_text())
    assert list(saved["records"]) == [first] and saved["records"][first]["status"] == "pending"
    assert not (tmp_path / STRICT_NAME).exists()

    saved["records"][first]["random_max"] = 123.0  # marks the record, so the result shows it was reused
    (tmp_path / PARTIAL_NAME).write_text(json.dumps(saved))
    said: list[str] = []
    result = strict_model_atlas(planted, tmp_path, settings=strict, say=said.append)
    assert said[0].startswith("resuming from") and "1 type(s) already tested" in said[0]
    rounds = [m.split(" (")[0] for m in said if f": {second} sets" in m]  # the resumed type's rounds only
    assert rounds == [f"{headmap.facts.name}: {second} sets {n}/40" for n in (20, 40)]  # planted: never in doubt
    assert not any(f": {first} sets" in m for m in said)
    assert not (tmp_path / PARTIAL_NAME).exists()
    assert read_strict(tmp_path)["device"] == "cpu"
    written = read_strict(tmp_path)["records"]
    assert written[first]["random_max"] == 123.0
    assert written[second] == records[second]  # the same test, the same Holm family
    assert {k: v for k, v in written[first].items() if k != "random_max"} == {
        k: v for k, v in records[first].items() if k != "random_max"
    }
    assert result.verification[first]["random_max"] == 123.0 and "screen" in result.verification[first]
    assert (tmp_path / "report.html").is_file()


def test_a_partial_file_of_other_settings_is_set_aside(screened, tmp_path):
    headmap, records, strict = screened
    weights = {"name": headmap.facts.name, "sha256": headmap.facts.sha256}
    first = {TYPES[0]: records[TYPES[0]]}

    def partial(**fields):
        document = {"format": "headatlas.strict-partial/1", "model": weights, "settings": strict.to_dict()}
        (tmp_path / PARTIAL_NAME).write_text(json.dumps({**document, "records": first, **fields}))

    said: list[str] = []
    partial()
    assert resume_records(headmap, tmp_path, strict, say=said.append) == first and said[-1].startswith("resuming")
    partial(model={"name": headmap.facts.name, "sha256": "0" * 64})
    assert resume_records(headmap, tmp_path, strict, say=said.append) == {}
    assert not (tmp_path / PARTIAL_NAME).exists() and "other weights" in said[-1]
    partial(settings=replace(strict, n_random_max=80).to_dict())
    assert resume_records(headmap, tmp_path, strict, say=said.append) == {} and "other settings" in said[-1]
    partial(device="cpu")
    assert resume_records(headmap, tmp_path, strict, say=said.append, device="cuda") == {}
    assert said[-1].endswith("it was run on cpu, not cuda; starting over")
    (tmp_path / PARTIAL_NAME).write_text("{cut off")
    assert resume_records(headmap, tmp_path, strict, say=said.append) == {}
    assert not (tmp_path / PARTIAL_NAME).exists() and "cannot read" in said[-1]
    assert resume_records(headmap, tmp_path, strict, say=said.append) == {} and len(said) == 5


def test_strict_settings_other_than_the_scan_are_refused_before_any_test(planted, screened):
    headmap, _, strict = screened
    with pytest.raises(InvalidSettingError, match="other verification settings"):
        strict_set_tests(planted, headmap, replace(strict, seed=1), metrics=causal_metrics(resolve_head_types(TYPES)))


def test_atlas_strict_skips_a_model_whose_strict_file_is_current(screened, tmp_path):
    headmap, records, strict = screened
    adopted = copy.deepcopy(headmap)
    folder = tmp_path / "smollm2-135m"  # named like an atlas model; its weights are never loaded
    folder.mkdir()
    write_strict(folder, adopted, records, strict)
    assert adopt_strict(adopted, folder)
    adopted.write(folder)
    said: list[str] = []
    readme = strict_atlas(tmp_path, ["smollm2-135m"], say=said.append)
    assert said == [f"smollm2-135m: {folder / STRICT_NAME} is current; skipped (remove it to run the tests again)"]
    assert "*strict*" in readme.read_text()
