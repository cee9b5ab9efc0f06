"""Model facts every report needs: depth, heads, KV heads, attention layout."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelFacts:
    name: str  # what the user asked for (alias, hub id, path)
    source: str  # "zoo", "hub", "local", "gguf"
    architecture: str  # transformers model_type, e.g. "llama", "gemma3_text"
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_model: int
    vocab_size: int
    sliding_window: int | None  # window of the sliding layers, None when every layer is global
    sliding_layers: tuple[int, ...]  # indices of sliding-window layers
    sha256: str | None  # checksum of the weights file when known
    max_positions: int | None = None  # context window (max_position_embeddings)

    @property
    def n_head_total(self) -> int:
        return self.n_layers * self.n_heads

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["sliding_layers"] = list(self.sliding_layers)
        return out


def facts_from_config(config: Any, *, name: str, source: str, sha256: str | None) -> ModelFacts:
    """Read the facts from a transformers text config (nested ``text_config`` is followed)."""
    text = getattr(config, "text_config", None) or config
    n_heads = int(text.num_attention_heads)
    n_layers = int(text.num_hidden_layers)
    layer_types = list(getattr(text, "layer_types", None) or [])
    if not layer_types and getattr(text, "sliding_window", None):  # Mistral, Mixtral, Phi-3, Starcoder2: every layer
        layer_types = ["sliding_attention"] * n_layers
    sliding = tuple(i for i, kind in enumerate(layer_types) if kind == "sliding_attention")
    return ModelFacts(
        name=name,
        source=source,
        architecture=str(text.model_type),
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=int(getattr(text, "num_key_value_heads", None) or n_heads),
        head_dim=int(getattr(text, "head_dim", None) or text.hidden_size // n_heads),
        d_model=int(text.hidden_size),
        vocab_size=int(text.vocab_size),
        sliding_window=int(text.sliding_window) if sliding and getattr(text, "sliding_window", None) else None,
        sliding_layers=sliding,
        sha256=sha256,
        max_positions=int(text.max_position_embeddings) if getattr(text, "max_position_embeddings", None) else None,
    )
