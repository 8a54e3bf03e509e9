"""Where porter keeps fetched inputs: outside the checkout, shared by every clone."""

import os
from pathlib import Path


def cache_root() -> Path:
    """PORTER_CACHE, else $XDG_CACHE_HOME/porter, else ~/.cache/porter."""
    if os.environ.get("PORTER_CACHE"):
        return Path(os.environ["PORTER_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "porter"


def linux_dir(version: str) -> Path:
    """Verified upstream files of one release, at their Linux paths."""
    return cache_root() / "linux" / version


def dde_root() -> Path:
    return cache_root() / "dde"
