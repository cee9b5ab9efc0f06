"""``headatlas ablate`` and ``headatlas patch``, registered on the main app by :func:`register`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..errors import InvalidSettingError
from ..models.zoo import DEFAULT_MODEL

if TYPE_CHECKING:
    from ..headmap import HeadMap

out = Console()
err = Console(stderr=True)

ModelArg = Annotated[str, typer.Argument(help="Zoo alias, hub id, directory or .gguf.")]
FORMATS = ("table", "json")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidSettingError(f"unknown format {fmt!r}; valid formats are {', '.join(FORMATS)}")


def _load(model: str, device: str) -> Any:
    from ..models.loader import load_model

    with err.status(f"loading {model} …"):
        return load_model(model, device=device)


def ablate_command(
    model: ModelArg = DEFAULT_MODEL,
    heads: Annotated[str, typer.Option("--heads", help="Comma-separated heads, e.g. L18H6,L17H3.")] = "",
    metric: Annotated[str, typer.Option("--metric", help="Metric name (see headatlas.causal.METRICS).")] = (
        "induction_loss"
    ),
    method: Annotated[str, typer.Option("--method", help="zero, mean or resample.")] = "mean",
    prompt: Annotated[str | None, typer.Option("--prompt", help="Prompt for prompt metrics (logit_diff …).")] = None,
    answer: Annotated[str | None, typer.Option("--answer", help="Answer token, e.g. ' Mary'.")] = None,
    wrong: Annotated[str | None, typer.Option("--wrong", help="Wrong-answer token, e.g. ' John'.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the probe set.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda …")] = "cpu",
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """What breaks when HEADS go: the metric before and after ablating them together."""
    from .api import ablate
    from .interventions import check_method  # here, not at the top: `headatlas --help` needs no torch
    from .metrics import get_metric

    m = get_metric(metric)  # bad input fails before the slow load
    check_method(method)
    _check_format(fmt)
    if not heads.strip():
        raise InvalidSettingError("empty head list; pass --heads L<layer>H<head>,… e.g. --heads L18H6,L17H3")
    if m.probe is None and prompt is None:
        raise InvalidSettingError(f"metric {m.name} needs --prompt (and --{' --'.join(m.needs)})")
    if seed < 0:
        raise InvalidSettingError(f"seed must be a non-negative integer, got {seed}")
    loaded = _load(model, device)
    with err.status("ablating …"):
        result = ablate(loaded, heads, m, method, prompt=prompt, answer=answer, wrong=wrong, seed=seed)
    if fmt == "json":
        out.print_json(json.dumps(result.to_dict()))
        return
    table = Table(title=f"{method} ablation of {', '.join(result.heads)} — {loaded.facts.name}")
    for column in ("metric", "clean", "ablated", "effect (damage)"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    table.add_row(m.name, f"{result.clean:.4f}", f"{result.ablated:.4f}", f"{result.effect:+.4f}")
    out.print(table)


def patch_command(
    model: ModelArg = DEFAULT_MODEL,
    clean: Annotated[str, typer.Option("--clean", help="Clean prompt.")] = "",
    corrupt: Annotated[str, typer.Option("--corrupt", help="Corrupted prompt (same token length).")] = "",
    metric: Annotated[str, typer.Option("--metric", help="logit_diff or answer_logprob.")] = "logit_diff",
    answer: Annotated[str | None, typer.Option("--answer", help="Answer token, e.g. ' Mary'.")] = None,
    wrong: Annotated[str | None, typer.Option("--wrong", help="Wrong-answer token, e.g. ' John'.")] = None,
    heads: Annotated[str | None, typer.Option("--heads", help="Heads to patch (default: every head).")] = None,
    direction: Annotated[str, typer.Option(help="clean_to_corrupt or corrupt_to_clean.")] = "clean_to_corrupt",
    top: Annotated[int, typer.Option("--top", help="Heads to rank by attribution and patch one by one.")] = 10,
    attribution: Annotated[
        str, typer.Option("--attribution", help="atp (attribution patching), atp* or atp*-qk (AtP*).")
    ] = "atp",
    device: Annotated[str, typer.Option(help="cpu, cuda …")] = "cpu",
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Patch head outputs between a clean and a corrupted prompt; rank heads by attribution patching."""
    from .api import DIRECTIONS, attribute, patch
    from .attribution import check_attribution_method
    from .metrics import get_metric

    m = get_metric(metric)
    check_attribution_method(attribution)
    _check_format(fmt)
    if not clean or not corrupt:
        raise InvalidSettingError("give both --clean and --corrupt prompts")
    if m.probe is not None:
        raise InvalidSettingError(f"metric {m.name} reads its own probe; patch takes prompt metrics (logit_diff …)")
    missing = [n for n, v in (("answer", answer), ("wrong", wrong)) if n in m.needs and v is None]
    if missing:
        raise InvalidSettingError(f"metric {m.name} needs --{' and --'.join(missing)}")
    if direction not in DIRECTIONS:
        raise InvalidSettingError(f"unknown direction {direction!r}; valid directions are {', '.join(DIRECTIONS)}")
    if top < 0:
        raise InvalidSettingError(f"--top must be non-negative, got {top}")
    loaded = _load(model, device)
    with err.status("patching …"):
        whole = patch(loaded, clean, corrupt, heads, m, answer=answer, wrong=wrong, direction=direction)
        scores = attribute(loaded, clean, corrupt, m, answer=answer, wrong=wrong, method=attribution)
        singles = [
            (name, value, patch(loaded, clean, corrupt, [name], m, answer=answer, wrong=wrong, direction=direction))
            for name, value in scores.top(top)
        ]
    record = {
        "patch": whole.to_dict(),
        "attribution": scores.to_dict(top),
        "single_heads": [{"head": n, "attribution": round(v, 6), **p.to_dict()} for n, v, p in singles],
    }
    if fmt == "json":
        out.print_json(json.dumps(record))
        return
    label = "all heads" if heads is None else ", ".join(whole.heads)
    recovered = "n/a" if whole.recovered is None else f"{whole.recovered:.3f}"
    out.print(
        f"{m.name}: clean {whole.clean:.4f}, corrupt {whole.corrupt:.4f}; patching {label} ({direction})"
        f" gives {whole.patched:.4f} (recovered {recovered})"
    )
    table = Table(title=f"Heads by |{attribution}| (estimated change of the clean run with the head's corrupt output)")
    for column in ("head", "attribution", f"patched ({direction})", "recovered"):
        table.add_column(column, justify="right")
    for name, value, single in singles:
        rec = "n/a" if single.recovered is None else f"{single.recovered:.3f}"
        table.add_row(name, f"{value:+.4f}", f"{single.patched:.4f}", rec)
    out.print(table)


def print_verification(console: Console, headmap: HeadMap) -> None:
    """One line per head type: members, damage vs random sets, p-value, verdict."""
    table = Table(title=f"Causal verification — {headmap.facts.name}")
    for column in ("head type", "metric", "members", "effect", "random mean ± sd", "p", "verified", "rho attr/exact"):
        table.add_column(column)
    for type_id, v in headmap.verification.items():
        rho = (v.get("per_head") or {}).get("spearman_attribution_vs_exact")
        verdict = {True: "yes", False: "no", None: v.get("status", "")}[v.get("verified")]
        effect = v.get("effect")
        table.add_row(
            type_id,
            str(v.get("metric", "")),
            str(len(v.get("members", []))),
            "" if effect is None else f"{effect:+.4f}",
            "" if v.get("random_mean") is None else f"{v['random_mean']:+.4f} ± {v['random_std']:.4f}",
            "" if v.get("p_value") is None else f"{v['p_value']:.3f}",
            verdict,
            "" if rho is None else f"{rho:.2f}",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``ablate`` and ``patch`` to the main CLI."""
    app.command("ablate")(ablate_command)
    app.command("patch")(patch_command)
