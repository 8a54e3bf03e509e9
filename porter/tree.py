"""An emitted tree as the later stages (check, build, test, the Hurd) read it: proof porter wrote it, and its porting.json."""

import json
from pathlib import Path

from . import PorterError

MANIFEST_NAME = ".porter-manifest.json"     # every file porter wrote, with its hash
REPORT_NAME = "porting.json"                # what was ported from what, and how


def emitted_tree(tree: Path) -> Path:
    """``tree`` resolved, once it is known to be a tree porter emitted."""
    tree = Path(tree).resolve()
    if not (tree / MANIFEST_NAME).is_file():
        raise PorterError(f"{tree} is not a tree porter emitted (no {MANIFEST_NAME}); give a tree from "
                          "`porter port`")
    return tree


def tree_report(tree: Path) -> dict:
    """The tree's porting.json."""
    path = Path(tree) / REPORT_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PorterError(f"{path}: unreadable ({e}); re-emit the tree with `porter port`") from None


def tree_dde_id(tree: Path) -> str | None:
    """The id of the DDE tree the tree was ported against, when it says."""
    return tree_report(tree).get("inputs", {}).get("dde_id")


def tree_dde_libraries(tree: Path) -> tuple[str, ...]:
    """The DDE libraries the tree links besides libdde_linux26.o.a (trees from before bundles
    chose theirs: net)."""
    return tuple(tree_report(tree).get("dde_libraries", ("net",)))
