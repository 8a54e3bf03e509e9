"""Plans over porter's own Linux-style C fixtures (tests/fixtures/linux)."""

from pathlib import Path

from porter.manifest import Bundle, Release
from porter.pipeline import Inputs, scan_inputs
from porter.plan import plan_port
from porter.rules import load_rules

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_LINUX = FIXTURES / "linux"


def fixture_inputs(dde, sources, headers=(), rule_paths=None, root=FIXTURE_LINUX, symbols=None) -> Inputs:
    """Inputs over porter's own Linux-style C fixtures (a bundle that is not in the manifest)."""
    files = {p: "" for p in (*sources, *headers)}
    return Inputs(Bundle("fixture", "porter test fixture", tuple(sources), tuple(headers),
                         glue="virtio-net"),
                  Release("fixture", "", files), root, tuple(sources), tuple(headers), dde,
                  load_rules(rule_paths), symbols)


def fixture_plan(dde, sources, headers=(), rule_paths=None, root=FIXTURE_LINUX, symbols=None):
    inputs = fixture_inputs(dde, sources, headers, rule_paths, root, symbols)
    return plan_port(inputs, scan_inputs(inputs))
