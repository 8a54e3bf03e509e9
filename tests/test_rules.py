"""Rules as data: every rule fires on a fixture that uses its API, and only there;
bad rule files are rejected with file:line."""

import pytest

from porter import PorterError
from porter.emit import render_tree
from porter.rewrite import EditConflict
from porter.rules import RULES_DIR, RuleError, load_rules

from fixture_plans import fixture_plan

FIX = ["drivers/misc/porterfix.c"]
FIX_H = ["include/linux/porterfix.h"]
PLAIN = ["drivers/misc/porterplain.c"]


@pytest.fixture(scope="module")
def fix_tree(dde_tree):
    plan = fixture_plan(dde_tree, FIX, FIX_H)
    files, report = render_tree(plan)
    return plan, files, report


def fired(report, rule_id):
    return [e for e in report["edits"] if rule_id in e["rule"].split(",")]


def test_rule_files_load():
    rules = load_rules()
    ids = {r.id for r in rules.rules}
    assert {"sg-set-buf-phys", "sg-phys", "stack-dma-to-heap", "alloc-pages-exact", "napi-schedule-wakes-softirq",
            "maybe-build-bug-on", "hz-ddekit-timer", "unique-initcall-names"} <= ids


def test_sg_rules_rewrite_calls(fix_tree):
    _, files, report = fix_tree
    src = files["porterfix.c"].decode()
    assert "porter_sg_set_buf(&sg[1], porter_sg_virt(&sg[0]), sg[0].length);" in src
    assert "porterfix_addrs[i] = porter_sg_phys(&sg[i]);" in src
    assert "porter_sg_init_one(&sg, &(*vid_dma), sizeof((*vid_dma)));" in src
    assert "return porter_skb_to_sgvec(skb, sg, 0, skb->len);" in src
    assert "sg_init_table(sg, 3);" in src          # provided by the DDE: untouched
    assert "#include <porter/scatterlist.h>" in src
    for rid in ("sg-set-buf-phys", "sg-phys", "sg-virt", "sg-init-one-phys", "skb-to-sgvec-phys"):
        assert fired(report, rid), rid
    assert "porter_scatterlist.c" in files and "include/porter/scatterlist.h" in files


def test_stack_dma_moves_locals_and_params_to_heap(fix_tree):
    _, files, report = fix_tree
    src = files["porterfix.c"].decode()
    assert "struct porterfix_cmd *hdr_dma PORTER_DMA_HEAP = PORTER_DMA_HEAP_NEW(struct porterfix_cmd);" in src
    assert "u8 *status_dma PORTER_DMA_HEAP = PORTER_DMA_HEAP_INIT(u8, ~0);" in src
    assert "u16 *vid_dma PORTER_DMA_HEAP = PORTER_DMA_HEAP_INIT(u16, vid);" in src
    assert "(*hdr_dma).class = class;" in src
    # a use inside a macro argument (printk) is rewritten where it is written
    assert 'printk(KERN_INFO "porterfix: status %d\\n", (*status_dma));' in src
    assert "return (*status_dma) == 0;" in src
    assert "struct scatterlist sg[3];" in src       # not handed to a device by address: stays
    assert "#include <porter/dma_heap.h>" in src


def test_alloc_pages_exact_rule(fix_tree):
    _, files, _ = fix_tree
    src = files["porterfix.c"].decode()
    assert "porter_alloc_pages_exact(8192, GFP_KERNEL | __GFP_ZERO)" in src
    assert "porter_free_pages_exact(porterfix_ring, 8192)" in src
    assert "#include <porter/gfp.h>" in src


def test_napi_schedule_wakes_the_softirq_thread(fix_tree):
    _, files, report = fix_tree
    src = files["porterfix.c"].decode()
    assert "porter___napi_schedule(&porterfix_napi);" in src
    # the 2.6.29 spelling of the same call is the same gap
    assert "__netif_rx_schedule(" not in src and src.count("porter___napi_schedule(&porterfix_napi);") == 2
    assert "netif_rx_schedule_prep(&porterfix_napi)" in src      # provided: untouched
    assert "napi_schedule_prep(&porterfix_napi)" in src        # provided: untouched
    assert "#include <porter/netdevice.h>" in src and "include/porter/netdevice.h" in files
    assert fired(report, "napi-schedule-wakes-softirq")


def test_tx_lock_keeps_start_xmit_out(fix_tree):
    _, files, report = fix_tree
    src = files["porterfix.c"].decode()
    for call in ("porter_netif_tx_lock(dev);", "porter_netif_tx_unlock(dev);",
                 "porter_netif_tx_lock_bh(dev);", "porter_netif_tx_unlock_bh(dev);"):
        assert call in src, call
    assert "netif_wake_queue(dev);" in src                      # provided: untouched
    for rid in ("tx-lock-excludes-xmit", "tx-unlock", "tx-lock-bh-excludes-xmit", "tx-unlock-bh"):
        assert len(fired(report, rid)) == 1, rid
    shim = files["porter_netdevice.c"].decode()
    assert "spin_lock(&netdev_get_tx_queue(dev, i)->_xmit_lock);" in shim


def test_received_skbs_are_linearised(fix_tree):
    _, files, report = fix_tree
    assert "return porter_netif_receive_skb(skb);" in files["porterfix.c"].decode()
    assert fired(report, "rx-skb-linear")


