"""Interventions through the lens on tiny random models (full, GQA, MQA attention and Gemma 3)."""

from __future__ import annotations

import copy

import pytest
import torch

from headatlas.causal import interventions
from headatlas.causal.attribution import attribution_scores
from headatlas.causal.interventions import (
    MeanReplacement,
    Replacement,
    SourceReplacement,
    ZeroReplacement,
    capture,
    head_mask,
    make_replacement,
    masked_hook,
    mean_stats,
    memory_budget,
    parse_heads,
    row_bytes,
    run_prefix,
    run_sets,
    shares_prefix,
    sweep_last,
)
from headatlas.causal.metrics import get_metric
from headatlas.errors import InvalidSettingError
from headatlas.heads.tasks import capture_run
from headatlas.lens import session
from headatlas.probes import PROBES, ProbeSettings
from headatlas.testing.tiny import tiny_gemma3, tiny_llama

SMALL = ProbeSettings(repeat_len=8, n_repeat=4, batch_size=4)
MODELS = {
    "full": lambda: tiny_llama("full"),
    "gqa": lambda: tiny_llama("gqa"),
    "mqa": lambda: tiny_llama("mqa"),
    "gemma3": lambda: tiny_gemma3(),
}


def repeated(loaded, seed=0, settings=SMALL):
    return PROBES["repeated_tokens"](loaded.tokenizer, settings, seed)


def logits(loaded, batch, hooks=()):
    with torch.no_grad(), session(hooks=list(hooks)):
        return loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


# -- head names -------------------------------------------------------------------------------------
def test_parse_heads_accepts_names_and_pairs():
    facts = tiny_llama("gqa").facts
    assert parse_heads("L1H3, l0h0", facts) == [(1, 3), (0, 0)]
    assert parse_heads(["L0H2", (1, 1)], facts) == [(0, 2), (1, 1)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("L99H0", "layers are 0-1, heads 0-3"),
        ("L0H4", "layers are 0-1, heads 0-3"),
        ("", "empty head list"),
        (" , ", "empty head list"),
        ("H3L1", "bad head name"),
        ("L0H1,L0H1", "listed twice"),
        ([(0, 1, 2)], "bad head"),
    ],
)
def test_parse_heads_refuses_bad_input(spec, message):
    facts = tiny_llama("gqa").facts
    with pytest.raises(InvalidSettingError, match=message) as info:
        parse_heads(spec, facts)
    assert "\n" not in str(info.value)


