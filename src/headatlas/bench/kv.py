"""Benchmark: a head-aware KV cache planned from a scan vs the full cache, random heads and kvpress presses.

Needle in a haystack on SmolLM2-135M (or ``--model`` with ``--scan``), seeded: filler prose with a
passphrase needle ("The secret passphrase of the <place> archive is <w1>-<w2>-<n>.") at depths 10/50/90 %,
then the question. Protocol of kvpress's pipeline: the context is prefilled (full attention) and compressed,
then the question is read and the answer generated greedily from the compressed cache. Scores: exact match
of the generated value, teacher-forced value-token accuracy, and the loss on 128 tokens of prose read
after a compressed prose context (the prose repeats sentences, so part of that loss is long-range copying).
SmolLM2-135M (Q4_1 GGUF, dequantised) does not generate the value exactly even with the full cache at 1k
tokens (exact match 0 for every method), so teacher-forced value accuracy is the needle measure there.

Methods at each KV fraction (``--fractions``): the atlas policy of each rule (``headatlas.kv``) held in the
real :class:`~headatlas.kv.cache.PolicyCache`; random KV heads at the same fraction (same cache); and, in an
environment pinned to kvpress's range (kvpress 0.5.5 needs ``transformers<5.3``; built under ``--kv-env``
on first use: torch 2.13.0 CPU, transformers 5.2.0, kvpress 0.5.5), StreamingLLM, SnapKV, Knorm,
ExpectedAttention at compression ratio ``1 - fraction``, DuoAttentionPress fed our exported pattern
(retrieval rule) and AtlasPress (headkv rule). Also: bytes held by the real cache vs a DynamicCache,
greedy equality with the masked simulation, and decode tokens/s. Default grid: context 1024, 3 depths x 1
needle, fractions 0.5 and 0.25 (short: a shared 2-core CPU); the kvpress worker runs alongside. The last
line printed is one JSON object; a PNG plot is written.

Usage: ``python -m headatlas.bench kv [--context 1024] [--needles 1] [--fractions 0.5,0.25] [--no-kvpress]``
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.metadata
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .kv_protocol import DEPTHS, answer, forward, make_samples, prose_loss, score_rows

PINS = ("torch==2.13.0", "transformers==5.2.0", "kvpress==0.5.5", "matplotlib")
RULES = ("retrieval", "razor", "headkv")
PRESSES = ("streaming_llm", "snapkv", "knorm", "expected_attention", "duo_attention", "atlas_press")


# ---------------------------------------------------------------- main environment: headatlas's own cache


def _policies(headmap: dict[str, Any], fractions: list[float], context: int, seed: int) -> dict[str, Any]:
    from ..kv.policy import plan

    policies: dict[str, Any] = {}
    rng = random.Random(seed)
    model = headmap["model"]
    shuffled = {
        "format": headmap["format"],
        "model": model,
        "heads": [
            {"layer": la, "head": h, "head_type": "retrieval", "score": rng.random()}
            for la in range(model["n_layers"])
            for h in range(model["n_heads"])
        ],
    }
    for f in fractions:
        for rule in RULES:
            policies[f"atlas_{rule}@{f}"] = plan(headmap, rule=rule, budget=f, context=context)
        policies[f"random_heads@{f}"] = plan(shuffled, rule="retrieval", budget=f, context=context)
    return policies


def _filled(policy: Any, config: Any, prefill: Any) -> Any:
    """A PolicyCache holding what the prefill of ``prefill`` (a full DynamicCache) leaves under ``policy``."""
    from ..kv.cache import PolicyCache

    cache = PolicyCache(policy, config)
    layers: list[Any] = cache.layers
    for i, layer in enumerate(prefill.layers):
        layers[i].update(layer.keys, layer.values)
    return cache


def run_main(
    loaded: Any, headmap: dict[str, Any], args: argparse.Namespace, samples: list[dict[str, Any]], prose: dict[str, Any]
) -> dict[str, Any]:
    import torch
    from transformers import DynamicCache

    from ..kv.cache import cache_nbytes, policy_attention

    model, config = loaded.model, loaded.model.config
    policies = _policies(headmap, args.fractions, args.context, args.seed)
    rows: dict[str, list[tuple[bool, float]]] = {"full": [], **{k: [] for k in policies}}
    losses: dict[str, float] = {}
    nbytes: dict[str, float] = {}
    with torch.no_grad(), policy_attention(model):
        for i, sample in enumerate(samples):
            prefill = DynamicCache()
            forward(model, sample["context"], prefill)
            rows["full"].append(answer(model, copy.deepcopy(prefill), sample))
            for name, policy in policies.items():
                cache = _filled(policy, config, prefill)
                if i == 0:  # bytes held right after the prefill, as for the full cache
                    nbytes[name] = cache_nbytes(cache)
                rows[name].append(answer(model, cache, sample))
            if i == 0:
                nbytes["full"] = cache_nbytes(prefill)  # after the prefill, before the question
            print(f"  sample {i + 1}/{len(samples)} (depth {sample['depth']:.0%}) done", flush=True)
        prefill = DynamicCache()
        forward(model, prose["context"], prefill)
        losses["full"] = prose_loss(model, copy.deepcopy(prefill), prose)
        for name, policy in policies.items():
            losses[name] = prose_loss(model, _filled(policy, config, prefill), prose)
        check = _simulation_check(model, policies, samples[0])
        speed = _decode_speed(model, policies, samples[0], args)
    results = {name: score_rows(r, losses[name]) for name, r in rows.items()}
    for name, policy in policies.items():
        nominal = policy.kv_fraction(args.context)
        results[name]["kv_fraction_nominal"] = round(nominal, 4)
        results[name]["kv_fraction_real"] = round(nbytes[name] / nbytes["full"], 4)
    results["full"]["kv_fraction_real"] = 1.0
    return {"results": results, "simulation_equal": check, "decode": speed, "full_cache_bytes": nbytes["full"]}


def _simulation_check(model: Any, policies: dict[str, Any], sample: dict[str, Any]) -> dict[str, bool]:
    """Greedy tokens of the real cache vs the masked simulation, per policy at the middle fraction."""
    from ..kv.cache import PolicyCache

    out = {}
    for name, policy in policies.items():
        if not name.startswith("atlas_retrieval@"):
            continue
        tokens = []
        for masked in (False, True):
            cache = PolicyCache(policy, model.config, masked=masked)
            forward(model, sample["context"], cache)
            logits = forward(model, sample["question"], cache).logits
            seq = []
            for _ in range(8):
                nxt = int(logits[0, -1].argmax())
                seq.append(nxt)
                logits = forward(model, [nxt], cache).logits
            tokens.append(seq)
        out[name] = tokens[0] == tokens[1]
        break  # one prefill pair: the unit tests cover the rest
    return out


def _decode_speed(
    model: Any, policies: dict[str, Any], sample: dict[str, Any], args: argparse.Namespace
) -> dict[str, float]:
    """Decode tokens/s after the same prefill: full DynamicCache vs the real cache (retrieval rule)."""
    from transformers import DynamicCache

    prefill = DynamicCache()
    forward(model, sample["context"], prefill)
    makers: dict[str, Any] = {"full": lambda: copy.deepcopy(prefill)}
    for f in args.fractions:
        makers[f"atlas_retrieval@{f}"] = functools.partial(
            _filled, policies[f"atlas_retrieval@{f}"], model.config, prefill
        )
    best: dict[str, list[float]] = {k: [] for k in makers}
    for _ in range(3):  # interleaved repeats: load from other processes hits all alike
        for name, make in makers.items():
            cache = make()
            nxt = 2
            start = time.perf_counter()
            for _ in range(args.decode_tokens):
                nxt = int(forward(model, [nxt], cache).logits[0, -1].argmax())
            best[name].append(args.decode_tokens / (time.perf_counter() - start))
    return {k: round(statistics.median(v), 2) for k, v in best.items()}


# ---------------------------------------------------------------- kvpress environment (a subprocess)


def kv_env_python(env: Path) -> Path:
    """The pinned kvpress environment's python; builds it (pip, PyPI + local torch wheel) when absent."""
    python = env / "bin" / "python"
    probe = "import kvpress, transformers, matplotlib; assert transformers.__version__.startswith('5.2')"
    if python.is_file() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
        return python
    print(f"building the kvpress environment in {env} ({', '.join(PINS)}) …", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    try:
        deps = [
            r.split(";")[0]
            for r in importlib.metadata.requires("headatlas") or []
            if "extra ==" not in r and not r.startswith(("torch", "transformers"))
        ]
    except importlib.metadata.PackageNotFoundError:
        deps = ["accelerate", "gguf", "numpy", "pandas", "platformdirs", "pyyaml", "rich", "typer", "sentencepiece"]
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS, *deps], check=True)
    return python


