"""`porter matrix`: every release of a bundle through every stage, in parallel, in one table.

A row per release, a cell per stage: the cache (the release's files present
and their hashes right), scan, port, check (compile and link-check against
the DDE), build (the driver host) and harness (the bundle's suite on QEMU's
device). A release stops at its first failing stage, and the cell names that
stage's first error. The DDE is built once, before the releases start; each
release runs in a worker process of its own, so they use every core.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import PorterError

STAGES = ("cache", "scan", "port", "check", "build", "harness")


@dataclass
class Cell:
    stage: str
    status: str = "not run"         # ok, failed, not run
    seconds: float = 0.0
    error: str = ""                 # the first error, one line
    detail: str = ""                # what the stage said, for the JUnit XML


@dataclass
class Row:
    version: str
    in_manifest: bool = True
    cells: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.cells[s].status == "ok" for s in STAGES if s in self.cells)

    def first_failure(self) -> Cell | None:
        return next((c for c in self.cells.values() if c.status == "failed"), None)


def first_line(text: str) -> str:
    """The first line that says something; one that ends in a colon takes the next one with it."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def _check_error(result) -> str:
    for c in result.compiles:
        if not c.ok:
            err = next((line for line in c.output.splitlines() if "error" in line), first_line(c.output))
            return f"{c.source} does not compile: {err.strip()}"
    sym, users = next(iter(result.undefined.items()))
    return f"{len(result.undefined)} unexplained undefined symbols, first {sym} (needed by {', '.join(users)})"


def _harness_error(junit: Path, output: str) -> str:
    """The first failing test and its message, from pytest's JUnit XML (else its output)."""
    try:
        for case in ET.parse(junit).getroot().iter("testcase"):
            for kind in ("failure", "error"):
                bad = case.find(kind)
                if bad is not None:
                    return f"{case.get('name')}: {first_line(bad.get('message') or bad.text or kind)}"
    except (OSError, ET.ParseError):
        pass
    tail = [line for line in output.splitlines() if line.strip()]
    return tail[-1] if tail else "the harness did not run"


def run_release(bundle: str, version: str, workdir: str, harness_args: list[str], progress=None) -> Row:
    """One release through the stages, in this process; never raises."""
    from .build import build_host
    from .check import format_table, run_check
    from .dde import require_dde
    from .dde_build import ensure_build
    from .emit import emit_tree
    from .pipeline import load_inputs, scan_inputs
    from .plan import plan_port
    from .suites import harness_command
    from .tree import tree_dde_libraries

    row = Row(version)
    out = Path(workdir) / version
    state: dict = {}

    def cache():
        state["inputs"] = load_inputs(bundle, version)
        row.in_manifest = getattr(state["inputs"], "in_manifest", True)

    def scan():
        state["scan"] = scan_inputs(state["inputs"])

    def port():
        plan = plan_port(state["inputs"], state["scan"])
        plan.raise_if_unmapped()
        return emit_tree(plan, out / "tree", force=False).summary()

    def check():
        dde = require_dde()
        state["dde"], state["dde_build"] = dde, ensure_build(dde, log=lambda m: None)
        result = run_check(out / "tree", dde, state["dde_build"].symbols_for(tree_dde_libraries(out / "tree")))
        if not result.ok:
            raise PorterError(_check_error(result) + "\n" + format_table(result))
        return f"{len(result.compiles)} sources compile, 0 unexplained symbols"

    def build():
        host = build_host(out / "tree", state["dde"], state["dde_build"], out / "driver-host", log=lambda m: None)
        return str(host.executable)

    def harness():
        import subprocess
        junit = out / "harness.xml"
        argv, env = harness_command(out / "tree", "qemu", [*harness_args, f"--junitxml={junit}"])
        from . import DATA_ROOT
        r = subprocess.run(argv, cwd=DATA_ROOT, env=env, capture_output=True, text=True)
        summary = first_line("\n".join(reversed(r.stdout.splitlines())))
        if r.returncode != 0:
            raise PorterError(_harness_error(junit, r.stdout + r.stderr) + "\n" + r.stdout[-4000:])
        return summary

    steps = {"cache": cache, "scan": scan, "port": port, "check": check, "build": build, "harness": harness}
    failed = False
    for stage in STAGES:
        cell = row.cells.setdefault(stage, Cell(stage))
        if failed:
            continue
        t0 = time.monotonic()
        try:
            cell.detail = steps[stage]() or ""
            cell.status = "ok"
        except Exception as e:            # a cell reports any failure; the matrix goes on
            failed = True
            cell.status = "failed"
            text = str(e) if isinstance(e, PorterError) else "".join(traceback.format_exception_only(type(e), e))
            cell.error, cell.detail = first_line(text) or type(e).__name__, text
        cell.seconds = time.monotonic() - t0
        if progress is not None:
            progress.put((version, stage, cell.status, cell.seconds, cell.error))
    return row


