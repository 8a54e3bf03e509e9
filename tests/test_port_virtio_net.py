"""End to end on the real inputs: Linux 2.6.32's virtio-net bundle against the
real DDE. Runs whenever porter's cache holds both (skips with the reason otherwise)."""

import difflib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from porter.check import run_check, write_junit
from porter.emit import emit_tree
from porter.pipeline import load_inputs, scan_inputs
from porter.plan import plan_port

pytestmark = pytest.mark.upstream


@pytest.fixture(scope="module")
def plan(linux_2_6_32, dde_tree, dde_build):
    inputs = load_inputs("virtio-net", "2.6.32")
    assert inputs.dde_symbols is not None          # link-level classification is on
    return plan_port(inputs, scan_inputs(inputs))


@pytest.fixture(scope="module")
def tree(plan, tmp_path_factory):
    out = tmp_path_factory.mktemp("port") / "dde_virtio_net"
    emit_tree(plan, out)
    return out


def test_scan_has_no_unmapped_api(plan):
    assert plan.unmapped == []
    status = {(d.name, d.kind): d.status for d in plan.decisions}
    assert status[("sg_phys", "function")] == "rewritten"
    assert status[("alloc_pages_exact", "function")] == "rewritten"
    assert status[("HZ", "variable")] == "shimmed"
    # parsed with porter/kernel.h included, as the emitted file includes it: a macro
    assert status[("MAYBE_BUILD_BUG_ON", "macro")] == "shimmed"
    assert status[("unregister_netdev", "function")] == "provided"
    # refused at probe without the control queue: the harness's feature sweep found the BUG()
    assert status[("register_netdev", "function")] == "rewritten"
    assert len(plan.decisions) > 200


def test_stack_dma_buffers_found(plan):
    found = {(s.function, s.var) for f in plan.scan.files.values() for s in f.stack_dma}
    assert {("virtnet_send_command", "ctrl"), ("virtnet_send_command", "status"),
            ("virtnet_set_rx_mode", "promisc"), ("virtnet_set_rx_mode", "allmulti")} <= found


def test_output_differs_from_upstream_only_where_rules_fired(plan, tree, linux_2_6_32):
    edited_lines = {}
    for path, edits in plan.edits.items():
        for e in edits:
            edited_lines.setdefault(path, set()).update(range(e.line, e.line + e.before.count("\n") + 1))
    for path in (*plan.inputs.sources, *plan.inputs.headers):
        out = tree / (path.split("/")[-1] if path.endswith(".c") else path)
        up = (linux_2_6_32 / path).read_text().splitlines()
        new = out.read_text().splitlines()
        for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, up, new, autojunk=False).get_opcodes():
            if tag == "equal":
                continue
            touched = set(range(i1 + 1, i2 + 1)) or {i1, i1 + 1}   # insertions sit between lines
            assert touched & edited_lines.get(path, set()), f"{path}:{i1 + 1}: change no rule made"
    assert (tree / "virtio.c").read_bytes() == (linux_2_6_32 / "drivers/virtio/virtio.c").read_bytes()


def test_report_lists_every_edit(plan, tree):
    report = json.loads((tree / "porting.json").read_text())
    assert len(report["edits"]) == sum(len(e) for e in plan.edits.values())
    assert report["initcall_renames"] == {"drivers/net/virtio_net.c:init": "virtio_net_init",
                                          "drivers/net/virtio_net.c:fini": "virtio_net_fini"}
    md = (tree / "PORTING.md").read_text()
    assert "| drivers/virtio/virtio_ring.c:108 | sg-phys | `sg_phys` | `porter_sg_phys` |" in md
    assert "unregister_netdev" in report["expected_symbols"]