def start_kvpress(python: Path, payload: dict[str, Any], work: Path) -> subprocess.Popen[bytes]:
    """Start the kvpress worker (this module's ``--worker`` mode) with this checkout's source on its path."""
    src = Path(__file__).resolve().parents[2]
    (work / "kv-in.json").write_text(json.dumps(payload))
    (work / "kv-out.json").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [str(python), "-m", "headatlas.bench.kv", "--worker", str(work / "kv-in.json"), str(work / "kv-out.json")]
    return subprocess.Popen(cmd, env=env)


def worker(path_in: Path, path_out: Path) -> int:
    """Run in the kvpress environment: every press at every fraction on the same samples."""
    import torch
    import transformers
    from kvpress import (
        DuoAttentionPress,
        ExpectedAttentionPress,
        KnormPress,
        SnapKVPress,
        StreamingLLMPress,
    )
    from transformers import AutoModelForCausalLM, DynamicCache

    from ..kv.duo import export_duo
    from ..kv.policy import KVPolicy
    from ..kv.press import AtlasPress, local_duo_pattern

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    job = json.loads(Path(path_in).read_text())
    torch.manual_seed(job["seed"])
    model = AutoModelForCausalLM.from_pretrained(job["model_dir"], dtype=torch.float32).eval()
    model.set_attn_implementation("sdpa")  # kvpress wraps transformers' own attention functions
    samples, prose = job["samples"], job["prose"]
    results: dict[str, Any] = {}
    work = Path(path_out).parent
    for f in job["fractions"]:
        retrieval = KVPolicy.from_json(job["policies"][f"atlas_retrieval@{f}"])
        headkv = KVPolicy.from_json(job["policies"][f"atlas_headkv@{f}"])
        duo_dir = export_duo(retrieval, work / f"duo-retrieval-{f}")
        presses = {
            "streaming_llm": StreamingLLMPress(compression_ratio=1 - f),
            "snapkv": SnapKVPress(compression_ratio=1 - f),
            "knorm": KnormPress(compression_ratio=1 - f),
            "expected_attention": ExpectedAttentionPress(compression_ratio=1 - f),
            "duo_attention": DuoAttentionPress(head_compression_ratio=1 - retrieval.full_fraction),
            "atlas_press": AtlasPress(headkv),
        }
        for name, press in presses.items():
            if name not in job["presses"]:
                continue
            rows, held = [], []
            with torch.no_grad(), local_duo_pattern(duo_dir, model):
                for sample in samples:
                    cache = DynamicCache()
                    with press(model):
                        forward(model, sample["context"], cache)
                    held.append(cache.get_seq_length())
                    rows.append(answer(model, cache, sample))
                cache = DynamicCache()
                with press(model):
                    forward(model, prose["context"], cache)
                loss = prose_loss(model, cache, prose)
            results[f"{name}@{f}"] = score_rows(rows, loss)
            ratio = getattr(press, "compression_ratio_", None) if name in ("duo_attention", "atlas_press") else 1 - f
            results[f"{name}@{f}"]["kv_fraction_nominal"] = round(1 - float(ratio or 0.0), 4)
            # kvpress's head-wise presses (Duo, Atlas) mask keys: the tensors keep every token
            results[f"{name}@{f}"]["kv_fraction_real"] = round(statistics.mean(held) / len(samples[0]["context"]), 4)
            print(f"  kvpress {name}@{f}: {results[f'{name}@{f}']}", flush=True)
    Path(path_out).write_text(json.dumps({"results": results, "transformers": transformers.__version__}))
    return 0


