"""Probe sets: seeded, deterministic inputs that head-type scores read attention from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_module
from ..errors import InvalidSettingError

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_module("torch")


@dataclass
class ProbeBatch:
    """Token ids of one forward pass plus what the scores need to read them.

    ``rows`` ([B, R], ``-1`` = padding) are the query positions whose attention the lens computes.
    Sequences are right-padded, so position 0 is always BOS. ``extras`` holds probe-specific tensors
    (e.g. the needle span); ``cache`` memoises derived tensors shared by several scores.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    rows: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    cache: dict[str, torch.Tensor] = field(default_factory=dict)

    def memo(self, key: str, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def to(self, device: torch.device | str) -> ProbeBatch:
        return ProbeBatch(
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            rows=self.rows.to(device),
            extras={k: v.to(device) for k, v in self.extras.items()},
        )


@dataclass(frozen=True)
class ProbeSettings:
    """Sizes of the probe sets. Validated on creation; the defaults are what ``headatlas scan`` uses."""

    repeat_len: int = 50  # |x| in [BOS, x, x]
    n_repeat: int = 16  # sequences of repeated random tokens
    text_len: int = 128  # tokens per natural-text window
    n_text: int = 16  # natural-text windows
    needle_contexts: tuple[int, ...] = (1024, 2048, 4096, 8192)
    needle_per_context: int = 2
    batch_size: int = 8
    # the default contexts adapt to the model (those that exceed its window are left out, and the scan says so);
    # contexts a user asked for explicitly (``--needle-contexts``) must fit, or the scan stops with an error
    fit_to_window: bool = True

    def __post_init__(self) -> None:
        for name in ("repeat_len", "n_repeat", "text_len", "n_text", "needle_per_context", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidSettingError(f"{name} must be a positive integer, got {value!r}")
        if self.repeat_len < 4:
            raise InvalidSettingError(f"repeat_len must be at least 4, got {self.repeat_len}")
        if self.text_len < 16:
            raise InvalidSettingError(f"text_len must be at least 16, got {self.text_len}")
        if not self.needle_contexts or any(c < 256 for c in self.needle_contexts):
            raise InvalidSettingError(
                f"needle_contexts must be token counts of at least 256, got {self.needle_contexts!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "repeat_len": self.repeat_len,
            "n_repeat": self.n_repeat,
            "text_len": self.text_len,
            "n_text": self.n_text,
            "needle_contexts": list(self.needle_contexts),
            "needle_per_context": self.needle_per_context,
            "batch_size": self.batch_size,
        }


def bos_id(tokenizer: Any) -> int:
    """The token every probe starts with: BOS, else EOS (models trained with EOS as separator)."""
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise InvalidSettingError("tokenizer has neither a BOS nor an EOS token to start probes with")


def token_strings(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token as the text it stands for (``decode`` of the single id), else its vocabulary entry."""
    out = []
    for i in ids:
        text: str | None = None
        if hasattr(tokenizer, "decode"):
            try:
                text = tokenizer.decode([i])
            except Exception:  # tokenizers differ in what they accept; fall back below
                text = None
        if text is None and hasattr(tokenizer, "convert_ids_to_tokens"):
            text = str(tokenizer.convert_ids_to_tokens(i))
        out.append(text if text is not None else f"<{i}>")
    return out


def all_rows(batch: int, length: int) -> torch.Tensor:
    return torch.arange(length).expand(batch, length).clone()


def chunked(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def generator(seed: int, salt: int) -> torch.Generator:
    """A torch generator per probe, so adding one probe never shifts another's samples."""
    return torch.Generator().manual_seed(seed * 1_000_003 + salt)
