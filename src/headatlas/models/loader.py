"""Load a causal LM with its tokenizer from a zoo alias, a hub id, a local directory or a GGUF file."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CorruptModelError, InvalidSettingError, UnknownModelError, UnsupportedArchitectureError
from ..lens import install
from .facts import ModelFacts, facts_from_config
from .names import OFFLINE_HINT, hub_id_for, hub_offline
from .zoo import ZOO, cache_dir, fetch, sha256_of

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A model ready for the lens: eval mode, headatlas attention installed, with its tokenizer and facts."""

    model: Any
    tokenizer: Any
    facts: ModelFacts

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def _converted_dir(sha256: str) -> Path:
    return cache_dir() / "converted" / sha256[:16]


def _load_gguf(path: Path, dtype: torch.dtype, load_kwargs: dict[str, Any], sha256: str) -> tuple[Any, Any]:
    """Dequantise a GGUF file once, keep a safetensors copy in the cache, load from that copy after."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    converted = _converted_dir(sha256)
    if not (converted / "config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        model.hf_quantizer = None  # type: ignore[assignment]  # the weights are plain float32 now; let save_pretrained write them
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = converted.with_name(converted.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "headatlas-source.json").write_text(json.dumps({"gguf": path.name, "sha256": sha256}))
        shutil.rmtree(converted, ignore_errors=True)
        staging.replace(converted)
    return _load_pretrained(str(converted), dtype, load_kwargs)


def _load_pretrained(ref: str, dtype: torch.dtype, load_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ref, local_files_only=bool(load_kwargs.get("local_files_only")))
    model = AutoModelForCausalLM.from_pretrained(ref, dtype=dtype, **load_kwargs)
    return model, tokenizer


def check_supported(model: Any) -> None:
    """The lens needs a model whose attention layers call transformers' AttentionInterface."""
    if not getattr(type(model), "_supports_attention_backend", False):
        arch = getattr(model.config, "model_type", type(model).__name__)
        raise UnsupportedArchitectureError(
            f"architecture {arch!r} does not route attention through transformers' AttentionInterface, so the "
            "lens cannot see it; supported are models with attention-backend support (llama, mistral, qwen2/3, "
            "gemma2/3, phi3, gpt2 …)"
        )


def canonical_name(name: str) -> str:
    """``name`` with a short name researchers type (``gpt2``, ``gpt2-small``, ``pythia-70m``) replaced by its hub
    id; zoo aliases, files and existing directories stay as they are."""
    if name in ZOO or Path(name).exists():
        return name
    return hub_id_for(name) or name


def resolve_source(name: str) -> str:
    """Say which kind of reference ``name`` is: zoo, gguf, local or hub."""
    if name in ZOO:
        return "zoo"
    path = Path(name)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UnknownModelError(f"GGUF file not found: {name}")
        return "gguf"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UnknownModelError(f"{name} is a directory without config.json, not a transformers checkpoint")
        return "local"
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return "hub"
    valid = ", ".join(sorted(ZOO))
    raise UnknownModelError(
        f"unknown model {name!r}: not a zoo alias ({valid}), a .gguf file, a local directory or a hub id"
    )


def check_device(device: str) -> None:
    """Refuse a CUDA device on a machine without CUDA (a one-line error before any work starts)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidSettingError(f"device {device!r} requested but CUDA is not available on this machine")


def load_model(name: str, *, device: str = "cpu", dtype: str = "float32", device_map: str | None = None) -> LoadedModel:
    """Load ``name`` for scanning. ``device_map="auto"`` spreads a large model over devices (accelerate)."""
    if dtype not in DTYPES:
        raise InvalidSettingError(f"unknown dtype {dtype!r}; valid dtypes are {', '.join(DTYPES)}")
    check_device(device)
    name = canonical_name(name)
    source = resolve_source(name)
    with _quiet_transformers():
        loaded = _load(name, source, DTYPES[dtype], device, device_map)
    install(loaded.model)
    return loaded


def _hub_access(repo_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """How to load a hub id: from the local cache when it is there or ``HF_HUB_OFFLINE`` is set; otherwise only
    after one quick request shows the hub answers (offline, hub clients retry for most of a minute)."""
    from huggingface_hub import constants, try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    if cached:
        return {"local_files_only": True}
    if hub_offline():
        raise UnknownModelError(
            f"{repo_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {OFFLINE_HINT}"
        )
    import httpx

    endpoint = constants.ENDPOINT.rstrip("/")
    try:
        answer = httpx.head(f"{endpoint}/api/models/{repo_id}", timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise UnknownModelError(
            f"cannot reach the Hugging Face Hub at {endpoint} to fetch {repo_id!r} ({type(exc).__name__}, "
            f"{timeout:g} s timeout); {OFFLINE_HINT}"
        ) from None
    if answer.status_code == 404:
        raise UnknownModelError(f"{repo_id!r} is not a model on the Hugging Face Hub ({endpoint})")
    return {}


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Keep transformers' own progress bars off the terminal; the CLI shows its own status. The GGUF
    de-quantiser uses a bare tqdm that transformers' switch does not reach, so it is silenced here too."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    gguf_tqdm = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = gguf_tqdm
        if was_enabled:
            hf_logging.enable_progress_bar()


def _load(name: str, source: str, torch_dtype: torch.dtype, device: str, device_map: str | None) -> LoadedModel:
    load_kwargs: dict[str, Any] = {"device_map": device_map} if device_map else {}
    sha: str | None = None
    if source in ("zoo", "gguf"):
        path = fetch(name) if source == "zoo" else Path(name).resolve()
        sha = ZOO[name].sha256 if source == "zoo" else sha256_of(path)
        try:
            model, tokenizer = _load_gguf(path, torch_dtype, load_kwargs, sha)
        except (ValueError, KeyError, OSError, IndexError, struct.error) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CorruptModelError(f"cannot read GGUF file {path}: {first}") from exc
    else:
        if source == "hub":
            load_kwargs.update(_hub_access(name))
        try:
            model, tokenizer = _load_pretrained(name, torch_dtype, load_kwargs)
        except OSError as exc:
            hint = f"; {OFFLINE_HINT}" if source == "hub" else ""
            raise UnknownModelError(f"could not load {name!r}: {str(exc).splitlines()[0]}{hint}") from exc
    check_supported(model)
    if not device_map:
        model.to(device)
    model.eval()
    facts = facts_from_config(model.config, name=name, source=source, sha256=sha)
    return LoadedModel(model=model, tokenizer=tokenizer, facts=facts)
