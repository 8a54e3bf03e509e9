"""Harness fixtures: the tree under test per bundle (2.6.32 emitted from the cache, or `porter test TREE`), its driver host, and the device backends."""

import json
import os
import re
from pathlib import Path

import pytest

from porter.build import build_host
from porter.emit import emit_tree
from porter.pipeline import load_inputs, scan_inputs
from porter.plan import plan_port


def tree_under_test(request, tmp_path_factory, bundle: str) -> Path:
    """The ``bundle`` tree under test: `porter test TREE` names it (PORTER_TEST_TREE), else
    2.6.32's, emitted from the cache."""
    named = os.environ.get("PORTER_TEST_TREE")
    if named and _tree_of_bundle(named, bundle):
        return Path(named)
    request.getfixturevalue("linux_2_6_32")
    request.getfixturevalue("dde_tree")
    inputs = load_inputs(bundle, "2.6.32")
    out = tmp_path_factory.mktemp("tree") / f"dde_{bundle.replace('-', '_')}"
    emit_tree(plan_port(inputs, scan_inputs(inputs)), out)
    return out


def _tree_of_bundle(path: str, bundle: str) -> bool:
    try:
        return json.loads((Path(path) / "porting.json").read_text()).get("bundle") == bundle
    except (OSError, ValueError):
        return False


def bundle_fixtures(bundle: str):
    """Session fixtures <bundle>_tree (the tree under test) and <bundle>_host (its driver host executable)."""
    stem = bundle.replace("-", "_")

    @pytest.fixture(scope="session", name=f"{stem}_tree")
    def tree(request, tmp_path_factory):
        return tree_under_test(request, tmp_path_factory, bundle)

    @pytest.fixture(scope="session", name=f"{stem}_host")
    def host(request, dde_tree, dde_build):
        tree = request.getfixturevalue(f"{stem}_tree")
        return build_host(tree, dde_tree, dde_build, log=lambda m: None).executable

    return tree, host


virtio_net_tree, virtio_net_host = bundle_fixtures("virtio-net")
virtio_rng_tree, virtio_rng_host = bundle_fixtures("virtio-rng")
virtio_blk_tree, virtio_blk_host = bundle_fixtures("virtio-blk")


@pytest.fixture(scope="session")
def driver_features(virtio_net_tree) -> set[str]:
    """The feature names the tree's drivers ask for: virtio_net's feature table and
    the transport features virtio_ring accepts (older releases ask for fewer)."""
    return _features_asked(virtio_net_tree, "virtio_net.c")


def _features_asked(tree: Path, driver: str) -> set[str]:
    """The driver's feature table and the transport features the tree's virtio_ring accepts."""
    source = (tree / driver).read_text()
    table = re.search(r"static unsigned int features\[\] = \{(.*?)\};", source, re.S)
    names = set(re.findall(r"\bVIRTIO_\w+_F_\w+", table.group(1))) if table else set()
    ring = (tree / "virtio_ring.c").read_text()
    return names | set(re.findall(r"case (VIRTIO_RING_F_\w+):", ring))


# -- backends -------------------------------------------------------------------------------
# A test that takes the `backend` fixture runs once per device backend; @pytest.mark.backends("sim")
# limits it. PORTER_TEST_BACKENDS (what `porter test --device` sets) picks backends for a run.
BACKENDS = ("qemu", "sim")


def pytest_configure(config):
    config.addinivalue_line("markers", "backends(*names): the device backends a harness test runs on "
                                       "(default: all of qemu, sim)")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("backend", marker.args if marker else BACKENDS)


def pytest_collection_modifyitems(config, items):
    chosen = os.environ.get("PORTER_TEST_BACKENDS")
    if not chosen:
        return
    keep, drop = [], []
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        (drop if backend and backend not in chosen.split(",") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def backend_ready(request, backend):
    """The backend, once what it needs is there (QEMU: installed; never skipped in CI)."""
    if backend == "qemu":
        request.getfixturevalue("qemu_available")
    return backend


# -- virtio-blk ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def blk_driver_features(virtio_blk_tree) -> set[str]:
    """The feature names the tree's virtio_blk asks for (VIRTIO_BLK_F_FLUSH from 2.6.32 on)."""
    return _features_asked(virtio_blk_tree, "virtio_blk.c")


@pytest.fixture
def disk_image(tmp_path):
    """make(size, content=None) -> (path, bytearray model): a raw image file of random bytes."""
    def make(size: int = 8 << 20, content: bytes | None = None, name: str = "disk.img"):
        data = bytearray(content if content is not None else os.urandom(size))
        path = tmp_path / name
        path.write_bytes(data)
        return path, data
    return make


# -- virtio-rng --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def rng_fill_words(virtio_rng_tree) -> int:
    """How the tree's driver hands bytes out (virtio_rng.check_stream's fill_words): 0 for read()
    drivers (in order), else the words of its buffer, which data_read() drivers hand out last first."""
    from porter.harness.virtio_rng import fill_words_of
    return fill_words_of(virtio_rng_tree)


@pytest.fixture(scope="session")
def rng_traits(virtio_rng_tree):
    """What the tree's driver does with a lying device (virtio_rng.DriverTraits)."""
    from porter.harness.virtio_rng import driver_traits
    return driver_traits(virtio_rng_tree)
