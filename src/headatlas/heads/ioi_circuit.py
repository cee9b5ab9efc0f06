"""The IOI experiment shared by the name-mover, negative-name-mover and S-inhibition head types.

One run on the IOI prompt set (:mod:`headatlas.probes.ioi`) measures, per head:

* ``direct``: the head's direct effect on the logit difference ``logit(IO) - logit(S)`` at the end
  position, clean minus ABC-corrupted. It is what patching the head's end-position output from the
  corrupted run into the clean run changes on the path head -> logits alone (negated, so a head that
  helps the clean answer scores positive): the head's output enters the residual stream through its
  slice of ``o_proj`` and reaches the logits through the final RMS norm, whose ``1/rms`` is frozen at
  the clean run's value (and Gemma's post-attention norm likewise). That path is linear, so the effect
  is exact for the frozen-norm path and costs two forward passes for every head at once (direct logit
  attribution of the clean-minus-corrupted output difference; Wang et al. 2023 measure the same path by
  path patching to the logits).
* ``attn_io`` / ``attn_s``: the head's attention from the end position to IO and to the two mentions of S.
* ``s_inhibition``: for each sender head in layers below the receivers (the strongest name movers), the
  drop in the receivers' preference for IO over S, ``log A[end, IO] - log (A[end, S1] + A[end, S2])``,
  when the sender's end-position output is patched from the ABC run into the clean run. Only the end
  position is patched, so under causal attention the receivers' keys at IO and S are untouched; the
  log-odds of two keys does not depend on any third key, so what changes is exactly the receivers'
  *query* at the end position. That is path patching to the name-mover queries (Wang et al. 2023),
  simplified in one way: components between sender and receiver at the end position (heads and MLPs)
  are not frozen, so indirect routes to the same queries count too. Heads in or above the top
  receiver's layer cannot reach it and score 0.

* ``s2_signal`` / ``s1_next_signal``: the IOI roles of the heads upstream of S-inhibition. Wang et al.
  find duplicate-token and induction heads writing "S appeared before" at the second mention of S, and
  previous-token heads writing "S came just before" at the token after S1, where induction heads read it.
  For each head, its output at S2 is patched from the ABC run (where the name at S2 is new), or its
  output at S1+1 from a run whose first S is swapped for the third name; the score is the drop of the
  logit difference at the end. Only one position of one head changes, and positions before it are
  untouched, so the prompt is cached up to that position and only the rest is re-run. To keep a scan
  quick these run on the first prompt of each template, S2 senders only below the top name mover's layer
  and S1+1 senders only below the top S2 head's layer (a signal cannot reach an earlier layer); heads
  outside those ranges score 0.

Runs once per (model, prompts, seed) and is shared by the three types through :func:`ioi_result`.
Cost in a default scan: 16 clean/ABC prompt pairs (2 forward passes each, 15-19 tokens), then one
last-token step per sender head and prompt, each stopped after the top receiver's layer; the upstream
roles add one re-run of the prompt's tail per head below the cut and template (the whole IOI run, roles
included, took 83 s for SmolLM2-135M on two CPU cores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..probes import ioi as ioi_probe
from .tasks import all_heads, capture_run, direct_effects, memoised

if TYPE_CHECKING:
    import torch

    from ..causal.interventions import HeadRef
    from ..models.loader import LoadedModel
else:
    torch = lazy_module("torch")

N_RECEIVERS = 3
"""Name movers whose queries S-inhibition is measured on: the strongest by direct effect."""
ATTN_MIN = 0.1
"""A name mover (or negative name mover) must put at least this much end-position attention on IO."""
N_ROLE_HEADS = 5
"""Heads listed per upstream role (S2 signal, S1+1 signal) in the probe info."""


@dataclass(frozen=True)
class IOIResult:
    direct: torch.Tensor  # [L, H] mean direct effect on IO - S (logits), clean minus corrupted
    gated: torch.Tensor  # [L, H] ``direct`` where the head attends to IO (attn_io >= ATTN_MIN), else 0
    attn_io: torch.Tensor  # [L, H] mean attention end -> IO (clean)
    attn_s: torch.Tensor  # [L, H] mean attention end -> S1 + S2 (clean)
    s_inhibition: torch.Tensor  # [L, H] mean drop of the receivers' IO-vs-S attention log-odds
    s2_signal: torch.Tensor  # [L, H] mean drop of IO - S when the head's S2 output comes from the ABC run
    s1_next_signal: torch.Tensor  # [L, H] … when its S1+1 output comes from a run with S1 swapped
    receivers: tuple[HeadRef, ...]
    n_prompts: int
    info: dict[str, Any]


def _log_odds(probs: torch.Tensor, head: int, io_pos: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """``log A[IO] - log (A[S1] + A[S2])`` of one head for rows of probs ``[N, H, 1, K]`` (positions ``[N]``)."""
    row = probs[:, head, 0].float()
    pick = torch.arange(row.shape[0], device=row.device)
    p_io = row[pick, io_pos.to(row.device)].clamp(min=1e-12)
    p_s = (row[pick, s1.to(row.device)] + row[pick, s2.to(row.device)]).clamp(min=1e-12)
    return (p_io.log() - p_s.log()).cpu()


def run_ioi(
    loaded: LoadedModel,
    n_prompts: int = ioi_probe.DEFAULT_PROMPTS,
    seed: int = 0,
    names: tuple[str, ...] | None = None,
    n_receivers: int = N_RECEIVERS,
) -> IOIResult:
    """The whole experiment (see the module docstring); deterministic in ``seed``."""
    data = ioi_probe.build(loaded.tokenizer, n_prompts, seed, names)
    n_layers, n_heads = loaded.facts.n_layers, loaded.facts.n_heads
    unembed = loaded.model.get_output_embeddings().weight
    direct = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    attn_io = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    attn_s = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    ld_clean = ld_corrupt = 0.0
    corrupted_heads = []
    for g in data.groups:
        end = g.clean.shape[1] - 1
        rows = torch.full((g.clean.shape[0], 1), end)
        clean = capture_run(loaded, g.clean, tap_rows=rows, hidden=True)
        corrupt = capture_run(loaded, g.corrupt)
        corrupted_heads.append(corrupt["heads"])
        directions = (unembed[g.io] - unembed[g.s]).detach().float()
        effect = direct_effects(loaded, clean["heads"], clean["final"], directions) - direct_effects(
            loaded, corrupt["heads"], clean["final"], directions
        )
        direct += effect.double().sum(0)
        pick = torch.arange(g.clean.shape[0])
        probs = clean["probs"][:, :, :, 0]  # [L, B, H, K]

        def at(pos: torch.Tensor, probs: torch.Tensor = probs) -> torch.Tensor:
            index = pos[None, :, None, None].expand(probs.shape[0], -1, probs.shape[2], 1)
            return probs.gather(3, index)[..., 0].sum(1).double()  # [L, H] summed over prompts

        attn_io += at(g.io_pos)
        attn_s += at(g.s1_pos) + at(g.s2_pos)
        for logits, key in ((clean["logits"], "clean"), (corrupt["logits"], "corrupt")):
            diff = float((logits[pick, g.io] - logits[pick, g.s]).sum())
            if key == "clean":
                ld_clean += diff
            else:
                ld_corrupt += diff
    n = data.n_prompts
    direct, attn_io, attn_s = direct / n, attn_io / n, attn_s / n

    attends = attn_io >= ATTN_MIN
    gated = torch.where(attends, direct, torch.zeros_like(direct)).float()
    order = torch.argsort(-gated.flatten(), stable=True).tolist()
    receivers = tuple((i // n_heads, i % n_heads) for i in order[:n_receivers] if float(gated.flatten()[i]) > 0)
    s_inh = _s_inhibition(loaded, data, corrupted_heads, receivers)
    s2_signal, s1_next_signal = _upstream_roles(loaded, data, receivers)
    info = {
        **data.info,
        "logit_diff_clean": round(ld_clean / n, 6),
        "logit_diff_corrupt": round(ld_corrupt / n, 6),
        "receivers": [f"L{layer}H{head}" for layer, head in receivers],
    }
    strong_elsewhere = (direct.abs() >= 0.2) & ~attends
    info["direct_without_io_attention"] = {
        f"L{layer}H{head}": round(float(direct[layer, head]), 4) for layer, head in strong_elsewhere.nonzero().tolist()
    }
    info["roles"] = {
        "s2_signal": _top(s2_signal),
        "s1_next_signal": _top(s1_next_signal),
        "how": "drop of IO - S (logits) when one head's output at S2 (from the ABC run) or at S1+1 (from a run"
        " with S1 swapped for the third name) is patched in; the strongest heads",
    }
    return IOIResult(
        direct.float(), gated, attn_io.float(), attn_s.float(), s_inh, s2_signal, s1_next_signal, receivers, n, info
    )


def _top(score: torch.Tensor, k: int = N_ROLE_HEADS) -> dict[str, float]:
    order = torch.argsort(-score.flatten(), stable=True)[:k].tolist()
    n_heads = score.shape[1]
    return {f"L{i // n_heads}H{i % n_heads}": round(float(score.flatten()[i]), 4) for i in order}


def _position_patch(loaded: LoadedModel, clean: torch.Tensor, source: torch.Tensor, position: int,
                    io: torch.Tensor, s: torch.Tensor, below: int) -> torch.Tensor:  # fmt: skip
    """``[L, H]`` drop of IO - S summed over the prompts when the output at ``position`` (one for the whole
    batch) of each head in layers ``< below`` is taken from the ``source`` prompts' run; 0 elsewhere."""
    from ..causal.interventions import run_prefix, sweep_last

    n_layers, n_heads = loaded.facts.n_layers, loaded.facts.n_heads
    score = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    heads = all_heads(n_layers, n_heads, below=below)
    if not heads:
        return score
    source_heads = capture_run(loaded, source[:, : position + 1])["heads"]  # outputs at ``position``
    pick = torch.arange(clean.shape[0])

    def logit_diff(logits: torch.Tensor) -> torch.Tensor:  # [S, B, V] -> [S, B]
        logits = logits.cpu()
        return logits[:, pick, io] - logits[:, pick, s]

    prefix = run_prefix(loaded, clean, position)
    diffs = sweep_last(loaded, prefix, [None, *heads], source_heads.__getitem__, logit_diff)
    for (layer, head), value in zip(heads, (diffs[0:1] - diffs[1:]).sum(-1).tolist(), strict=True):
        score[layer, head] = value
    return score