# ---------------------------------------------------------------- report


def plot(results: dict[str, dict[str, float]], fractions: list[float], title: str, path: Path) -> None:
    """Needle accuracy (teacher-forced) and prose loss vs KV fraction, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted({k.split("@")[0] for k in results if "@" in k})
    xs = [1.0, *sorted(fractions, reverse=True)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    panels = (
        ("needle_forced", "needle: teacher-forced value tokens (higher is better)"),
        ("prose_loss", "prose loss after a compressed context (lower is better)"),
    )
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for m in methods:
            ys = [results["full"][metric], *[results.get(f"{m}@{f}", {}).get(metric, float("nan")) for f in xs[1:]]]
            style = "-o" if m.startswith("atlas") else ("--s" if m == "random_heads" else ":^")
            ax.plot(xs, ys, style, label=m, linewidth=2.2 if m.startswith("atlas") else 1.4)
        ax.set_xlabel("fraction of the KV cache held")
        ax.set_title(label)
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("needle accuracy")
    axes[1].set_ylabel("nats per token")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--worker"]:
        return worker(Path(args_list[1]), Path(args_list[2]))
    parser = argparse.ArgumentParser(prog="python -m headatlas.bench kv", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--scan", type=Path, default=None, help="scan directory (default: atlas/<model>)")
    parser.add_argument("--context", type=int, default=1024, help="tokens of context (needle + filler)")
    parser.add_argument("--needles", type=int, default=1, help="needles per depth (depths 10/50/90 %%)")
    parser.add_argument("--fractions", default="0.5,0.25", help="KV fractions (comma-separated)")
    parser.add_argument("--decode-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-kvpress", action="store_true", help="skip the kvpress environment")
    parser.add_argument("--kvpress-fractions", default=None, help="fractions for kvpress (default: --fractions)")
    parser.add_argument(
        "--presses", default="streaming_llm,snapkv,knorm,expected_attention,duo_attention", help=f"of {PRESSES}"
    )
    parser.add_argument("--kv-env", type=Path, default=Path(".venv-kv"), help="pinned kvpress environment")
    parser.add_argument("--out", type=Path, default=Path("bench-out/kv"), help="plot and JSON go here")
    args = parser.parse_args(args_list)
    try:
        args.fractions = [float(x) for x in args.fractions.split(",")]
    except ValueError:
        print(f"error: --fractions must be comma-separated numbers, got {args.fractions!r}", file=sys.stderr)
        return 2
    try:
        args.kvpress_fractions = (
            [float(x) for x in args.kvpress_fractions.split(",")] if args.kvpress_fractions else args.fractions
        )
    except ValueError:
        print(f"error: --kvpress-fractions must be numbers, got {args.kvpress_fractions!r}", file=sys.stderr)
        return 2
    if any(not 0 < f < 1 for f in args.fractions + args.kvpress_fractions):
        print(f"error: fractions must lie in (0, 1), got {args.fractions}", file=sys.stderr)
        return 2
    from ..errors import HeadatlasError
    from ..kv.policy import read_headmap

    scan = args.scan or Path(__file__).resolve().parents[3] / "atlas" / args.model
    try:
        headmap = read_headmap(scan)
    except HeadatlasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import torch

    from ..models.loader import load_model

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    loaded = load_model(args.model)
    facts = loaded.facts
    want = {k: headmap["model"][k] for k in ("n_layers", "n_heads", "n_kv_heads")}
    got = {"n_layers": facts.n_layers, "n_heads": facts.n_heads, "n_kv_heads": facts.n_kv_heads}
    if want != got:
        print(f"error: model {args.model} {got} does not match the scan {scan} {want}", file=sys.stderr)
        return 2
    print(f"model {facts.name} loaded in {time.perf_counter() - start:.0f} s; scan {scan}", flush=True)
    samples, prose = make_samples(loaded.tokenizer, args.context, args.needles, args.seed)
    print(f"{len(samples)} needle samples of {args.context} tokens, fractions {args.fractions}", flush=True)
    worker_proc = None
    args.out.mkdir(parents=True, exist_ok=True)
    t1 = time.perf_counter()
    if not args.no_kvpress:  # the kvpress side runs in its own process, alongside ours
        python = kv_env_python(args.kv_env.resolve())
        policies = _policies(headmap, sorted(set(args.fractions + args.kvpress_fractions)), args.context, args.seed)
        payload = {
            "seed": args.seed,
            "model_dir": loaded.model.config.name_or_path,
            "fractions": args.kvpress_fractions,
            "presses": args.presses.split(","),
            "samples": samples,
            "prose": prose,
            "policies": {k: v.to_json() for k, v in policies.items()},
        }
        worker_proc = start_kvpress(python, payload, args.out.resolve())
    t0 = time.perf_counter()
    main_part = run_main(loaded, headmap, args, samples, prose)
    main_s = time.perf_counter() - t0
    results = main_part["results"]
    kvpress_info: dict[str, Any] = {"skipped": True}
    if worker_proc is not None:
        if worker_proc.wait() != 0:
            print("error: the kvpress worker failed (see above)", file=sys.stderr)
            return 1
        out = json.loads((args.out.resolve() / "kv-out.json").read_text())
        results.update(out["results"])
        kvpress_info = {"transformers": out["transformers"], "seconds": round(time.perf_counter() - t1, 1)}
    _report(results, main_part, args, facts.name, kvpress_info, main_s)
    return 0


def _report(
    results: dict[str, Any],
    main_part: dict[str, Any],
    args: argparse.Namespace,
    name: str,
    kvpress_info: dict[str, Any],
    main_s: float,
) -> None:
    full = results["full"]
    print(f"\n{'method':<30} {'exact':>6} {'forced':>7} {'loss':>6} {'kv real':>8} {'kv nominal':>10}")
    for key in ["full", *sorted(k for k in results if k != "full")]:
        r = results[key]
        print(
            f"{key:<30} {r['needle_exact']:>6.2f} {r['needle_forced']:>7.3f} {r['prose_loss']:>6.3f} "
            f"{r.get('kv_fraction_real', float('nan')):>8.3f} {r.get('kv_fraction_nominal', float('nan')):>10.3f}"
        )
    summary: dict[str, Any] = {}
    for f in args.fractions:
        atlas = {rule: results[f"atlas_{rule}@{f}"]["needle_forced"] for rule in RULES}
        loss = {rule: results[f"atlas_{rule}@{f}"]["prose_loss"] for rule in RULES}
        best = max(atlas, key=lambda r: (atlas[r], -loss[r]))  # ties on the needle: the lower prose loss
        row = {
            "best_rule": best,
            "best_forced_vs_full": round(atlas[best] / full["needle_forced"], 3) if full["needle_forced"] else None,
            "points_over_random": round(100 * (atlas[best] - results[f"random_heads@{f}"]["needle_forced"]), 1),
        }
        if f"streaming_llm@{f}" in results:
            row["points_over_streaming_llm"] = round(
                100 * (atlas[best] - results[f"streaming_llm@{f}"]["needle_forced"]), 1
            )
        summary[str(f)] = row
    decode = main_part["decode"]
    print(f"\ndecode tokens/s (median of 3, {args.decode_tokens} tokens): {decode}")
    print(f"real cache greedy == masked simulation: {main_part['simulation_equal']}")
    for f, row in summary.items():
        print(f"at {f}: {row}")
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / "kv.png"
    title = f"{name}: needle at {args.context} tokens, {len(DEPTHS) * args.needles} samples"
    try:
        plot(results, args.fractions, title, png)
    except ImportError:
        python = args.kv_env.resolve() / "bin" / "python"
        data = args.out / "kv-results.json"
        data.write_text(json.dumps(results))
        src = Path(__file__).resolve().parents[2]
        code = (
            "import json,sys; from pathlib import Path; from headatlas.bench.kv import plot; "
            f"plot(json.loads(Path({str(data)!r}).read_text()), {args.fractions!r}, {title!r}, Path({str(png)!r}))"
        )
        if python.is_file():
            subprocess.run([str(python), "-c", code], check=False, env={**os.environ, "PYTHONPATH": str(src)})
    print(f"plot: {png}" if png.is_file() else "plot: skipped (no matplotlib)")
    record = {
        "bench": "kv",
        "model": name,
        "context": args.context,
        "samples": len(DEPTHS) * args.needles,
        "fractions": args.fractions,
        "results": results,
        "summary": summary,
        "decode_tokens_per_s": decode,
        "simulation_equal": main_part["simulation_equal"],
        "full_cache_bytes": main_part["full_cache_bytes"],
        "kvpress": kvpress_info,
        "main_seconds": round(main_s, 1),
        "plot": str(png),
    }
    (args.out / "kv.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record))


if __name__ == "__main__":
    sys.exit(main())
