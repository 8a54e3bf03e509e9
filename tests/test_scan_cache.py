"""The scan cache and the stat memo: a warm run reads back exactly what a cold one computes,
and any change to what a result depends on computes it afresh."""

import os
import pickle

import pytest

from porter import scan_cache, statmemo
from porter.pipeline import load_inputs, scan_inputs


def test_a_write_changes_the_fingerprint_even_with_the_mtime_put_back(tmp_path):
    f = tmp_path / "a.h"
    f.write_text("int a;\n")
    before = statmemo.fingerprint([f])
    st = os.stat(f)
    f.write_text("int b;\n")                                   # same size, then the old mtime again
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert statmemo.fingerprint([f]) != before                 # ctime moved: no user can set it back
    assert statmemo.fingerprint([f], "other input") != statmemo.fingerprint([f])


def test_the_memo_recalls_what_was_remembered_and_survives_damage(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTER_CACHE", str(tmp_path))
    statmemo.remember("kind", "fp1", {"x": 1})
    assert statmemo.recall("kind", "fp1") == {"x": 1} and statmemo.recall("kind", "fp2") is None
    (tmp_path / "memo" / "kind.json").write_text("{not json")
    assert statmemo.recall("kind", "fp1") is None              # damaged: recomputed, never trusted
    statmemo.remember("kind", "fp3", True)
    assert statmemo.recall("kind", "fp3") is True


def test_tree_paths_sorts_as_pathlib_and_prunes(tmp_path):
    for p in ("b/x", "a/build/y", "a/z", "a.c"):
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("")
    got = statmemo.tree_paths(tmp_path, lambda parts: parts[-1] == "build")
    assert got == [str(p) for p in sorted(tmp_path.rglob("*")) if "build" not in p.parts[len(tmp_path.parts):]]


@pytest.mark.upstream
def test_a_warm_scan_is_the_cold_scan_and_a_changed_input_is_scanned_afresh(linux_2_6_32, dde_tree):
    inputs = load_inputs("virtio-net", "2.6.32")
    cold = scan_inputs(inputs, use_cache=False)
    scan_inputs(inputs)                                        # stored (or already there)
    key = scan_cache.scan_key(inputs, {api: r.arg for r in inputs.rules.by_action("heap-dma") for api in r.apis},
                              tuple(api for r in inputs.rules.by_action("unique-initcall") for api in r.apis))
    entry = scan_cache.cache_dir() / f"{key}.pickle"
    assert entry.is_file()
    assert scan_inputs(inputs) == cold
    # a rule's input to the scan is part of the key
    assert scan_cache.scan_key(inputs, {"sg_set_buf": 2}, ()) != key
    # a damaged entry is scanned afresh and replaced
    entry.write_bytes(b"\x80\x05 not a pickle")
    assert scan_inputs(inputs) == cold
    assert pickle.loads(entry.read_bytes()) is not None