# -- zero ablation = removing the head's columns of o_proj ----------------------------------------------
@pytest.mark.parametrize("kind", list(MODELS))
def test_zero_ablation_equals_zeroing_o_proj_columns(kind):
    loaded = MODELS[kind]()
    batch = repeated(loaded)[0]
    layer, head = 1, 2
    mask = head_mask([(layer, head)], loaded.facts)[None]
    ablated = logits(loaded, batch, [masked_hook(mask, ZeroReplacement(), batch.input_ids.shape[0])])

    manual = copy.deepcopy(loaded.model)
    dim = loaded.facts.head_dim
    with torch.no_grad():
        manual.model.layers[layer].self_attn.o_proj.weight[:, head * dim : (head + 1) * dim] = 0
    expected = manual(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.detach()

    clean = logits(loaded, batch)
    assert not torch.allclose(clean, expected, atol=1e-4)  # the head does matter in the random model
    torch.testing.assert_close(ablated, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["gqa", "mqa"])
def test_heads_sharing_a_kv_head_are_ablated_separately(kind):
    loaded = MODELS[kind]()
    batch = repeated(loaded)[0]
    size = batch.input_ids.shape[0]
    seen = {}

    def probe(layer, out):
        seen[layer] = out.detach().clone()

    mask = head_mask([(0, 1)], loaded.facts)[None]
    with torch.no_grad(), session(hooks=[masked_hook(mask, ZeroReplacement(), size), probe]):
        loaded.model(input_ids=batch.input_ids)
    reference = capture(loaded, batch)
    assert torch.all(seen[0][:, :, 1] == 0)
    torch.testing.assert_close(seen[0][:, :, 0], reference[0][:, :, 0])  # same KV head, untouched


# -- mean and resample ------------------------------------------------------------------------------
def test_mean_ablation_writes_the_bos_and_body_means():
    loaded = tiny_llama("gqa")
    batches = repeated(loaded)
    stats = mean_stats(loaded, batches)
    outs = capture(loaded, batches[0])  # [L, B, T, H, D]
    torch.testing.assert_close(stats[0, 0], outs[0][:, 0].mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stats[0, 1], outs[0][:, 1:].mean((0, 1)), atol=1e-5, rtol=1e-5)

    seen = {}
    mask = head_mask([(0, 3)], loaded.facts)[None]
    hook = masked_hook(mask, MeanReplacement(stats), batches[0].input_ids.shape[0])
    with torch.no_grad(), session(hooks=[hook, lambda layer, out: seen.setdefault(layer, out.detach().clone())]):
        loaded.model(input_ids=batches[0].input_ids)
    torch.testing.assert_close(seen[0][:, 0, 3], stats[0, 0, 3].expand(4, -1))
    torch.testing.assert_close(seen[0][:, 5, 3], stats[0, 1, 3].expand(4, -1))
    torch.testing.assert_close(seen[0][:, :, 2], outs[0][:, :, 2])


def test_resample_reads_the_next_reference_sample():
    loaded = tiny_llama("full")
    batch = repeated(loaded)[0]
    reference = repeated(loaded, seed=5)[0]
    replacement = make_replacement(loaded, "resample", [reference])
    metric = get_metric("induction_loss")
    ref_outs = capture(loaded, reference)
    seen = {}

    from headatlas.causal.interventions import resample_for

    bound = resample_for(replacement, 4)
    mask = head_mask([(0, 1)], loaded.facts)[None]
    with (
        torch.no_grad(),
        session(hooks=[masked_hook(mask, bound, 4), lambda layer, o: seen.setdefault(layer, o.clone())]),
    ):
        loaded.model(input_ids=batch.input_ids)
    torch.testing.assert_close(seen[0][:, :, 1], ref_outs[0][[1, 2, 3, 0], :, 1])
    values = run_sets(loaded, [batch], metric, [[], [(0, 1)]], replacement)
    assert values[0] != values[1]


def test_resample_needs_inputs_of_the_same_length():
    loaded = tiny_llama("gqa")
    short = repeated(loaded, settings=ProbeSettings(repeat_len=6, n_repeat=4, batch_size=4))[0]
    replacement = make_replacement(loaded, "resample", repeated(loaded))
    with pytest.raises(InvalidSettingError, match="same token length"):
        run_sets(loaded, [short], get_metric("induction_loss"), [[(0, 0)]], replacement)


def test_unknown_method_is_refused():
    loaded = tiny_llama("gqa")
    with pytest.raises(InvalidSettingError, match="valid methods are zero, mean, resample"):
        make_replacement(loaded, "shuffle", [])


# -- batching and patching ----------------------------------------------------------------------------
def test_settings_in_one_pass_match_separate_runs():
    loaded = tiny_llama("gqa")
    batches = repeated(loaded)
    metric = get_metric("induction_loss")
    replacement = make_replacement(loaded, "mean", batches)
    sets = [[], [(0, 0)], [(1, 3)], [(0, 2), (1, 1)]]
    together = run_sets(loaded, batches, metric, sets, replacement, max_batch=16)
    apart = torch.stack([run_sets(loaded, batches, metric, [s], replacement, max_batch=4)[0] for s in sets])
    torch.testing.assert_close(together, apart, atol=1e-6, rtol=1e-6)
    assert len(set(together.tolist())) == len(sets)  # every set changes the metric differently


def test_patching_clean_into_clean_is_identity():
    loaded = tiny_llama("gqa")
    batch = repeated(loaded)[0]
    source = SourceReplacement(capture(loaded, batch), torch.arange(4))
    every = torch.ones(1, loaded.facts.n_layers, loaded.facts.n_heads, dtype=torch.bool)
    patched = logits(loaded, batch, [masked_hook(every, source, 4)])
    torch.testing.assert_close(patched, logits(loaded, batch), atol=1e-6, rtol=1e-6)


def test_patching_every_head_from_another_input_moves_the_metric():
    loaded = tiny_llama("gqa")
    batch, other = repeated(loaded)[0], repeated(loaded, seed=9)[0]
    metric = get_metric("induction_loss")
    source = SourceReplacement(capture(loaded, other), torch.arange(4))
    every = [(layer, head) for layer in range(2) for head in range(4)]
    values = run_sets(loaded, [batch], metric, [[], every], source)
    assert abs(float(values[1] - values[0])) > 1e-3


# -- attribution ------------------------------------------------------------------------------------
class Nudge(Replacement):
    """A tiny fixed perturbation of the clean output: attribution (first order) must match it exactly."""

    def __init__(self, loaded, eps=1e-3):
        gen = torch.Generator().manual_seed(3)
        f = loaded.facts
        self.noise = eps * torch.randn(f.n_layers, 64, f.n_heads, f.head_dim, generator=gen)

    def values(self, layer, out, copies):
        return out.detach() + self.noise[layer, : out.shape[1]][None]


def test_attribution_matches_exact_change_for_small_perturbations():
    loaded = tiny_llama("gqa")
    batches = repeated(loaded)
    metric = get_metric("induction_loss")
    nudge = Nudge(loaded)
    heads = [(layer, head) for layer in range(2) for head in range(4)]
    values = run_sets(loaded, batches, metric, [[], *[[h] for h in heads]], nudge)
    exact = values[1:] - values[0]
    attr = attribution_scores(loaded, batches, metric, nudge)
    estimate = torch.tensor([float(attr[h]) for h in heads], dtype=torch.float64)
    assert exact.abs().max() > 1e-5
    torch.testing.assert_close(estimate, exact, atol=2e-6, rtol=0.05)


def test_attribution_of_mean_ablation_tracks_exact_ablation():
    loaded = tiny_llama("full")
    batches = repeated(loaded)
    metric = get_metric("induction_loss")
    replacement = make_replacement(loaded, "mean", batches)
    heads = [(layer, head) for layer in range(2) for head in range(4)]
    values = run_sets(loaded, batches, metric, [[], *[[h] for h in heads]], replacement)
    exact = (values[1:] - values[0]).float()
    for steps in (1, 3):
        attr = attribution_scores(loaded, batches, metric, replacement, steps=steps)
        estimate = torch.tensor([float(attr[h]) for h in heads])
        assert torch.corrcoef(torch.stack([estimate, exact]))[0, 1] > 0.9
    with pytest.raises(InvalidSettingError, match="positive integer"):
        attribution_scores(loaded, batches, metric, replacement, steps=0)
    # the one-pass variant (means taken from the same forward) equals the explicit replacement
    torch.testing.assert_close(
        attribution_scores(loaded, batches, metric, None),
        attribution_scores(loaded, batches, metric, replacement),
        atol=1e-6,
        rtol=1e-4,
    )


# -- steps from a cached prefix (the task head types' sweeps) ------------------------------------------
@pytest.mark.parametrize("position", [-1, 4], ids=["last", "middle"])
@pytest.mark.parametrize("make", [lambda: tiny_llama("gqa"), lambda: tiny_gemma3()], ids=["llama-gqa", "gemma3"])
def test_sweep_from_a_cached_prefix_matches_full_forward_patching(make, position):
    loaded = make()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 200, (3, 11), generator=gen)
    n_heads, head_dim = loaded.facts.n_heads, loaded.facts.head_dim
    source = torch.randn(loaded.facts.n_layers, 3, n_heads, head_dim, generator=gen)
    settings = [None, (0, 1), (1, 3)]
    prefix = run_prefix(loaded, ids, position)
    swept = sweep_last(loaded, prefix, settings, source.__getitem__, lambda lg: lg)
    assert swept.shape == (3, 3, loaded.facts.vocab_size)
    clean = capture_run(loaded, ids)["logits"]
    torch.testing.assert_close(swept[0], clean, atol=1e-4, rtol=1e-4)
    for s, (layer, head) in enumerate(settings[1:], start=1):

        def hook(at: int, out: torch.Tensor, layer: int = layer, head: int = head) -> torch.Tensor | None:
            if at != layer:
                return None
            new = out.clone()
            new[:, position, head] = source[layer][:, head]
            return new

        with torch.no_grad(), session(hooks=[hook]):
            full = loaded.model(input_ids=ids).logits[:, -1]
        torch.testing.assert_close(swept[s], full, atol=1e-4, rtol=1e-4)
        if position == -1 or layer < loaded.facts.n_layers - 1:  # a last-layer head cannot reach a later position
            assert float((swept[s] - swept[0]).abs().max()) > 1e-4  # the patch did something


