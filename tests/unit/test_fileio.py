"""The one atomic writer: files get the mode any other new file would (umask applied), not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

from headatlas.fileio import write_atomic


def test_written_files_follow_the_umask_like_any_new_file(tmp_path):
    previous = os.umask(0o022)
    try:
        assert stat.S_IMODE(write_atomic(tmp_path / "a.csv", "x").stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(write_atomic(tmp_path / "b.csv", "x").stat().st_mode) == 0o600
        assert stat.S_IMODE(write_atomic(tmp_path / "a.csv", "y").stat().st_mode) == 0o600  # a replaced file too
    finally:
        os.umask(previous)
    assert (tmp_path / "a.csv").read_text() == "y"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
