"""Scan results are cached in porter's cache, keyed by everything that can change them:
a re-run that changes nothing does not parse again, and a changed input does."""

import shutil

import pytest

from porter import pipeline
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
