"""Where edgeopt keeps things on disk. One place, so nothing else reads the environment."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
BUNDLED_WEIGHTS_DIR = PACKAGE_DIR / "weights"
BUNDLED_DATA_DIR = PACKAGE_DIR / "data"


def _user_dir(explicit_env: str, xdg_env: str, home_default: str) -> Path:
    """$EXPLICIT if set, else $XDG_.../edgeopt, else ~/<home_default>/edgeopt."""
    explicit = os.environ.get(explicit_env)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get(xdg_env) or str(Path.home() / home_default)
    return Path(base) / "edgeopt"


def cache_dir() -> Path:
    """User cache for models built on first use: $EDGEOPT_CACHE, else $XDG_CACHE_HOME/edgeopt, else ~/.cache/edgeopt."""
    return _user_dir("EDGEOPT_CACHE", "XDG_CACHE_HOME", ".cache")


def config_dir() -> Path:
    """User configuration (device profiles, ...): $EDGEOPT_CONFIG, else $XDG_CONFIG_HOME/edgeopt, else ~/.config/edgeopt."""
    return _user_dir("EDGEOPT_CONFIG", "XDG_CONFIG_HOME", ".config")
