"""porter matrix: every stage of every release in one table, with each failure's first error."""

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from porter.matrix import STAGES, Cell, Row, first_line, format_markdown, format_table, run_release, write_reports


def row(version, failed_at=None, error="", in_manifest=True):
    r = Row(version, in_manifest=in_manifest)
    state = "ok"
    for s in STAGES:
        if s == failed_at:
            r.cells[s] = Cell(s, "failed", 1.0, error, f"{error}\nmore detail")
            state = "not run"
        else:
            r.cells[s] = Cell(s, state, 0.5 if state == "ok" else 0.0)
    return r


def test_the_table_names_each_failing_cells_first_error_and_counts_the_passes():
    rows = [row("2.6.32"), row("2.6.33", "port", "netdev_uc_count: the DDE lacks it"),
            row("2.6.32.61", "harness", "test_mac_and_link: assert False", in_manifest=False)]
    table = format_table(rows).splitlines()
    assert table[1].split() == ["2.6.32"] + ["ok"] * 6
    assert table[2].split()[:7] == ["2.6.33", "ok", "ok", "FAIL", "-", "-", "-"]
    assert table[2].endswith("port: netdev_uc_count: the DDE lacks it")
    assert table[3].startswith("2.6.32.61 *") and table[3].endswith("harness: test_mac_and_link: assert False")
    assert "1 of 3 releases pass every stage" in table and table[-1].startswith("* not in porter's manifest")
    md = format_markdown("virtio-net", rows)
    assert "| 2.6.33 | ok | ok | FAIL | - | - | - | port: netdev_uc_count: the DDE lacks it |" in md
    assert "2.6.32.61 (not in manifest)" in md


def test_reports_json_markdown_and_junit(tmp_path):
    rows = [row("2.6.32"), row("2.6.33", "check", "virtio_net.c does not compile: error: x")]
    paths = write_reports("virtio-net", rows, tmp_path / "out")
    data = json.loads(paths[0].read_text())
    assert [r["ok"] for r in data["rows"]] == [True, False]
    assert data["rows"][1]["cells"]["check"] == {"status": "failed", "seconds": 1.0,
                                                 "error": "virtio_net.c does not compile: error: x",
                                                 "detail": "virtio_net.c does not compile: error: x\nmore detail"}
    suites = ET.parse(paths[2]).getroot().findall("testsuite")
    assert [s.get("failures") for s in suites] == ["0", "1"] and suites[1].get("skipped") == "2"
    failure = suites[1].find("testcase[@name='check']/failure")
    assert failure.get("message") == "virtio_net.c does not compile: error: x"
    assert paths[1].read_text().startswith("# porter matrix virtio-net")


def test_a_headline_that_ends_in_a_colon_takes_the_next_line():
    assert first_line("\n1 API(s) the DDE lacks:\n  netdev_uc_count (virtio_net.c:700)\n") == \
        "1 API(s) the DDE lacks: netdev_uc_count (virtio_net.c:700)"
    assert first_line("one\ntwo") == "one"


def test_a_release_stops_at_its_first_failing_stage(tmp_path):
    """A bundle the manifest does not list fails at the cache, with porter's own message; nothing after runs."""
    r = run_release("virtio-nope", "2.6.32", str(tmp_path), [])
    assert r.cells["cache"].status == "failed" and "virtio-nope" in r.cells["cache"].error
    assert [r.cells[s].status for s in STAGES[1:]] == ["not run"] * 5 and not r.ok


@pytest.mark.upstream
@pytest.mark.qemu
def test_matrix_runs_every_stage_for_a_release_on_qemu(linux_2_6_32, dde_tree, dde_build, qemu_available, tmp_path):
    out = tmp_path / "reports"
    r = subprocess.run([sys.executable, "-m", "porter", "matrix", "virtio-net", "--versions", "2.6.32",
                        "--out", str(out), "--", "-k", "test_mac_and_link"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[1].split() == ["2.6.32"] + ["ok"] * 6
    assert "2.6.32   harness  ok" in r.stderr                  # the progress lines
    cells = json.loads((out / "matrix.json").read_text())["rows"][0]["cells"]
    detail = cells["harness"]["detail"]                           # pytest's summary: the suite ran
    assert re.match(r"\d+ passed, \d+ deselected", detail), detail