def test_attention_only_sweep_stops_early_and_reports_probs():
    loaded = tiny_llama("full", layers=3)
    ids = torch.randint(2, 200, (2, 9), generator=torch.Generator().manual_seed(1))
    seen: list[tuple[int, int, tuple[int, ...]]] = []
    out = sweep_last(
        loaded,
        run_prefix(loaded, ids),
        [None, (0, 0), (0, 2)],
        lambda layer: torch.zeros(2, 4, loaded.facts.head_dim),
        None,
        tap_layers=frozenset({1}),
        on_probs=lambda start, layer, probs: seen.append((start, layer, tuple(probs.shape))),
        max_rows=4,  # two settings per pass
    )
    assert out.numel() == 0
    assert seen == [(0, 1, (4, 4, 1, 9)), (2, 1, (2, 4, 1, 9))]


@pytest.mark.parametrize("position", [-1, 4], ids=["last", "middle"])
@pytest.mark.parametrize("make", [lambda: tiny_llama("gqa"), lambda: tiny_gemma3()], ids=["llama-gqa", "gemma3"])
def test_rows_reading_the_prefix_in_place_equal_a_copy_per_row(make, position, monkeypatch):
    """Bit for bit when a chunk holds the pass's rows; one row at a time within float rounding, since SDPA's
    CPU kernel may split its work by batch size (2 threads, AVX-512 AMD EPYC: single-row queries differ by ~3e-8)."""
    loaded = make()
    f = loaded.facts
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(2, 200, (3, 11), generator=gen)
    source = torch.randn(f.n_layers, 3, f.n_heads, f.head_dim, generator=gen)
    settings = [None, *[(layer, head) for layer in range(f.n_layers) for head in range(f.n_heads)]]
    prefix = run_prefix(loaded, ids, position)
    assert shares_prefix(prefix)
    tapped: dict[str, list[torch.Tensor]] = {}

    def sweep(name: str, **kwargs) -> torch.Tensor:
        def on_probs(start: int, layer: int, probs: torch.Tensor) -> None:
            tapped.setdefault(name, []).append(probs.clone())

        return sweep_last(loaded, prefix, settings, source.__getitem__, lambda lg: lg, max_rows=12,
                          tap_layers=frozenset({1}), on_probs=on_probs, **kwargs)  # fmt: skip

    copied = sweep("copied", share_prefix=False)
    monkeypatch.setattr(interventions, "ATTENTION_CHUNK_BYTES", 2**30)  # every row of a pass at once
    assert torch.equal(sweep("shared whole"), copied)
    assert all(torch.equal(a, b) for a, b in zip(tapped["shared whole"], tapped["copied"], strict=True))
    monkeypatch.setattr(interventions, "ATTENTION_CHUNK_BYTES", 1)  # one row at a time
    torch.testing.assert_close(sweep("shared rows"), copied, rtol=1e-5, atol=1e-6)
    for a, b in zip(tapped["shared rows"], tapped["copied"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    keys_before = [layer.keys.clone() for layer in prefix.cache.layers]
    sweep("again")
    assert all(torch.equal(a, layer.keys) for a, layer in zip(keys_before, prefix.cache.layers, strict=True))


def test_a_memory_budget_runs_fewer_settings_per_pass_with_the_same_answers():
    loaded = tiny_llama("gqa", layers=3)
    ids = torch.randint(2, 200, (2, 9), generator=torch.Generator().manual_seed(3))
    settings = [None, *[(layer, head) for layer in range(3) for head in range(4)]]
    mean = torch.randn(3, 4, loaded.facts.head_dim, generator=torch.Generator().manual_seed(4))
    prefix = run_prefix(loaded, ids)
    free = sweep_last(loaded, prefix, settings, mean.__getitem__, lambda lg: lg)
    per_row = row_bytes(prefix, loaded.facts.vocab_size)
    assert per_row == 3 * 4 * loaded.facts.vocab_size  # the rows read the prefix in place: no copy to count
    starts: list[int] = []
    with memory_budget(3 * 2 * per_row):  # three settings of two prompts per pass
        bounded = sweep_last(
            loaded, prefix, settings, mean.__getitem__, lambda lg: lg,
            tap_layers=frozenset({0}), on_probs=lambda start, layer, probs: starts.append(start),
        )  # fmt: skip
    assert starts == [0, 3, 6, 9, 12]
    torch.testing.assert_close(bounded, free, atol=1e-5, rtol=1e-5)
    with memory_budget(1):  # below one setting: still one setting per pass, never zero
        starts.clear()
        sweep_last(loaded, prefix, settings[:3], mean.__getitem__, None, tap_layers=frozenset({0}),
                   on_probs=lambda start, layer, probs: starts.append(start))  # fmt: skip
    assert starts == [0, 1, 2]


def test_whole_prompt_passes_are_sized_by_the_budget_and_give_the_same_answers(monkeypatch):
    loaded = tiny_llama("gqa", layers=3)
    batches = repeated(loaded)  # 4 prompts per batch
    metric = get_metric("induction_loss")
    replacement = make_replacement(loaded, "mean", batches)
    sets = [[], *[[(layer, head)] for layer in range(3) for head in range(4)], [(1, 0), (2, 3)]]
    free = run_sets(loaded, batches, metric, sets, replacement, max_batch=8)
    per_row = interventions.whole_row_bytes(loaded, batches[0], metric)
    assert per_row > 3 * 4 * metric.rows(batches[0]).shape[1] * loaded.facts.vocab_size  # logits and activations
    assert interventions.pass_rows(loaded, batches[0], metric, 8, shared=True) == 8  # no budget: max_batch
    rows_seen: list[int] = []
    forward = loaded.model.forward

    def counting(*args, **kwargs):
        out = forward(*args, **kwargs)
        rows_seen.append(int(out.logits.shape[0]))
        return out

    monkeypatch.setattr(loaded.model, "forward", counting)
    with memory_budget(10**12):  # room to spare: shared passes grow to twice max_batch
        assert interventions.pass_rows(loaded, batches[0], metric, 8, shared=True) == 16
        assert interventions.pass_rows(loaded, batches[0], metric, 8, shared=False) == 8
        roomy = run_sets(loaded, batches, metric, sets, replacement, max_batch=8)
    assert max(rows_seen) == 16
    rows_seen.clear()
    with memory_budget(1):  # below one setting's rows: one setting (4 prompts) per pass, never zero
        tight = run_sets(loaded, batches, metric, sets, replacement, max_batch=8)
    assert set(rows_seen) == {4}
    rows_seen.clear()
    with memory_budget(10**12), interventions.earlier_paths():  # the bench's baseline: whole batches, max_batch rows
        earlier = run_sets(loaded, batches, metric, sets, replacement, max_batch=8)
    assert set(rows_seen) == {8}
    torch.testing.assert_close(roomy, free, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(tight, free, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(earlier, free, atol=1e-6, rtol=1e-6)
