"""porter: port Linux 2.6 virtio drivers onto the GNU Hurd's DDE."""

from pathlib import Path

# The checkout (or installed source) root: templates/, dde-shims/ and
# linux-2.6-drivers/ live beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class PorterError(Exception):
    """An error a user can act on: the message says what and what to do."""