def run_matrix(bundle: str, versions: list[str], jobs: int, harness_args: list[str], log=print) -> list[Row]:
    from .dde import require_dde
    from .dde_build import DdeBuildError, ensure_build
    try:                                   # once, before the workers would each try
        ensure_build(require_dde(), log=lambda m: log(f"dde: {m}"))
    except DdeBuildError as e:
        raise PorterError(str(e)) from None
    workdir = tempfile.mkdtemp(prefix=f"porter-matrix-{bundle}-")
    try:
        with multiprocessing.Manager() as manager:
            progress = manager.Queue()
            ctx = multiprocessing.get_context("spawn")   # no threads or locks inherited mid-flight
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                futures = {v: pool.submit(run_release, bundle, v, workdir, harness_args, progress)
                           for v in versions}
                pending = set(versions)
                while pending:
                    _drain(progress, log)
                    for v in list(pending):
                        if futures[v].done():
                            pending.discard(v)
                    time.sleep(0.1)
                _drain(progress, log)
                return [futures[v].result() for v in versions]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _drain(progress, log) -> None:
    import queue
    while True:
        try:
            version, stage, status, seconds, error = progress.get_nowait()
        except queue.Empty:
            return
        log(f"{version:8} {stage:8} {status}" + (f" ({seconds:.1f}s)" if seconds else "")
            + (f": {error}" if error else ""))


# -- reports

def _mark(cell: Cell) -> str:
    return {"ok": "ok", "failed": "FAIL", "not run": "-"}[cell.status]


def format_table(rows: list[Row]) -> str:
    width = max(len("release"), *(len(r.version) + (0 if r.in_manifest else 2) for r in rows))
    lines = [f"{'release':{width}}  " + "  ".join(f"{s:7}" for s in STAGES) + "  first error"]
    for r in rows:
        name = r.version + ("" if r.in_manifest else " *")
        bad = r.first_failure()
        lines.append((f"{name:{width}}  " + "  ".join(f"{_mark(r.cells[s]):7}" for s in STAGES)
                      + (f"  {bad.stage}: {bad.error}" if bad else "")).rstrip())
    passed = sum(1 for r in rows if r.ok)
    lines.append(f"{passed} of {len(rows)} releases pass every stage")
    if any(not r.in_manifest for r in rows):
        lines.append("* not in porter's manifest (fetched with --from)")
    return "\n".join(lines)


def format_markdown(bundle: str, rows: list[Row]) -> str:
    out = [f"# porter matrix {bundle}", "", "| release | " + " | ".join(STAGES) + " | first error |",
           "|---|" + "---|" * (len(STAGES) + 1)]
    for r in rows:
        bad = r.first_failure()
        out.append(f"| {r.version}{'' if r.in_manifest else ' (not in manifest)'} | "
                   + " | ".join(_mark(r.cells[s]) for s in STAGES)
                   + f" | {(bad.stage + ': ' + bad.error).replace('|', '/') if bad else ''} |")
    return "\n".join(out) + "\n"


def write_junit(bundle: str, rows: list[Row], path: Path) -> None:
    suites = ET.Element("testsuites", name=f"porter-matrix-{bundle}")
    for r in rows:
        suite = ET.SubElement(suites, "testsuite", name=f"{bundle}-{r.version}", tests=str(len(STAGES)),
                              failures=str(sum(1 for c in r.cells.values() if c.status == "failed")),
                              skipped=str(sum(1 for c in r.cells.values() if c.status == "not run")))
        for s in STAGES:
            c = r.cells[s]
            case = ET.SubElement(suite, "testcase", classname=f"{bundle}.{r.version}", name=s,
                                 time=f"{c.seconds:.3f}")
            if c.status == "failed":
                ET.SubElement(case, "failure", message=c.error).text = c.detail
            elif c.status == "not run":
                ET.SubElement(case, "skipped", message="an earlier stage failed")
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def write_reports(bundle: str, rows: list[Row], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "matrix.json", out / "matrix.md", out / "matrix.xml"]
    data = {"bundle": bundle, "rows": [{"version": r.version, "in_manifest": r.in_manifest, "ok": r.ok,
                                        "cells": {s: {k: v for k, v in asdict(c).items() if k != "stage"}
                                                  for s, c in r.cells.items()}} for r in rows]}
    paths[0].write_text(json.dumps(data, indent=1) + "\n")
    paths[1].write_text(format_markdown(bundle, rows))
    write_junit(bundle, rows, paths[2])
    return paths


def cmd_matrix(args) -> int:
    from .manifest import load_manifest
    manifest = load_manifest()
    releases = list(manifest.releases)
    versions = args.versions or releases
    jobs = args.jobs or max(1, os.cpu_count() or 1)
    rows = run_matrix(args.bundle, versions, jobs, args.pytest_args,
                      log=lambda m: print(m, file=sys.stderr, flush=True))
    paths = write_reports(args.bundle, rows, args.out)
    if args.json:
        print(paths[0].read_text(), end="")
    else:
        print(format_table(rows))
        print(f"reports: {', '.join(str(p) for p in paths)}")
    return 0 if all(r.ok for r in rows) else 1
