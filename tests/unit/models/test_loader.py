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


def test_names_researchers_type_resolve_to_hub_ids(tmp_path, monkeypatch):
    from headatlas.models.loader import canonical_name

    assert canonical_name("gpt2") == canonical_name("GPT2-Small") == "openai-community/gpt2"
    assert canonical_name("distilgpt2") == "distilbert/distilgpt2"
    assert canonical_name("pythia-70m") == "EleutherAI/pythia-70m"
    assert canonical_name("pythia-1.4b-deduped") == "EleutherAI/pythia-1.4b-deduped"
    assert canonical_name("smollm2-135m") == "smollm2-135m"
    assert canonical_name("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert resolve_source(canonical_name("gpt2-medium")) == "hub"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gpt2").mkdir()  # a local directory of that name wins, as in transformers
    assert canonical_name("gpt2") == "gpt2"


def test_offline_hub_id_fails_at_once_with_a_hint(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(UnknownModelError, match=r"'openai-community/gpt2' is not in the local .*HF_HUB_OFFLINE.*zoo"):
        load_model("gpt2")
    assert time.monotonic() - started < 5


def test_unreachable_hub_fails_in_seconds_with_a_hint(monkeypatch):
    import time

    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(UnknownModelError, match=r"cannot reach the Hugging Face Hub .*'EleutherAI/pythia-70m'.*zoo"):
        load_model("pythia-70m")
    assert time.monotonic() - started < 10
