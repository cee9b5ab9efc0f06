"""Census benchmark: the lens against a plain SDPA forward, eager ``output_attentions`` and TransformerLens.

``python -m headatlas.bench census [--model smollm2-135m] [--contexts 2048,4096,8192]``

Times are the best of ``--repeats`` runs over the same probe tokens. Peak memory is measured in a fresh
child process per setting, as the rise of the peak resident set (VmHWM, reset after loading) above the
loaded model, so the weights do not dilute the ratio. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

import torch

from ..census import ScanSettings, run_census
from ..models.loader import LoadedModel, load_model
from ..probes import PROBES, ProbeBatch, ProbeSettings
from .proc import status_kb

TLHeadName = Literal["previous_token_head", "duplicate_token_head", "induction_head"]
TL_TYPES: dict[str, TLHeadName] = {
    "previous_token": "previous_token_head",
    "duplicate_token": "duplicate_token_head",
    "induction": "induction_head",
}
CENSUS_TYPES = ("previous_token", "current_token", "sink", "duplicate_token", "induction", "local", "retrieval")
TL_PROBE = {"previous_token": "natural_text", "duplicate_token": "repeated_tokens", "induction": "repeated_tokens"}


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_forwards(loaded: LoadedModel, batches: list[ProbeBatch]) -> None:
    """The baseline: the same tokens through the model's SDPA attention, logits at the same rows."""
    with torch.no_grad():
        for b in batches:
            keep = b.rows.clamp(min=0).flatten().unique()
            loaded.model(input_ids=b.input_ids, attention_mask=b.attention_mask, logits_to_keep=keep)


def eager_forwards(model: Any, batches: list[ProbeBatch]) -> None:
    with torch.no_grad():
        for b in batches:
            model(input_ids=b.input_ids, attention_mask=b.attention_mask, output_attentions=True)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    import pandas as pd

    return float(pd.Series(a.flatten().tolist()).corr(pd.Series(b.flatten().tolist()), method="spearman"))


def transformerlens_scores(loaded: LoadedModel, settings: ProbeSettings, seed: int) -> tuple[float, dict]:
    """TransformerLens ``detect_head`` for its three types on the same token sequences (one at a time)."""
    from transformer_lens.head_detector import detect_head
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(
        loaded.facts.name, hf_model=copy.deepcopy(loaded.model), tokenizer=loaded.tokenizer
    )
    scores: dict[str, torch.Tensor] = {}
    start = time.perf_counter()
    for type_id, tl_name in TL_TYPES.items():
        sequences = [row for b in PROBES[TL_PROBE[type_id]](loaded.tokenizer, settings, seed) for row in b.input_ids]
        per_seq = []
        for tokens in sequences:
            # detect_head tokenises strings; hand it our exact ids so both tools score the same tokens
            bridge.to_tokens = lambda _seq, _t=tokens, **_: _t[None]  # type: ignore[method-assign]
            per_seq.append(detect_head(bridge, "probe", tl_name))
        scores[type_id] = torch.stack(per_seq).mean(0)
    return time.perf_counter() - start, scores


def child_peak_mb(model_name: str, mode: str, context: int) -> float:
    """Run one needle forward of ``context`` tokens in a fresh process; return its peak RSS rise in MB."""
    command = [sys.executable, "-m", "headatlas.bench.census", "--child", mode, "--model", model_name,
               "--contexts", str(context)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"memory child {mode}@{context} failed: {tail}")
    return float(done.stdout.strip().splitlines()[-1])


