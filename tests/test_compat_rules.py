"""The compat rules, in the backports manner: each tests for a feature in the source
(a member the DDE's struct lacks, a call with another argument count, an API its headers
do not declare, an argument written as PAGE_ALIGN(...)), never for a version number.
portercompat.c (porter's own fixture) uses every spelling they adapt; porterplain.c none."""

import pytest

from porter.check import run_check
from porter.emit import emit_tree, render_tree
from porter.rules import RULES_DIR, RuleError, load_rules

from fixture_plans import fixture_plan

COMPAT = ["drivers/misc/portercompat.c"]
PLAIN = ["drivers/misc/porterplain.c"]


@pytest.fixture(scope="module")
def compat(dde_tree):
    plan = fixture_plan(dde_tree, COMPAT)
    files, report = render_tree(plan)
    return plan, files["portercompat.c"].decode(), report


def fired(report, rule_id):
    """The rule's edits in the code (not the #include lines it adds)."""
    return [e for e in report["edits"] if rule_id in e["rule"].split(",") and "#include" not in e["after"]]


def status(plan, name):
    return {(d.name, d.status, d.rule) for d in plan.decisions if d.name == name}


def test_napi_calls_lose_the_device_argument(compat):
    plan, src, report = compat
    assert "netif_rx_complete(napi);" in src and "if (netif_rx_reschedule(napi))" in src
    assert "if (netif_rx_schedule_prep(&vi->napi))" in src
    # the same call also gets napi-schedule-wakes-softirq's new name: the edits compose
    assert "porter___napi_schedule(&vi->napi);" in src
    assert len(fired(report, "napi-netdev-arg")) == 4


def test_dev_priv_becomes_netdev_priv(compat):
    plan, src, report = compat
    assert "struct portercompat_priv *vi = netdev_priv(dev);\n\n\tif (netif_rx_schedule_prep" in src
    assert "dev->priv;" not in src
    assert ("net_device.priv", "rewritten", "netdev-priv-member") in status(plan, "net_device.priv")


def test_page_aligned_kzalloc_comes_from_pages_and_kfree_knows_it(compat):
    plan, src, report = compat
    assert "vi->ring = porter_kzalloc_pages(PAGE_ALIGN(8192), GFP_KERNEL);" in src
    assert "vi->scratch = kzalloc(64, GFP_KERNEL);" in src         # not whole pages: untouched
    assert "porter_kfree(vi->ring);" in src and "porter_kfree(vi->scratch);" in src
    assert "#include <porter/slab.h>" in src
    assert len(fired(report, "kzalloc-whole-pages")) == 1 and len(fired(report, "kfree-whole-pages")) == 2


def test_kfree_stays_where_no_whole_page_block_was_allocated(dde_tree):
    plan = fixture_plan(dde_tree, PLAIN)
    assert render_tree(plan)[1]["edits"] == []
    assert status(plan, "kfree") == {("kfree", "provided", "")}


def test_uc_count_and_uc_list_of_2_6_30(compat):
    plan, src, report = compat
    assert "for (addr = porter_netdev_uc_list(dev); addr && i < 8; addr = addr->next)" in src
    assert "return dev->uc.count;" in src
    assert fired(report, "uc-count-member") and fired(report, "uc-list-member")


@pytest.mark.parametrize("api,rule,header", [
    ("netdev_alloc_skb_ip_align", "netdev-alloc-skb-ip-align", "porter/skbuff.h"),
    ("skb_checksum_start_offset", "skb-checksum-start-offset", "porter/skbuff.h"),
    ("netdev_uc_count", "netdev-addr-counts", "porter/netdevice.h"),
    ("netdev_mc_count", "netdev-addr-counts", "porter/netdevice.h"),
    ("netdev_for_each_uc_addr", "netdev-for-each-uc-addr", "porter/netdevice.h"),
    ("netdev_for_each_mc_addr", "netdev-for-each-mc-addr", "porter/netdevice.h"),
])
def test_newer_apis_are_shimmed(compat, api, rule, header):
    plan, src, _ = compat
    assert status(plan, api) == {(api, "shimmed", rule)}
    assert f"#include <{header}>" in src and api in src         # the call stays as written
    assert header in plan.shim_headers


def test_skbs_are_freed_with_their_pages(compat):
    plan, src, report = compat
    assert "porter_kfree_skb(skb);" in src and "porter_dev_kfree_skb(other);" in src
    assert fired(report, "skb-free-frag-pages") and fired(report, "dev-skb-free-frag-pages")


def test_strncpy_is_left_to_libc(dde_tree):
    plan = fixture_plan(dde_tree, COMPAT, symbols=frozenset())
    assert ("strncpy", "provided", "strncpy-from-libc") in status(plan, "strncpy")


def test_shim_headers_bring_the_headers_and_sources_they_include(compat):
    plan, _, _ = compat
    # porter/skbuff.h includes porter/gfp.h, whose page marker lives in porter_gfp.c
    assert "porter/gfp.h" in plan.shim_headers
    assert plan.shim_sources == ["porter_gfp.c", "porter_netdevice.c", "porter_slab.c"]


def test_the_adapted_fixture_compiles_against_the_dde(compat, dde_tree, dde_build, tmp_path):
    plan, _, _ = compat
    out = tmp_path / "compat"
    emit_tree(plan, out)
    res = run_check(out, dde_tree, dde_build.defined_symbols)
    assert all(c.ok for c in res.compiles), [c.output for c in res.compiles if not c.ok]
    assert res.undefined == {} and res.host_stubs == []


def test_without_the_rules_the_old_spellings_are_named(dde_tree, tmp_path):
    """The same fixture without porter's compat rules: the gaps are reported, each with its
    place and the DDE's form, not ported into a file that does not compile."""
    text = (RULES_DIR / "hurd-dde.toml").read_text()
    for api in ('"net_device.priv"', '"net_device.uc_count"', '"net_device.uc_list"'):
        text = text.replace(f"api = {api}", 'api = "nothing.here"')
    text = text.replace('action = "drop-arg"', 'action = "unsupported"').replace("arg = 0\nargs = 2\n", "")
    rules = tmp_path / "rules.toml"
    rules.write_text(text)
    plan = fixture_plan(dde_tree, COMPAT, rule_paths=[rules])
    notes = {d.name: d.note for d in plan.unmapped}
    assert notes["net_device.priv"] == "the DDE's struct net_device has no member priv"
    assert "net_device.uc_count" in notes and "net_device.uc_list" in notes
    assert set(notes) >= {"netif_rx_complete", "netif_rx_schedule_prep"}


@pytest.mark.parametrize("body,message", [
    ('api = "netdev_priv_member"\naction = "member-call"\nto = "f"\n', "a member-call api is struct.member"),
    ('api = "f"\naction = "drop-arg"\narg = 2\nargs = 2\n', "drop-arg needs 0 <= arg < args"),
    ('api = "f"\naction = "rename"\nto = "g"\narg = 0\n', "arg and arg_call go together"),
    ('api = "f"\naction = "rename"\nto = "g"\nwith_rule = "nope"\n', "with_rule names 'nope'"),
])
def test_bad_compat_rules_are_refused(tmp_path, body, message):
    p = tmp_path / "r.toml"
    p.write_text(f'[meta]\ntarget = "t"\n\n[[rule]]\nid = "a"\n{body}why = "w"\n')
    with pytest.raises(RuleError, match=message):
        load_rules([p])
