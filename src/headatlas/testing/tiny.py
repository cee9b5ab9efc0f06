"""Tiny deterministic transformers models from random configs (full, GQA and MQA attention; Gemma 3, Qwen3)."""

from __future__ import annotations

from typing import Any

import torch

from ..lens import install
from ..models.facts import facts_from_config
from ..models.loader import LoadedModel

KV_HEADS = {"full": 4, "gqa": 2, "mqa": 1}


class ByteTokenizer:
    """A minimal tokenizer over ids 0..vocab-1 (0 = BOS, 1 = EOS), enough for the probes."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.bos_token_id = 0
        self.eos_token_id = 1
        self.all_special_ids = [0, 1]

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [2 + (b % (self.vocab_size - 2)) for b in text.encode("utf-8")]


def tiny_llama(kind: str = "gqa", *, seed: int = 0, layers: int = 2, vocab: int = 300) -> LoadedModel:
    """A random Llama with 4 query heads and ``KV_HEADS[kind]`` KV heads, lens installed."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=KV_HEADS[kind],
        max_position_embeddings=16384,
    )
    return _wrap(LlamaForCausalLM(config).eval(), vocab, f"tiny-llama-{kind}")


def tiny_gemma3(*, seed: int = 0, layers: int = 4, window: int = 8, vocab: int = 300) -> LoadedModel:
    """A random Gemma 3 text model with sliding-window layers (window ``window``) and one KV head."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=window,
        layer_types=["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(layers)],
        max_position_embeddings=16384,
    )
    return _wrap(Gemma3ForCausalLM(config).eval(), vocab, "tiny-gemma3")


def tiny_qwen3(*, seed: int = 0, layers: int = 2, vocab: int = 300) -> LoadedModel:
    """A random Qwen3 (per-head query/key norms) with 4 query heads and 2 KV heads, lens installed."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=16384,
    )
    return _wrap(Qwen3ForCausalLM(config).eval(), vocab, "tiny-qwen3")


def _wrap(model: Any, vocab: int, name: str) -> LoadedModel:
    install(model)
    facts = facts_from_config(model.config, name=name, source="test", sha256=None)
    return LoadedModel(model=model, tokenizer=ByteTokenizer(vocab), facts=facts)
