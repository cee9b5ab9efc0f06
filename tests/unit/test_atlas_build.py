"""`atlas build` runs under a fixed memory budget: the published bytes must not follow the free RAM of the day."""

from __future__ import annotations

import json
import re

import headatlas.pipeline as pipeline
from headatlas.atlas import ATLAS_MAX_MEMORY, build_model_atlas
from headatlas.probes import ProbeSettings
from headatlas.testing.planted import build_planted_model

SMALL = ProbeSettings(n_repeat=2, repeat_len=8, n_text=2, text_len=16, needle_contexts=(256,), needle_per_context=1)


def test_the_build_groups_passes_by_its_fixed_budget_not_by_free_memory(tmp_path, monkeypatch):
    planted = build_planted_model(0)
    real_scan = pipeline.run_scan
    calls = []

    def small_scan(model, settings, **kwargs):  # the zoo alias becomes the planted model, with a small census
        calls.append((model, kwargs))
        return real_scan(planted, pipeline.scan_settings(settings.seed, ["induction"], SMALL), **kwargs)

    def no_reading(device):
        raise AssertionError("atlas build read the free memory")

    monkeypatch.setattr(pipeline, "run_scan", small_scan)
    monkeypatch.setattr(pipeline, "default_budget", no_reading)
    said: list[str] = []
    headmap = build_model_atlas("smollm2-135m", tmp_path, say=said.append)
    [(model, kwargs)] = calls
    assert model == "smollm2-135m" and kwargs["max_memory"] == ATLAS_MAX_MEMORY
    assert headmap.settings["max_memory"] == ATLAS_MAX_MEMORY
    written = json.loads((tmp_path / "headmap.json").read_text(encoding="utf-8"))
    assert written["settings"]["max_memory"] == ATLAS_MAX_MEMORY and written["settings"]["stability_seeds"] == [0, 1, 2]
    # the build's log: one line per finished stage, with its seconds (the profile of a build)
    line = r"smollm2-135m: {} \d+/\d+ \(\+\d+ s, \d+ s in all\)"
    for stage in ("repeated_tokens", "repeated_tokens · seed 2", "verify"):
        assert any(re.fullmatch(line.format(re.escape(stage)), said_line) for said_line in said), (stage, said)
