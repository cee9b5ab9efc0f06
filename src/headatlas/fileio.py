"""Files in and out, safely: one atomic writer for every file headatlas writes, and a JSON reader that turns
hostile documents (100,000-deep nesting, broken encodings) into a one-line ``ValueError`` instead of a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` atomically: readers see the old file or the new one, never half of one.

    The temporary file is created exclusively (``O_EXCL``, a fresh random name in the target directory), so a
    planted file or symlink at a predictable temp name is never opened or followed; it is renamed over ``path``
    (a symlink *at* ``path`` is replaced by the file, its target left alone) and removed if anything fails.
    Raises ``OSError`` as the operating system reports it.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes the file private (0600); give it a normal file's mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return target


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def loads_json(data: str | bytes) -> Any:
    """``json.loads`` whose every failure is a ``ValueError`` with a one-line reason (also nesting too deep for
    the parser, and bytes that are not UTF-8)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def has_surrogates(text: str) -> bool:
    """True when ``text`` holds a lone UTF-16 surrogate (``"\\ud800"`` from a JSON escape): it cannot be stored
    or printed as UTF-8."""
    return any("\ud800" <= c <= "\udfff" for c in text)
