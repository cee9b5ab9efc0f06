"""``python -m headatlas.bench scale``: one size measured in-process, the tables and the JSON summary."""

from __future__ import annotations

import json

import pytest

from headatlas.bench import scale
from headatlas.probes import ProbeSettings


def test_a_size_is_measured_type_by_type_and_by_context(capsys):
    tiny = ProbeSettings(n_repeat=2, repeat_len=16, n_text=1, text_len=16)
    run = scale.run_child(
        "s1", ["induction", "name_mover"], [256], "byte", full=False, probes=tiny, verify_types=("induction",)
    )
    assert run["size"] == "s1" and run["family"] == "llama" and run["params"] > 1_000_000
    assert list(run["types"]) == [scale.PLAIN, scale.CENSUS, "induction", "name_mover", scale.VERIFY]
    assert run["plain_tokens"] == 2 * 33  # two [BOS, x, x] sequences of 16 tokens each
    for row in run["types"].values():
        assert row["s"] > 0 and row["cpu_s"] > 0 and row["mb"] >= 0
    assert "unavailable" in run["types"]["name_mover"]  # the byte tokenizer has no names
    assert "unavailable" not in run["types"]["induction"]
    assert set(run["contexts"]["256"]) == {"plain", "scan"}

    bigger = {**run, "size": "s2", "types": {k: {**v, "cpu_s": 2 * v["cpu_s"]} for k, v in run["types"].items()}}
    summary = scale.report([run, bigger], run["contexts"])
    printed = capsys.readouterr().out
    assert "induction" in printed and "retrieval probe on s1 by context" in printed
    measured = run["types"]["induction"]["cpu_s"]  # the summary rounds each size's figure to 3 decimals
    assert summary["types"]["induction"]["s1"]["cpu_s"] == round(measured, 3)
    assert summary["types"]["induction"]["s2"]["cpu_s"] == round(2 * measured, 3)
    assert " 2.00" in printed  # the ratio against the smallest size
    assert summary["unavailable"] == ["name_mover"]
    json.dumps(summary)


def test_a_gpt_neox_size_builds_the_neox_family(monkeypatch):
    tiny_neox = {"family": "gpt_neox", "layers": 2, "d_model": 64, "heads": 4, "kv_heads": 4, "ffn": 128}
    monkeypatch.setitem(scale.SIZES, "tiny_neox", tiny_neox)
    tiny = ProbeSettings(n_repeat=2, repeat_len=16, n_text=1, text_len=16)
    run = scale.run_child("tiny_neox", ["previous_token"], [], "byte", full=False, probes=tiny)
    assert run["family"] == "gpt_neox"
    assert run["weights_mb"] == pytest.approx(run["params"] * 4 / 2**20)  # float32
    assert "unavailable" not in run["types"]["previous_token"]


def test_a_power_law_gives_back_its_exponent():
    xs = [1e6, 1e7, 1e8, 1e9]
    a, b = scale.fit_power(xs, [3.0 * x**0.8 for x in xs])
    assert b == pytest.approx(0.8) and a == pytest.approx(3.0)
    assert scale.fit_power([1e6], [1.0]) is None  # one point fits nothing
    assert scale.fit_power([1e6, 1e7], [0.0, 0.0]) is None  # zero peaks (below the noise floor) are left out


def _synthetic(size: str, params: float, family: str = "llama") -> dict:
    """A measured size whose costs follow known power laws: time ~ params, memory ~ params^0.5."""

    def row(scale_s: float) -> dict:
        return {"s": scale_s * params / 1e8, "cpu_s": scale_s * params / 1e8, "mb": 10 * (params / 1e8) ** 0.5}

    types = {scale.PLAIN: row(1.0), scale.CENSUS: row(1.2), "induction": row(0.5), "name_mover": row(4.0)}
    return {"size": size, "family": family, "params": params, "plain_tokens": 1000, "types": types}


