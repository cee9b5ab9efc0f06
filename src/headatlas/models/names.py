"""Model names researchers type, resolved to the hub ids that checkpoints (and papers' reported heads) go by.

The head literature names GPT-2 and Pythia the way TransformerLens does (``gpt2-small``, ``pythia-70m``) or by
legacy hub ids without an organisation (``gpt2``, ``distilgpt2``), which the hub now serves under
``openai-community/`` and ``distilbert/``. A scan records the resolved id, so two spellings of one checkpoint
meet in the store.
"""

from __future__ import annotations

import os

_GPT2 = {
    "gpt2": "openai-community/gpt2",
    "gpt2-small": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
    "distilgpt2": "distilbert/distilgpt2",
}
_PYTHIA_SIZES = ("14m", "31m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")
_PYTHIA = {
    f"pythia-{size}{suffix}": f"EleutherAI/pythia-{size}{suffix}"
    for size in _PYTHIA_SIZES
    for suffix in ("", "-deduped")
}

KNOWN_NAMES: dict[str, str] = {**_GPT2, **_PYTHIA}
"""Short names (lower case) -> hub ids."""


def hub_id_for(name: str) -> str | None:
    """The hub id a short name stands for (case-insensitive), or None."""
    return KNOWN_NAMES.get(name.lower())


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` set to a true value: never try the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


OFFLINE_HINT = "use a local directory, a .gguf file or a zoo alias"


__all__ = ["KNOWN_NAMES", "OFFLINE_HINT", "hub_id_for", "hub_offline"]
