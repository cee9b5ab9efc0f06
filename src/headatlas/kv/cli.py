"""``headatlas kv …``: plan a head-aware KV-cache policy from a stored scan. Imports no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import InvalidSettingError
from .duo import export_duo
from .policy import DEFAULT_RULE, RULES, plan_from_scan

kv_app = typer.Typer(help="Head-aware KV cache: policies planned from a scan.", no_args_is_help=True)


@kv_app.command("plan")
def plan_command(
    scan_dir: Annotated[Path, typer.Argument(help="A scan's output directory (holds headmap.json).")],
    budget: Annotated[float, typer.Option(help="Fraction of the full KV cache to hold, in (0, 1].")] = 0.5,
    rule: Annotated[str, typer.Option(help=f"{', '.join(RULES)}.")] = DEFAULT_RULE,
    context: Annotated[int, typer.Option(help="Context length (tokens) the budget refers to.")] = 2048,
    sink: Annotated[int | None, typer.Option(help="Sink tokens of a streaming head (default: context/64).")] = None,
    recent: Annotated[
        int | None, typer.Option(help="Recent tokens of a streaming head (default: 3 x context/64).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Policy file to write.")] = Path("policy.json"),
    duo_dir: Annotated[
        Path | None, typer.Option("--duo-dir", help="Also write DuoAttention's pattern format here.")
    ] = None,
    scope: Annotated[
        str,
        typer.Option(
            help="What the budget is a fraction of: cache (every layer, sliding-window layers at their window) "
            "or global (the global layers only; the first version)."
        ),
    ] = "cache",
    fill: Annotated[
        str,
        typer.Option(
            help="retrieval/razor: remainder (the head after the full ones gets what is left) or whole (whole heads)."
        ),
    ] = "remainder",
    compensation: Annotated[
        bool,
        typer.Option(
            "--compensation",
            help="razor rule: streaming heads also keep RazorAttention's compensation token (mean of what they drop).",
        ),
    ] = False,
) -> None:
    """Plan a per-(layer, KV head) policy: full cache or sink + recent window."""
    if out.is_dir():
        raise InvalidSettingError(f"--out {out} is a directory; give a file name")
    policy = plan_from_scan(
        scan_dir,
        rule=rule,
        budget=budget,
        context=context,
        sink=sink,
        recent=recent,
        compensation=compensation,
        scope=scope,
        fill=fill,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    policy.save(out)
    if duo_dir is not None:
        export_duo(policy, duo_dir)
    n_full = sum(h.full for h in policy.planned)
    local = f", local layers keep {policy.local_window}" if policy.local_window else ""
    Console().print(
        f"{policy.model.get('name')}: rule {rule}, {n_full}/{len(policy.planned)} KV heads full, streaming heads keep "
        f"{policy.sink} sink + {policy.recent} recent{' + a compensation token' if compensation else ''}{local}; "
        f"holds {policy.kv_fraction():.1%} of the cache at {context} "
        f"tokens -> {out}" + (f" (DuoAttention pattern: {duo_dir})" if duo_dir else "")
    )
