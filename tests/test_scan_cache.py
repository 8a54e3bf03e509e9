"""Scan results are cached in porter's cache, keyed by everything that can change them:
a re-run that changes nothing does not parse again, and a changed input does; the stat memo
(the DDE checks' answers kept against their files' stat) likewise."""

import os
import shutil

import pytest

from porter import pipeline, statmemo
from porter.pipeline import scan_inputs

from fixture_plans import FIXTURE_LINUX, fixture_inputs

FIX = ["drivers/misc/porterfix.c"]
FIX_H = ["include/linux/porterfix.h"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def no_parse(*args, **kwargs):
    raise AssertionError("parsed again")


def test_a_rerun_that_changes_nothing_does_not_parse(cache, dde_tree, monkeypatch):
    first = scan_inputs(fixture_inputs(dde_tree, FIX, FIX_H))
    assert len(list((cache / "scan").glob("*.pickle"))) == 1
    monkeypatch.setattr(pipeline, "scan_files", no_parse)
    again = scan_inputs(fixture_inputs(dde_tree, FIX, FIX_H))
    assert again == first


@pytest.mark.parametrize("change", ["source", "header", "rules"])
def test_a_changed_input_parses_again(cache, dde_tree, tmp_path, monkeypatch, change):
    root = tmp_path / "linux"
    shutil.copytree(FIXTURE_LINUX, root)
    scan_inputs(fixture_inputs(dde_tree, FIX, FIX_H, root=root))
    rule_paths = None
    if change == "source":
        with open(root / FIX[0], "a") as f:
            f.write("/* changed */\n")
    elif change == "header":
        with open(root / FIX_H[0], "a") as f:
            f.write("/* changed */\n")
    else:
        from porter.rules import RULES_DIR
        rules = tmp_path / "rules.toml"
        rules.write_text((RULES_DIR / "hurd-dde.toml").read_text().replace(
            'api = ["sg_set_buf", "sg_init_one"]\naction = "heap-dma"', 'api = ["sg_set_buf"]\naction = "heap-dma"'))
        rule_paths = [rules]
    calls = []
    real = pipeline.scan_files
    monkeypatch.setattr(pipeline, "scan_files", lambda *a, **k: calls.append(1) or real(*a, **k))
    scan_inputs(fixture_inputs(dde_tree, FIX, FIX_H, root=root, rule_paths=rule_paths))
    assert calls == [1]
    assert len(list((cache / "scan").glob("*.pickle"))) == 2


def test_an_unreadable_cache_entry_is_scanned_again(cache, dde_tree):
    first = scan_inputs(fixture_inputs(dde_tree, FIX, FIX_H))
    [entry] = (cache / "scan").glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    assert scan_inputs(fixture_inputs(dde_tree, FIX, FIX_H)) == first


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