def run_child(model_name: str, mode: str, context: int) -> None:
    loaded = load_model(model_name)
    batch = PROBES["needle"](loaded.tokenizer, ProbeSettings(needle_contexts=(context,), needle_per_context=1), 0)[0]
    if mode == "eager":
        loaded.model.set_attn_implementation("eager")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak-RSS mark so loading does not count
    base = status_kb("VmRSS")
    if mode == "lens":
        run_census(loaded, ScanSettings(head_types=("retrieval",), probes=ProbeSettings(
            needle_contexts=(context,), needle_per_context=1)))  # fmt: skip
    elif mode == "plain":
        plain_forwards(loaded, [batch])
    else:
        eager_forwards(loaded.model, [batch])
    print((status_kb("VmHWM") - base) / 1024)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench census")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--contexts", default="2048,4096,8192")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=("plain", "lens", "eager"))
    args = parser.parse_args(argv)
    contexts = [int(c) for c in args.contexts.split(",")]
    if args.child:
        run_child(args.model, args.child, contexts[0])
        return 0

    torch.manual_seed(0)
    loaded = load_model(args.model)
    settings = ProbeSettings(needle_contexts=(1024,), needle_per_context=2)
    batches = [b for probe in PROBES.values() for b in probe(loaded.tokenizer, settings, 0)]
    n_tokens = sum(int(b.attention_mask.sum()) for b in batches)
    plain_s = best_of(args.repeats, lambda: plain_forwards(loaded, batches))
    census = ScanSettings(head_types=CENSUS_TYPES, probes=settings)  # the pattern types of the census
    census_s = best_of(args.repeats, lambda: run_census(loaded, census))
    short = [b for b in batches if b.input_ids.shape[1] <= 256]
    eager_model = copy.deepcopy(loaded.model)
    eager_model.set_attn_implementation("eager")
    eager_s = best_of(args.repeats, lambda: eager_forwards(eager_model, short))
    plain_short_s = best_of(args.repeats, lambda: plain_forwards(loaded, short))

    three = ScanSettings(head_types=tuple(TL_TYPES), probes=settings)
    ours_three_s = best_of(args.repeats, lambda: run_census(loaded, three))
    ours = run_census(loaded, three)
    tl_s, tl_scores = transformerlens_scores(loaded, settings, 0)
    rho = {t: round(spearman(torch.from_numpy(ours.matrix(t)), tl_scores[t]), 4) for t in TL_TYPES}

    memory = {c: {m: child_peak_mb(args.model, m, c) for m in ("plain", "lens")} for c in contexts}
    eager_mem = {c: child_peak_mb(args.model, "eager", c) for c in contexts if c <= 2048}
    f = loaded.facts
    largest = max(contexts)
    stored_attn_mb = f.n_layers * f.n_heads * largest * largest * 4 / 2**20  # what eager must keep at 8k

    print(f"model {f.name}: {f.n_layers} layers x {f.n_heads} heads, {n_tokens} probe tokens in {len(batches)} passes")
    print(f"{'setting':<44}{'seconds':>10}{'ratio':>10}")
    print(f"{'plain SDPA forward (all probes)':<44}{plain_s:>10.2f}{1.0:>10.2f}")
    print(f"{'headatlas census, all 7 types':<44}{census_s:>10.2f}{census_s / plain_s:>10.2f}")
    print(f"{'plain SDPA forward (short probes)':<44}{plain_short_s:>10.2f}{1.0:>10.2f}")
    print(f"{'eager output_attentions (short probes)':<44}{eager_s:>10.2f}{eager_s / plain_short_s:>10.2f}")
    print(f"{'headatlas census, 3 TransformerLens types':<44}{ours_three_s:>10.2f}{1.0:>10.2f}")
    print(f"{'TransformerLens detect_head, 3 types':<44}{tl_s:>10.2f}{tl_s / ours_three_s:>10.2f}")
    print(f"Spearman vs TransformerLens: {rho}")
    print(f"{'retrieval probe peak memory above model (MB)':<44}{'plain':>10}{'lens':>10}{'ratio':>10}{'eager':>10}")
    for c in contexts:
        eager_cell = f"{eager_mem[c]:>10.0f}" if c in eager_mem else f"{'(n/a)':>10}"
        p, le = memory[c]["plain"], memory[c]["lens"]
        print(f"{f'{c} tokens':<44}{p:>10.0f}{le:>10.0f}{le / p:>10.2f}{eager_cell}")
    print(f"eager at {largest} tokens must store {stored_attn_mb:,.0f} MB of attention; not run on this machine")
    result = {
        "census_over_plain": round(census_s / plain_s, 3),
        "census_vs_transformerlens_speedup": round(tl_s / ours_three_s, 2),
        "spearman_vs_transformerlens": rho,
        f"peak_mem_ratio_{largest // 1024}k_lens_over_plain": round(
            memory[largest]["lens"] / memory[largest]["plain"], 3
        ),
        f"eager_peak_mem_{largest // 1024}k_mb": round(stored_attn_mb),
        "eager_peak_mem_measured_mb": {str(c): round(v) for c, v in eager_mem.items()},
        "eager_8k_is_estimate": True,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
