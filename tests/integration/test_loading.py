"""Every way to name a model: zoo alias (the fixture), GGUF file, local transformers directory."""

from __future__ import annotations

import pytest
import torch

from headatlas.models.loader import load_model
from headatlas.models.zoo import ZOO, cache_dir, fetch

pytestmark = pytest.mark.slow


def logits(loaded, ids):
    with torch.no_grad():
        return loaded.model(ids).logits


def test_gguf_file_and_local_directory_give_the_zoo_model(smollm2):
    ids = torch.tensor([[1, 504, 3758, 282, 260, 2644]])
    expected = logits(smollm2, ids)
    path = fetch("smollm2-135m")
    by_file = load_model(str(path))
    assert by_file.facts.source == "gguf" and by_file.facts.sha256 == ZOO["smollm2-135m"].sha256
    torch.testing.assert_close(logits(by_file, ids), expected, atol=0, rtol=0)
    converted = cache_dir() / "converted" / ZOO["smollm2-135m"].sha256[:16]
    by_dir = load_model(str(converted))
    assert by_dir.facts.source == "local" and by_dir.facts.n_layers == 30
    torch.testing.assert_close(logits(by_dir, ids), expected, atol=0, rtol=0)


def test_first_gguf_conversion_prints_no_progress_bar(tmp_path, monkeypatch, capfd):
    """Dequantising a GGUF file (first load) keeps transformers' own progress bars off the terminal."""
    gguf = fetch("smollm2-135m")
    monkeypatch.setenv("HEADATLAS_CACHE", str(tmp_path / "cache"))  # an empty cache: this load converts
    capfd.readouterr()
    loaded = load_model(str(gguf))
    out, err = capfd.readouterr()
    assert (tmp_path / "cache" / "converted" / ZOO["smollm2-135m"].sha256[:16] / "config.json").is_file()
    assert loaded.facts.n_layers == 30
    assert "it/s" not in err + out and "%|" not in err + out, err[-300:]
