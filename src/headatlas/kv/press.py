"""kvpress integration: :class:`AtlasPress` (a press built from a policy) and DuoAttentionPress fed our pattern.

kvpress (PyPI ``kvpress``) 0.5.5 declares ``transformers<5.3`` and its presses fail on 5.24
(``KeyError: 'past_key_values'``: the attention layer's keyword is ``cache`` there), so this module is used
from an environment pinned to kvpress's range (``python -m headatlas.bench kv`` builds one). Importing it
needs kvpress; nothing else in headatlas does.

Models must run kvpress with a transformers attention function (``sdpa``): kvpress wraps every registered
attention function with ``wrapper(module, q, k, v, mask, dropout, **kw)``, passing ``dropout`` positionally,
which lands in the lens's ``scaling`` argument.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from kvpress import BasePress
from kvpress.presses import duo_attention_press

from .policy import KVPolicy


@dataclass
class AtlasPress(BasePress):
    """Keep the full prefill cache on the policy's full heads, sink + recent on its streaming heads.

    Like kvpress's ``DuoAttentionPress`` it masks the dropped keys of each streaming head (kvpress's
    ``masked_key_indices``, honoured by its attention patch) rather than shrinking the tensor, because
    heads of one layer hold different lengths; :class:`headatlas.kv.cache.PolicyCache` is the cache that
    actually holds less. Windows may differ per head (the ``headkv`` rule).
    """

    policy: KVPolicy | str | Path | None = None
    compression_ratio_: float | None = field(init=False, default=None)
    _dropped: dict[int, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.policy, (str, Path)):
            self.policy = KVPolicy.load(Path(self.policy))
        if not isinstance(self.policy, KVPolicy):
            raise ValueError("AtlasPress needs a KVPolicy or the path of a policy.json")
        if self.policy.compensation:
            raise ValueError(
                "AtlasPress masks keys and cannot add RazorAttention's compensation token; "
                "use PolicyCache for that policy"
            )

    def post_init_from_model(self, model: Any) -> None:
        assert isinstance(self.policy, KVPolicy)
        self.policy.check_model(model.config)
        self._dropped = {}

    @property
    def compression_ratio(self) -> float:
        """Fraction of the prefill's keys masked, over the layers compressed so far."""
        if self.compression_ratio_ is None:
            raise ValueError("run a forward pass under the press first")
        return self.compression_ratio_

    @compression_ratio.setter
    def compression_ratio(self, value: float) -> None:
        raise AttributeError("AtlasPress's compression ratio follows from its policy and the context length")

    def compress(
        self,
        module: Any,
        hidden_states: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        attentions: torch.Tensor | None,
        kwargs: dict[str, Any],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(self.policy, KVPolicy)
        k_len = keys.shape[2]
        masked = torch.zeros(keys.shape[:3], dtype=torch.bool, device=keys.device)
        for head in self.policy.layer(module.layer_idx):
            if head.recent is not None and k_len > head.sink + head.recent:
                masked[:, head.kv_head, head.sink : k_len - head.recent] = True
        module.masked_key_indices = torch.nonzero(masked, as_tuple=True) if bool(masked.any()) else None
        self._dropped[module.layer_idx] = int(masked[0].sum())
        total = keys.shape[1] * k_len * len(self._dropped)
        self.compression_ratio_ = sum(self._dropped.values()) / total
        return keys, values


class _LocalPatterns:
    """Stands in for ``requests`` inside kvpress's DuoAttention module: serves files from a directory."""

    def __init__(self, pattern_dir: Path) -> None:
        self.dir = Path(pattern_dir)

    def get(self, url: str, *args: Any, **kwargs: Any) -> Any:
        path = self.dir / url.rstrip("/").rsplit("/", 1)[-1]
        text = path.read_text()

        class _Response:
            def __init__(self) -> None:
                self.text = text
                self.status_code = 200

            def json(self) -> Any:
                return json.loads(text)

        return _Response()


@contextlib.contextmanager
def local_duo_pattern(pattern_dir: Path, model: Any) -> Iterator[None]:
    """Let kvpress's unchanged ``DuoAttentionPress`` load the pattern in ``pattern_dir`` for ``model``.

    kvpress fetches ``config.json`` and ``full_attention_heads.tsv`` of a known checkpoint from
    DuoAttention's GitHub; here the checkpoint is registered under the model's ``name_or_path`` and the two
    files are served from disk, so kvpress's own parsing (``np.loadtxt``, clip to [0, 1]) reads our export.
    """
    name = model.config.name_or_path
    before_patterns = dict(duo_attention_press.PATTERNS_DICT)
    before_requests = duo_attention_press.requests
    duo_attention_press.PATTERNS_DICT[name] = "headatlas"
    duo_attention_press.requests = _LocalPatterns(pattern_dir)
    duo_attention_press.cache.clear()  # kvpress memoises patterns by name_or_path
    try:
        yield
    finally:
        duo_attention_press.PATTERNS_DICT.clear()
        duo_attention_press.PATTERNS_DICT.update(before_patterns)
        duo_attention_press.requests = before_requests
        duo_attention_press.cache.clear()