def test_check_compiles_all_and_leaves_nothing_undefined(tree, dde_tree, dde_build, tmp_path):
    res = run_check(tree, dde_tree, dde_build.defined_symbols)
    assert [c.source for c in res.compiles] == ["porter_gfp.c", "porter_netdevice.c", "porter_scatterlist.c",
                                                "virtio.c", "virtio_net.c", "virtio_pci.c", "virtio_ring.c"]
    assert all(c.ok for c in res.compiles), [c.output for c in res.compiles if not c.ok]
    assert res.undefined == {}
    assert "register_netdev" in res.from_library("libdde_linux26") and "__get_free_pages" in res.from_library("libdde_linux26")
    junit = tmp_path / "check.xml"
    write_junit(res, junit)
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0" and suite.get("tests") == "8"


def test_clang_agrees_with_gcc(tree, dde_tree, dde_build, clang_available):
    """clang as a second opinion: it compiles the same tree for i386 with the
    DDE's flags, and its objects leave nothing undefined that the DDE lacks."""
    res = run_check(tree, dde_tree, dde_build.defined_symbols, compilers=("gcc", "clang"))
    by_cc = {(c.compiler, c.source): c for c in res.compiles}
    assert {cc for cc, _ in by_cc} == {"gcc", "clang"}
    assert all(c.ok for c in res.compiles), [f"{c.compiler} {c.source}:\n{c.output}" for c in res.compiles if not c.ok]
    assert res.undefined == {} and res.host_stubs == []
    assert "register_netdev" in res.from_library("libdde_linux26")


