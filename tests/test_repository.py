"""The repository itself: what a fresh clone downloads stays small (an 87 MB scratch file once slipped in)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_TRACKED_BYTES = 10 * 2**20


def tracked_files() -> list[Path]:
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"{ROOT} is not a git checkout (or git is missing): nothing tracked to check")
    return [ROOT / name for name in listing.decode().split("\0") if name]


def test_no_tracked_file_is_larger_than_10_mb():
    files = tracked_files()
    assert files, "git ls-files listed nothing"
    large = {str(f.relative_to(ROOT)): f.stat().st_size for f in files if f.is_file()
             and f.stat().st_size > MAX_TRACKED_BYTES}
    assert not large, f"tracked files over 10 MB (scratch output? keep data out of the repository): {large}"