def test_growth_fits_each_family_and_the_census_against_a_plain_forward():
    runs = [_synthetic("a", 1e7), _synthetic("b", 1e8), _synthetic("c", 1e9), _synthetic("p", 1e8, "gpt_neox")]
    runs.append(_synthetic("q", 4e8, "gpt_neox"))
    contexts = {str(n): {"plain": {"cpu_s": n / 100, "mb": n / 10}, "scan": {"cpu_s": n / 90, "mb": n / 8}}
                for n in (512, 1024, 2048)}  # fmt: skip
    fitted = scale.growth(runs, contexts)
    assert fitted["params"]["llama"]["name_mover"] == {"time": pytest.approx(1.0), "memory": pytest.approx(0.5)}
    assert set(fitted["params"]) == {"llama", "gpt_neox"}
    assert fitted["census_vs_plain"] == {"a": 1.2, "b": 1.2, "c": 1.2, "p": 1.2, "q": 1.2}
    assert fitted["context"] == {"time": pytest.approx(1.0), "memory": pytest.approx(1.0)}


def test_the_8b_projection_extrapolates_each_step_against_a_plain_forward():
    runs = [_synthetic("a", 1e7), _synthetic("b", 1e8), _synthetic("c", 1e9), _synthetic("p", 1e8, "gpt_neox")]
    projected = scale.project(runs, gpu_tflops=100.0)
    assert projected is not None
    # 2 * 8.03e9 params * 1000 tokens at 100 TFLOP/s; the census costs 1.2 plain forwards, name_mover 4;
    # induction (0.5) is a pattern type, whose time in a scan is the census's
    plain_s = 2 * 8.03e9 * 1000 / 1e14
    assert projected["plain_forward_s"] == pytest.approx(plain_s, abs=1e-3)
    assert projected["types"]["name_mover"]["x_plain"] == pytest.approx(4.0)
    assert projected["types"]["induction"]["in_census"] and not projected["types"]["name_mover"]["in_census"]
    assert projected["x_plain"] == pytest.approx(5.2, abs=0.01)
    assert projected["scan_s"] == pytest.approx(5.2 * plain_s, abs=0.01)
    peak_mb = 10 * (8.03e9 / 1e8) ** 0.5 / 2  # bf16 halves the float32 activations
    assert projected["peak_gb"] == pytest.approx(16.06 + peak_mb / 1024, abs=0.05)
    assert projected["fits_80gb"] and projected["left_out"] == []
    assert scale.project([_synthetic("p", 1e8, "gpt_neox")], 100.0) is None  # no Llama sizes to extrapolate
    slow = [{**r, "types": {**r["types"], "name_mover": {**r["types"]["name_mover"], "cpu_s": 8.0 * r["params"] / 1e8}}}
            for r in runs]  # fmt: skip
    assert scale.project(slow, 100.0)["types"]["name_mover"]["x_plain"] == pytest.approx(8.0)
    # a type not run at every Llama size is left out, and listed, rather than extrapolated from part of the curve
    partial = [runs[0], {**runs[1], "types": {k: v for k, v in runs[1]["types"].items() if k != "name_mover"}}]
    assert "name_mover" not in scale.project(partial, 100.0)["types"]
    assert scale.project(partial, 100.0)["left_out"] == ["name_mover"]


def test_the_plot_is_a_png_with_a_panel_per_view(tmp_path):
    runs = [_synthetic("a", 1e7), _synthetic("b", 1e8)]
    contexts = {"512": {"plain": {"cpu_s": 1.0, "mb": 5.0}, "scan": {"cpu_s": 1.1, "mb": 6.0}},
                "1024": {"plain": {"cpu_s": 2.0, "mb": 9.0}, "scan": {"cpu_s": 2.1, "mb": 11.0}}}  # fmt: skip
    path = scale.plot(runs, contexts, tmp_path / "out" / "scale.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000  # three drawn panels, not an empty canvas


def test_unknown_sizes_are_refused():
    with pytest.raises(SystemExit):
        scale.main(["--sizes", "s1,huge"])
