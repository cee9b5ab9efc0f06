"""Benchmark: attribution patching of every head vs exact single-head ablation of every head.

On SmolLM2-135M (or ``--model``), induction metric (loss on the second copy of repeated random
tokens), mean ablation. Times one clean forward pass of the batch (the unit), attribution patching
(one forward and one backward with gradients on every head's output; the mean-ablation values come
from the same forward)
and exact single-head ablation of all heads (one ablated run per head, batched), then Spearman's rho
between the two per-head damage estimates. When plain attribution misses rho >= 0.8, the
integrated-gradients variant (``--ig-steps`` points on the path, EAP-IG style) is timed and compared
too. The last line printed is one JSON object.

Usage: ``python -m headatlas.bench causal [--model M] [--n-repeat 2] [--repeat-len 16] [--ig-steps 4]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from ..causal.attribution import attribution_scores
from ..causal.interventions import make_replacement, metric_values, run_sets
from ..causal.metrics import get_metric
from ..causal.verify import spearman
from ..lens import session
from ..models.loader import load_model
from ..probes import PROBES, ProbeSettings


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench causal", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n-repeat", type=int, default=2, help="sequences in the batch")
    parser.add_argument("--repeat-len", type=int, default=16, help="|x| in [BOS, x, x]")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    parser.add_argument("--ig-steps", type=int, default=4, help="path points of the integrated-gradients variant")
    parser.add_argument("--always-ig", action="store_true", help="run the IG variant even when rho >= 0.8")
    parser.add_argument("--max-batch", type=int, default=32, help="sequences per forward in exact ablation")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_grad_enabled(False)
    loaded = load_model(args.model)
    f = loaded.facts
    settings = ProbeSettings(repeat_len=args.repeat_len, n_repeat=args.n_repeat, batch_size=args.n_repeat)
    batches = PROBES["repeated_tokens"](loaded.tokenizer, settings, args.seed)
    metric = get_metric("induction_loss")
    batch = batches[0].to(loaded.device)

    def forward() -> torch.Tensor:
        with session():
            return metric_values(loaded, batch, metric)

    def attribution(steps: int) -> torch.Tensor:
        # mean ablation with the batch's own means: taken from the same forward when steps == 1
        return attribution_scores(loaded, batches, metric, None, steps=steps)

    forward()  # warm-up
    attribution(1)
    forward_times, attribution_times = [], []
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
        forward_times.append(_timed(forward)[1])
        attr, seconds = _timed(lambda: attribution(1))
        attribution_times.append(seconds)
    forward_s, attribution_s = statistics.median(forward_times), statistics.median(attribution_times)
    print(f"model {f.name}: {f.n_layers}x{f.n_heads} = {f.n_head_total} heads; batch {tuple(batch.input_ids.shape)}")
    print(f"clean forward (metric rows only): {forward_s:.3f} s (median of {args.repeats})")
    print(f"attribution patching, all heads: {attribution_s:.3f} s = {attribution_s / forward_s:.2f} forwards")

    replacement = make_replacement(loaded, "mean", batches)
    heads = [(layer, head) for layer in range(f.n_layers) for head in range(f.n_heads)]
    values, exact_s = _timed(
        lambda: run_sets(loaded, batches, metric, [[], *[[h] for h in heads]], replacement, args.max_batch)
    )
    exact = (values[1:] - values[0]).tolist()  # loss: damage = ablated - clean
    attr_list = [float(attr[h]) for h in heads]
    rho = spearman(attr_list, exact)
    print(f"exact single-head ablation, all heads: {exact_s:.1f} s = {exact_s / forward_s:.1f} forwards")
    print(f"spearman(attribution, exact) = {rho}")
    order = sorted(range(len(heads)), key=lambda i: -exact[i])[:10]
    for i in order:
        print(f"  L{heads[i][0]}H{heads[i][1]}: exact {exact[i]:+.4f}  attribution {attr_list[i]:+.4f}")

    record: dict[str, Any] = {
        "model": f.name,
        "n_heads": f.n_head_total,
        "batch": list(batch.input_ids.shape),
        "forward_s": round(forward_s, 4),
        "attribution_s": round(attribution_s, 4),
        "exact_s": round(exact_s, 3),
        "attribution_over_forward": round(attribution_s / forward_s, 3),
        "exact_over_attribution_time": round(exact_s / attribution_s, 2),
        "spearman_attribution_vs_exact": None if rho is None else round(rho, 4),
    }
    if args.always_ig or rho is None or rho < 0.8:
        ig, ig_s = _timed(lambda: attribution(args.ig_steps))
        ig_rho = spearman([float(ig[h]) for h in heads], exact)
        print(f"IG attribution ({args.ig_steps} steps): {ig_s:.3f} s = {ig_s / forward_s:.2f} forwards, rho {ig_rho}")
        record.update(
            ig_steps=args.ig_steps,
            ig_s=round(ig_s, 4),
            ig_over_forward=round(ig_s / forward_s, 3),
            exact_over_ig_time=round(exact_s / ig_s, 2),
            spearman_ig_vs_exact=None if ig_rho is None else round(ig_rho, 4),
        )
    print(json.dumps(record, sort_keys=True))
    return 0
