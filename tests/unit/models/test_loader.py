from __future__ import annotations

import pytest
import torch

from headatlas.errors import CorruptModelError, UnknownModelError, UnsupportedArchitectureError
from headatlas.models.loader import check_supported, load_model, resolve_source
from headatlas.models.zoo import ZOO


def test_sources_are_told_apart(tmp_path):
    assert resolve_source("smollm2-135m") == "zoo"
    assert resolve_source("HuggingFaceTB/SmolLM2-135M") == "hub"
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    with pytest.raises(UnknownModelError, match=r"without config\.json"):
        resolve_source(str(checkpoint))
    (checkpoint / "config.json").write_text("{}")
    assert resolve_source(str(checkpoint)) == "local"
    with pytest.raises(UnknownModelError, match=r"zoo alias") as info:
        resolve_source("smollm2")
    assert all(alias in str(info.value) for alias in ZOO)


def test_not_a_gguf_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(CorruptModelError, match="cannot read GGUF file"):
        load_model(str(bad))


def test_architecture_without_attention_interface_is_refused():
    from transformers import BloomConfig, BloomForCausalLM

    model = BloomForCausalLM(BloomConfig(vocab_size=50, hidden_size=32, n_layer=1, n_head=2))
    with pytest.raises(UnsupportedArchitectureError, match=r"'bloom'.*supported"):
        check_supported(model)


def test_cuda_request_without_cuda_is_refused():
    if torch.cuda.is_available():
        pytest.fail("this test expects a CPU-only machine; run the CUDA checks on the device instead")
    with pytest.raises(Exception, match="CUDA is not available"):
        load_model("smollm2-135m", device="cuda")
