"""Where edgeopt keeps things on disk. One place, so nothing else reads the environment."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
BUNDLED_WEIGHTS_DIR = PACKAGE_DIR / "weights"
BUNDLED_DATA_DIR = PACKAGE_DIR / "data"


def cache_dir() -> Path:
    """User cache for models built on first use: $EDGEOPT_CACHE, else $XDG_CACHE_HOME/edgeopt, else ~/.cache/edgeopt."""
    explicit = os.environ.get("EDGEOPT_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeopt"


def config_dir() -> Path:
    """User configuration (device profiles, ...): $EDGEOPT_CONFIG, else $XDG_CONFIG_HOME/edgeopt, else ~/.config/edgeopt."""
    explicit = os.environ.get("EDGEOPT_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgeopt"