def _upstream_roles(
    loaded: LoadedModel, data: ioi_probe.IOISet, receivers: tuple[HeadRef, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(``s2_signal``, ``s1_next_signal``), each ``[L, H]`` averaged over the first prompt of each template."""
    n_layers, n_heads = loaded.facts.n_layers, loaded.facts.n_heads
    first = torch.arange(1)
    s2 = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    s2_below = max((layer for layer, _ in receivers), default=n_layers)
    for g in data.groups:
        s2_pos = int(g.s2_pos[0])
        s2 += _position_patch(loaded, g.clean[first], g.corrupt[first], s2_pos, g.io[first], g.s[first], s2_below)
    top = int(torch.argmax(s2.flatten()))
    s1_below = top // n_heads if float(s2.flatten()[top]) > 0 else n_layers
    s1_next = torch.zeros_like(s2)
    for g in data.groups:
        s1_pos = int(g.s1_pos[0])
        swapped = g.clean[first].clone()
        swapped[0, s1_pos] = g.corrupt[0, g.s2_pos[0]]  # the third name in S1's place
        s1_next += _position_patch(loaded, g.clean[first], swapped, s1_pos + 1, g.io[first], g.s[first], s1_below)
    return (s2 / len(data.groups)).float(), (s1_next / len(data.groups)).float()


def _s_inhibition(
    loaded: LoadedModel, data: ioi_probe.IOISet, corrupted: list[torch.Tensor], receivers: tuple[HeadRef, ...]
) -> torch.Tensor:

    from ..causal.interventions import run_prefix, sweep_last

    n_layers, n_heads = loaded.facts.n_layers, loaded.facts.n_heads
    score = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    if not receivers:
        return score.float()
    senders = all_heads(n_layers, n_heads, below=max(layer for layer, _ in receivers))
    settings: list[HeadRef | None] = [None, *senders]
    tap_layers = frozenset(layer for layer, _ in receivers)
    for g, heads_x in zip(data.groups, corrupted, strict=True):
        batch = int(g.clean.shape[0])
        prefs = torch.zeros(len(settings), batch, len(receivers))

        def on_probs(
            start: int, layer: int, probs: torch.Tensor, g: Any = g, prefs: torch.Tensor = prefs, batch: int = batch
        ) -> None:
            copies = probs.shape[0] // batch
            for r, (r_layer, r_head) in enumerate(receivers):
                if r_layer == layer:
                    pos = [p.repeat(copies) for p in (g.io_pos, g.s1_pos, g.s2_pos)]
                    values = _log_odds(probs, r_head, *pos).reshape(copies, batch)
                    prefs[start : start + copies, :, r] = values

        sweep_last(
            loaded,
            run_prefix(loaded, g.clean),
            settings,
            heads_x.__getitem__,  # layer -> the ABC run's end-position outputs [B, H, D]
            None,
            tap_layers=tap_layers,
            on_probs=on_probs,
        )
        drop = (prefs[0:1] - prefs[1:]).mean(-1).sum(-1)  # [senders], summed over prompts
        for (layer, head), value in zip(senders, drop.tolist(), strict=True):
            score[layer, head] += value
    return (score / data.n_prompts).float()


def ioi_result(loaded: LoadedModel, seed: int, n_prompts: int = ioi_probe.DEFAULT_PROMPTS) -> IOIResult:
    """:func:`run_ioi` with the default prompt set, computed once per model and seed."""
    return memoised(loaded, ("ioi", n_prompts, seed), lambda: run_ioi(loaded, n_prompts, seed))
