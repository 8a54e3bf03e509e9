"""emit: atomic, byte-identical on re-run, never overwrites a hand edit silently;
scan: bad C is refused with file:line."""

import json
import re

import pytest

from porter import PorterError
from porter.emit import emit_tree
from porter.tree import MANIFEST_NAME
from porter.scan import ScanError

from fixture_plans import fixture_plan

FIX = ["drivers/misc/porterfix.c"]
FIX_H = ["include/linux/porterfix.h"]


@pytest.fixture(scope="module")
def plan(dde_tree):
    return fixture_plan(dde_tree, FIX, FIX_H)


def snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_emit_writes_tree_with_hashes(plan, tmp_path):
    out = tmp_path / "dde_fixture"
    res = emit_tree(plan, out)
    names = set(snapshot(out))
    assert {"Makefile", "Makeconf.local", "default.ld", "main.c", "machdev_glue.c", "machdev_glue.h",
            "compat/linux/compiler-gcc12.h", "porterfix.c",
            "include/linux/porterfix.h", "include/porter/scatterlist.h", "porter_scatterlist.c",
            "PORTING.md", "porting.json", MANIFEST_NAME} <= names
    recorded = json.loads((out / MANIFEST_NAME).read_text())["files"]
    assert set(recorded) == names - {MANIFEST_NAME} and res.files == recorded
    mk = (out / "Makefile").read_text()
    assert "SRC_C          = main.c machdev_glue.c porterfix.c porter_gfp.c porter_netdevice.c porter_scatterlist.c" in mk
    assert "-ldde_linux26.o -ldde_linux26_net" in mk and "PRIVATE_INCDIR = $(SRC_DIR)/include" in mk
    assert "KEEP (*(.mark_beg_l4dde_ctors))" in (out / "default.ld").read_text()
    assert "cpumask_copy((struct cpumask *)cpu_possible_mask, cpu_online_mask);" in (out / "main.c").read_text()


def test_rerun_is_byte_identical(plan, tmp_path, dde_tree):
    a, b = tmp_path / "a", tmp_path / "b"
    emit_tree(plan, a)
    emit_tree(fixture_plan(dde_tree, FIX, FIX_H), b)
    assert snapshot(a) == snapshot(b)
    again = emit_tree(plan, a)
    assert again.unchanged


def test_hand_edit_is_refused_and_kept(plan, tmp_path):
    out = tmp_path / "t"
    emit_tree(plan, out)
    (out / "porterfix.c").write_text("/* my fix */\n")
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(PorterError, match=r"porterfix.c \(edited\)[\s\S]*notes.txt \(added\)[\s\S]*--force"):
        emit_tree(plan, out)
    assert (out / "porterfix.c").read_text() == "/* my fix */\n"
    emit_tree(plan, out, force=True)
    assert (out / "porterfix.c").read_text() != "/* my fix */\n"
    assert not (out / "notes.txt").exists()


def test_refuses_a_directory_porter_did_not_write(plan, tmp_path):
    out = tmp_path / "src"
    out.mkdir()
    (out / "main.c").write_text("int main(void) { return 0; }\n")
    with pytest.raises(PorterError, match="not a tree porter emitted"):
        emit_tree(plan, out)
    assert (out / "main.c").read_text().startswith("int main")


def test_failed_emit_leaves_nothing(dde_tree, tmp_path, monkeypatch):
    import porter.emit as emit
    out = tmp_path / "t"
    plan = fixture_plan(dde_tree, FIX, FIX_H)

    def broken(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(emit.os, "rename", broken)
    with pytest.raises(PorterError, match="writing the tree failed \\(disk full\\).*nothing was changed"):
        emit_tree(plan, out)
    assert list(tmp_path.iterdir()) == []          # no tree, no temporary left behind


def test_truncated_source_is_refused(dde_tree, fixture_tree):
    src = fixture_tree / FIX[0]
    src.write_bytes(src.read_bytes()[:1500])       # cut mid-function
    with pytest.raises(ScanError, match=r"drivers/misc/porterfix.c does not parse as C[\s\S]*porterfix.c:\d+:\d+: "):
        fixture_plan(dde_tree, FIX, FIX_H, root=fixture_tree)


def test_non_c_source_is_refused(dde_tree, fixture_tree):
    (fixture_tree / FIX[0]).write_text("#!/bin/sh\necho this is a shell script\n")
    with pytest.raises(ScanError, match="does not parse as C"):
        fixture_plan(dde_tree, FIX, FIX_H, root=fixture_tree)


def test_missing_source_is_refused(dde_tree, fixture_tree):
    (fixture_tree / FIX[0]).unlink()
    with pytest.raises(ScanError, match="porterfix.c: missing"):
        fixture_plan(dde_tree, FIX, FIX_H, root=fixture_tree)


NEWER_LINUX = """#include <linux/netdevice.h>
#include <linux/skbuff.h>

/* written against a newer Linux than the DDE's: one API the DDE lacks, one whose signature changed */
static struct sk_buff *porterfix_newer_rx(struct net_device *dev, struct napi_struct *napi)
{
	struct sk_buff *skb;

	skb = porterfix_alloc_skb_newer(dev, 128);
	if (napi_schedule_prep(napi, dev))
		return NULL;
	return skb;
}
"""


def test_source_for_another_linux_names_what_the_dde_lacks(dde_tree, fixture_tree):
    (fixture_tree / FIX[0]).write_text(NEWER_LINUX)
    plan = fixture_plan(dde_tree, FIX, FIX_H, root=fixture_tree)
    notes = {d.name: (d.note, [str(u) for u in d.uses]) for d in plan.unmapped}
    # the function the DDE's headers lack, with where it is used (its int result assigned
    # to a pointer is the same gap, not another error)
    assert notes["porterfix_alloc_skb_newer"][0] == "no declaration in the DDE's headers (used implicitly)"
    assert any(u.startswith("drivers/misc/porterfix.c:9:") for u in notes["porterfix_alloc_skb_newer"][1])
    # the changed API: its call, and the DDE's own declaration with its place
    note, uses = notes["napi_schedule_prep"]
    assert re.fullmatch(r"called with 2 argument\(s\); the DDE's declaration \(libdde[-_]linux26/\S+/netdevice.h:\d+\) "
                        r"takes 1", note), note
    assert any(u.startswith("drivers/misc/porterfix.c:10:") for u in uses)
    with pytest.raises(PorterError, match=r"porterfix.c:10:\d+: napi_schedule_prep"):
        plan.raise_if_unmapped()
