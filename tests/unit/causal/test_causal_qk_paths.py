"""Direct-path query/key changes (AtP*'s QK fix) against finite differences of the real model."""

from __future__ import annotations

import pytest
import torch

from headatlas.causal.qk_paths import qk_changes, read_anatomy
from headatlas.errors import ArchitectureUnavailable
from headatlas.lens import session
from headatlas.testing.tiny import tiny_gemma3, tiny_llama, tiny_qwen3


def _silence_first_mlp(loaded):
    """Layer 0's MLP writes nothing, so the residual path is the only way from layer 0 to layer 1."""
    with torch.no_grad():
        loaded.model.model.layers[0].mlp.down_proj.weight.zero_()


def _queries_keys(loaded, ids, head=None, push=None):
    """Layer 1's query/key (and the residual stream entering it) with ``push`` added to layer 0 head ``head``."""
    got = {}

    def hook(layer, out):
        if layer == 0 and push is not None:
            out = out.clone()
            out[:, :, head] += push
            return out
        return None

    def keep(record):
        got[record.layer] = (record.query, record.key)

    with torch.no_grad(), session(hooks=[hook], patterns=[keep]):
        out = loaded.model(input_ids=ids, output_hidden_states=True)
    return got[1], out.hidden_states[1]


@pytest.mark.parametrize("make", [lambda: tiny_llama("gqa"), lambda: tiny_llama("mqa"), lambda: tiny_qwen3()])
def test_first_order_changes_match_central_differences(make):
    loaded = make()
    _silence_first_mlp(loaded)
    if loaded.facts.architecture == "qwen3":  # non-trivial per-head norms
        with torch.no_grad():
            for attn in (block.self_attn for block in loaded.model.model.layers):
                attn.q_norm.weight.copy_(torch.rand(16) + 0.5)
                attn.k_norm.weight.copy_(torch.rand(16) + 0.5)
    f = loaded.facts
    ids = torch.randint(2, 300, (2, 10))
    (query, key), resid = _queries_keys(loaded, ids)
    torch.manual_seed(1)
    direction = torch.randn(2, 10, f.n_heads, f.head_dim)
    anat = read_anatomy(loaded)
    changes = qk_changes(anat, 1, resid, [direction], list(range(f.n_heads)), list(range(f.n_kv_heads)), (query, key))
    assert changes.query.shape == (f.n_heads, 2, f.n_heads, 10, f.head_dim)
    assert changes.key.shape == (f.n_heads, 2, f.n_kv_heads, 10, f.head_dim)
    eps = 4e-3
    for head in range(f.n_heads):
        (q_up, k_up), _ = _queries_keys(loaded, ids, head, eps * direction[:, :, head])
        (q_down, k_down), _ = _queries_keys(loaded, ids, head, -eps * direction[:, :, head])
        fd_q, fd_k = (q_up - q_down) / (2 * eps), (k_up - k_down) / (2 * eps)
        assert float(fd_k.abs().max()) > 1e-2  # the push does move the keys
        torch.testing.assert_close(changes.query[head], fd_q, atol=3e-3 * float(fd_q.abs().max()), rtol=0)
        torch.testing.assert_close(changes.key[head], fd_k, atol=3e-3 * float(fd_k.abs().max()), rtol=0)


def test_refuses_architectures_it_cannot_read():
    with pytest.raises(ArchitectureUnavailable, match="gemma3_text"):
        read_anatomy(tiny_gemma3())


def test_refuses_when_its_reconstruction_differs_from_the_lens():
    loaded = tiny_llama("gqa")
    (query, key), resid = _queries_keys(loaded, torch.randint(2, 300, (1, 6)))
    f = loaded.facts
    deltas = [torch.zeros(1, 6, f.n_heads, f.head_dim)]
    with pytest.raises(ArchitectureUnavailable, match="cannot rebuild"):
        qk_changes(read_anatomy(loaded), 1, resid * 1.5 + 1, deltas, [0], [0], (query, key))
