"""porter: port Linux 2.6 virtio drivers onto the GNU Hurd's DDE."""

from pathlib import Path

__version__ = "0.2.0"

_PACKAGE = Path(__file__).resolve().parent


def _data_root() -> Path:
    """Where templates/, dde-shims/, linux-2.6-drivers/ and the harness tests are:
    beside the package in a checkout, under porter/data/ in an installed wheel
    (setup.py copies them there when it builds one)."""
    installed = _PACKAGE / "data"
    return installed if (installed / "templates").is_dir() else _PACKAGE.parent


DATA_ROOT = _data_root()
SHIMS_DIR = DATA_ROOT / "dde-shims"
# linux/compiler-gcc<N>.h for a gcc newer than the DDE knows: searched after the DDE's own
COMPAT_DIR = SHIMS_DIR / "compat"


class PorterError(Exception):
    """An error a user can act on: the message says what and what to do."""
