"""This process's memory as Linux reports it, for the benches' peak-RSS figures."""

from __future__ import annotations


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` figure in KB: ``VmRSS`` (resident now) or ``VmHWM`` (peak resident)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")