def test_pristine_sources_leave_exactly_the_known_gaps(plan, linux_2_6_32, dde_tree, dde_build, tmp_path):
    """The same four files with only the 2.6.32 headers placed first: what docs/dde.md measured."""
    pristine = tmp_path / "pristine"
    for path in (*plan.inputs.sources, *plan.inputs.headers):
        dest = pristine / (path.split("/")[-1] if path.endswith(".c") else path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((linux_2_6_32 / path).read_bytes())
    (pristine / ".porter-manifest.json").write_text("{}")
    strict = run_check(pristine, dde_tree, dde_build.defined_symbols)
    failed = {c.source for c in strict.compiles if not c.ok}
    assert failed and all("MAYBE_BUILD_BUG_ON" in c.output for c in strict.compiles if not c.ok)
    lax = run_check(pristine, dde_tree, dde_build.defined_symbols, implicit_is_error=False)
    assert all(c.ok for c in lax.compiles)
    assert set(lax.undefined) == {"HZ", "MAYBE_BUILD_BUG_ON", "alloc_pages_exact", "free_pages_exact"}


def test_cli_port_and_check(linux_2_6_32, dde_tree, dde_build, tmp_path):
    out = tmp_path / "dde_virtio_net"
    r = subprocess.run([sys.executable, "-m", "porter.cli", "port", "virtio-net", "--version", "2.6.32",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "porter.cli", "check", str(out), "--junit",
                        str(tmp_path / "j.xml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 unexplained" in r.stdout and "check: passed" in r.stdout
    r = subprocess.run([sys.executable, "-m", "porter.cli", "scan", "virtio-net", "--version", "2.6.32",
                        "--json"], capture_output=True, text=True)
    assert r.returncode == 0 and not [a for a in json.loads(r.stdout)["apis"] if a["status"] == "unmapped"]


def test_check_counts_stubs_that_stop_the_driver_host(dde_tree, dde_build, tmp_path):
    from fixture_plans import fixture_plan
    out = tmp_path / "stub_tree"
    emit_tree(fixture_plan(dde_tree, ["drivers/misc/porterstub.c"]), out)
    res = run_check(out, dde_tree, dde_build.defined_symbols)
    assert res.ok and res.host_stubs == ["ddekit_request_mem"]


def test_virtio_net_needs_no_stub(tree, dde_tree, dde_build):
    assert run_check(tree, dde_tree, dde_build.defined_symbols).host_stubs == []


def _cached_release(version):
    from porter.cache import linux_dir
    if not (linux_dir(version) / "origin.json").is_file():
        pytest.skip(f"Linux {version} not in porter's cache (run `porter fetch --version {version} [--from PATH]`)")


# Rules key on what a source uses, not on its version: every release ports with the same
# rule file. The compat rules and where they fire (the README's table says the same).
ALL = [f"2.6.{n}" for n in range(28, 40)]


def _from(first, last="2.6.39"):
    return ALL[ALL.index(first):ALL.index(last) + 1]


COMPAT_RULES = {
    "napi-netdev-arg": ["2.6.28"], "netdev-priv-member": ["2.6.28"],
    "kzalloc-whole-pages": ["2.6.28"], "kfree-whole-pages": ["2.6.28"],
    "tx-lock-excludes-xmit": _from("2.6.28", "2.6.31"), "tx-lock-bh-excludes-xmit": _from("2.6.28", "2.6.31"),
    "uc-count-member": ["2.6.30"], "uc-list-member": ["2.6.30"],
    "sg-set-buf-phys": _from("2.6.29"), "alloc-pages-exact": _from("2.6.29"),
    "stack-dma-to-heap": _from("2.6.30"), "maybe-build-bug-on": _from("2.6.32", "2.6.37"),
    "netdev-alloc-skb-ip-align": _from("2.6.33"), "netdev-addr-counts": _from("2.6.34"),
    "netdev-for-each-uc-addr": _from("2.6.34"), "netdev-for-each-mc-addr": _from("2.6.34"),
    "strncpy-from-libc": ["2.6.36"], "skb-checksum-start-offset": _from("2.6.38"),
    "napi-schedule-wakes-softirq": ALL, "skb-to-sgvec-phys": ALL, "dev-skb-free-frag-pages": ALL,
}


@pytest.mark.parametrize("version", ALL)
def test_every_release_ports_and_compiles(version, dde_tree, dde_build, tmp_path):
    _cached_release(version)
    inputs = load_inputs("virtio-net", version)
    plan = plan_port(inputs, scan_inputs(inputs))
    assert plan.unmapped == [], [f"{d.name}: {d.note}" for d in plan.unmapped]
    fired = {rid for edits in plan.edits.values() for e in edits for rid in e.rule.split(",")}
    fired |= {d.rule for d in plan.decisions if d.rule and d.status in ("shimmed", "rewritten", "provided")}
    for rule, releases in COMPAT_RULES.items():
        assert (rule in fired) == (version in releases), rule
    out = tmp_path / f"dde_virtio_net-{version}"
    emit_tree(plan, out)
    res = run_check(out, dde_tree, dde_build.defined_symbols)
    assert all(c.ok for c in res.compiles), [c.output for c in res.compiles if not c.ok]
    assert res.undefined == {} and res.host_stubs == []


def test_release_newer_than_the_dde_names_what_it_lacks(dde_tree, tmp_path):
    """2.6.33 uses netdev_alloc_skb_ip_align, which the DDE's 2.6.29 headers lack: without
    the rule that supplies it, porter stops and names it with its first use, instead of
    porting a broken file. (Its result assigned to a pointer is the same gap, not a second error.)"""
    _cached_release("2.6.33")
    from porter import PorterError
    from porter.rules import RULES_DIR
    rules = tmp_path / "rules.toml"
    rules.write_text((RULES_DIR / "hurd-dde.toml").read_text().replace(
        'api = "netdev_alloc_skb_ip_align"', 'api = "not_used_anywhere"'))
    inputs = load_inputs("virtio-net", "2.6.33", rule_paths=[rules])
    plan = plan_port(inputs, scan_inputs(inputs))
    assert [d.name for d in plan.unmapped] == ["netdev_alloc_skb_ip_align"]
    with pytest.raises(PorterError, match=r"drivers/net/virtio_net.c:\d+:\d+: netdev_alloc_skb_ip_align "
                                          r"\(function\): no declaration in the DDE's headers"):
        plan.raise_if_unmapped()
