"""The real libdde_linux26 on ddekit-linux: the DDE's own virt_to_phys gives
kmalloc memory an address inside the memfd arena, and fails for the stack."""

import subprocess
from pathlib import Path

from porter.build import compile_host_side, link_dde_program
from porter import SHIMS_DIR
from porter.compile import compiler_flags

C = Path(__file__).parent / "c" / "dde"


def test_virt_to_phys_through_the_dde(dde_tree, dde_build, tmp_path):
    kernel_obj = tmp_path / "vtp_kernel.o"
    r = subprocess.run(["gcc", "-c", str(C / "vtp_kernel.c"), "-o", str(kernel_obj),
                        *compiler_flags(dde_tree, tmp_path, "vtp_kernel", "gcc")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    exe = tmp_path / "vtp"
    link_dde_program([kernel_obj, *compile_host_side(dde_tree, [C / "vtp_main.c"], tmp_path)], dde_build, exe)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "porter-vtp: 0 failures" in out
    assert "doesn't exist" in out                 # the DDE's own complaint about the stack address


SHIM_SOURCES = ("porter_gfp.c", "porter_netdevice.c", "porter_slab.c")


def test_gap_shims_on_the_real_dde(dde_tree, dde_build, tmp_path):
    """porter's shims, compiled as a tree compiles them, do on the DDE what their rules promise:
    the TX unlock wakes a queue its holder completed, the address-list helpers walk both
    list forms, whole-page kzalloc is page-aligned and freed, and porter_kfree_skb frees the
    page the DDE's kfree_skb keeps."""
    objs = []
    for src in [C / "shims_kernel.c", *(SHIMS_DIR / "src" / s for s in SHIM_SOURCES)]:
        obj = tmp_path / f"{src.stem}.o"
        r = subprocess.run(["gcc", "-c", str(src), "-o", str(obj),
                            *compiler_flags(dde_tree, SHIMS_DIR, src.stem, "gcc")],
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        objs.append(obj)
    exe = tmp_path / "shims"
    link_dde_program([*objs, *compile_host_side(dde_tree, [C / "shims_main.c"], tmp_path)], dde_build, exe)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    out = run.stdout + run.stderr
    assert "porter-shims: 0 failures" in out, out
    assert run.returncode == 0, out