def test_pages_come_from_porters_allocator(fix_tree):
    _, files, report = fix_tree
    src = files["porterfix.c"].decode()
    assert "struct page *page = porter_alloc_page(GFP_KERNEL);" in src
    assert "porter___free_pages(page, 0);" in src
    assert fired(report, "page-alloc") and fired(report, "page-free")


def test_hz_includes_ddekit_timer_last(fix_tree):
    _, files, _ = fix_tree
    lines = files["porterfix.c"].decode().splitlines()
    includes = [l for l in lines if l.startswith("#include")]
    assert includes[-1] == "#include <ddekit/timer.h>"
    # inserted right after the file's own last #include, as netdde's convert does
    own_last = lines.index("#include <linux/porterfix.h>")
    assert lines[own_last + 1].startswith("#include <porter/")


def test_maybe_build_bug_on_shimmed_in_header(fix_tree):
    plan, files, _ = fix_tree
    hdr = files["include/linux/porterfix.h"].decode()
    assert "#include <porter/kernel.h>" in hdr
    assert hdr.index("#include <porter/kernel.h>") > hdr.index("#include <linux/kernel.h>")
    assert any(d.name == "MAYBE_BUILD_BUG_ON" and d.status == "shimmed" for d in plan.decisions)


def test_generic_initcall_names_made_unique(fix_tree):
    plan, files, _ = fix_tree
    src = files["porterfix.c"].decode()
    assert "static int __init porterfix_init(void)" in src
    assert "module_init(porterfix_init);" in src and "module_exit(porterfix_fini);" in src
    assert plan.initcall_renames == {"drivers/misc/porterfix.c:init": "porterfix_init",
                                     "drivers/misc/porterfix.c:fini": "porterfix_fini"}


def test_no_rule_fires_without_its_feature(dde_tree):
    plan = fixture_plan(dde_tree, PLAIN)
    files, report = render_tree(plan)
    assert report["edits"] == []
    assert files["porterplain.c"] == (plan.inputs.linux_root / PLAIN[0]).read_bytes()
    assert plan.shim_headers == [] and plan.initcall_renames == {}
    assert not plan.unmapped


def test_unmapped_api_is_reported_with_location(dde_tree, tmp_path):
    rules = tmp_path / "rules.toml"
    text = (RULES_DIR / "hurd-dde.toml").read_text()
    # drop the MAYBE_BUILD_BUG_ON rule: the fixture header's use becomes unmapped
    rules.write_text(text.replace('api = "MAYBE_BUILD_BUG_ON"', 'api = "NOT_USED_ANYWHERE"'))
    plan = fixture_plan(dde_tree, FIX, FIX_H, rule_paths=[rules])
    [d] = plan.unmapped
    assert d.name == "MAYBE_BUILD_BUG_ON"
    with pytest.raises(PorterError, match=r"include/linux/porterfix.h:12:\d+: MAYBE_BUILD_BUG_ON"):
        plan.raise_if_unmapped()


def test_link_level_gap_is_unmapped(dde_tree):
    # a function the DDE headers declare but its libraries do not define
    plan = fixture_plan(dde_tree, PLAIN, symbols=frozenset({"__kmalloc", "kmem_cache_alloc"}))
    [d] = plan.unmapped
    assert d.name == "kfree" and "libdde_linux26 does not define it" in d.note
    assert fixture_plan(dde_tree, PLAIN, symbols=frozenset({"kfree"})).unmapped == []


def _write(tmp_path, body):
    p = tmp_path / "r.toml"
    p.write_text('[meta]\ntarget = "t"\n\n' + body)
    return p


def test_unknown_key_names_file_and_line(tmp_path):
    p = _write(tmp_path, '[[rule]]\nid = "a"\napi = "x"\naction = "rename"\nto = "y"\nwhy = "w"\n\n'
                         '[[rule]]\nid = "b"\napi = "z"\naction = "rename"\nto = "q"\nwhy = "w"\ncolour = "red"\n')
    with pytest.raises(RuleError, match=rf"{p}:11: rule 'b': unknown key\(s\) colour"):
        load_rules([p])


def test_unknown_action_and_missing_key(tmp_path):
    with pytest.raises(RuleError, match="unknown action 'delete'"):
        load_rules([_write(tmp_path, '[[rule]]\nid = "a"\napi = "x"\naction = "delete"\nwhy = "w"\n')])
    with pytest.raises(RuleError, match=r"missing key\(s\) to"):
        load_rules([_write(tmp_path, '[[rule]]\nid = "a"\napi = "x"\naction = "rename"\nwhy = "w"\n')])


def test_duplicate_rule_id(tmp_path):
    body = '[[rule]]\nid = "a"\napi = "x"\naction = "provided"\nwhy = "w"\n'
    with pytest.raises(RuleError, match="already used"):
        load_rules([_write(tmp_path, body + "\n" + body)])


def test_two_rules_editing_the_same_range_conflict(dde_tree, tmp_path):
    extra = tmp_path / "extra.toml"
    extra.write_text('[[rule]]\nid = "sg-phys-again"\napi = "sg_phys"\naction = "rename"\n'
                     'to = "other_sg_phys"\nheader = "porter/scatterlist.h"\nwhy = "test"\n')
    plan = fixture_plan(dde_tree, FIX, FIX_H, rule_paths=[RULES_DIR / "hurd-dde.toml", extra])
    with pytest.raises(EditConflict, match=r"drivers/misc/porterfix.c:\d+: rules 'sg-phys' and 'sg-phys-again'"):
        render_tree(plan)
