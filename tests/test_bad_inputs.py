"""Every bad input gets one line that names the problem and what to do, exit 2,
no traceback, and nothing half-written or lost.  One row per bad input; each row
builds its situation in a temporary cache and directory, runs the real command,
and checks the message and what is left on disk."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from porter.cache import linux_dir
from porter.dde import current_dde

IS_ROOT = os.geteuid() == 0
REAL_CACHE_DDE = None


def porter(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "porter", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


@dataclass
class Ctx:
    tmp: Path
    env: dict
    notes: dict = field(default_factory=dict)

    @property
    def cache(self) -> Path:
        return Path(self.env["PORTER_CACHE"])


def _real_linux(version="2.6.32") -> Path:
    root = linux_dir(version)
    if not (root / "origin.json").is_file():
        pytest.skip(f"Linux {version} not in porter's cache (run `porter fetch --version {version}`)")
    return root


def _real_dde():
    tree = current_dde()
    if tree is None:
        pytest.skip("no DDE tree in porter's cache (run `porter fetch --dde [--from PATH]`)")
    return tree


def with_linux(ctx: Ctx, version="2.6.32") -> Path:
    dest = ctx.cache / "linux" / version
    shutil.copytree(_real_linux(version), dest)
    return dest


def with_dde(ctx: Ctx) -> Path:
    """A copy of the current DDE tree in the row's own cache (as `porter fetch --dde` leaves it)."""
    tree = _real_dde()
    cached = tree.root.parent
    dest = ctx.cache / "dde" / cached.name
    shutil.copytree(cached, dest, symlinks=True, ignore=shutil.ignore_patterns("build-i386"))
    (ctx.cache / "dde" / "CURRENT").write_text(cached.name + "\n")
    return dest


def port_args(out: Path) -> list[str]:
    return ["port", "virtio-net", "--version", "2.6.32", "--out", str(out)]


def emitted_tree(ctx: Ctx) -> Path:
    with_linux(ctx)
    with_dde(ctx)
    out = ctx.tmp / "tree"
    r = porter(port_args(out), ctx.env, ctx.tmp)
    assert r.returncode == 0, r.stderr
    return out


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- the rows

@dataclass
class Row:
    name: str
    setup: Callable[[Ctx], list[str]]          # prepares the situation, returns porter's arguments
    message: str                               # regex the error line must match
    after: Callable[[Ctx], None] | None = None  # what must be true on disk afterwards
    usage: bool = False                        # an argparse usage error (its own two-line format)
    needs_root: bool = False


def _fetch_truncated(ctx):
    src = ctx.tmp / "linux-2.6.32"
    (src / "drivers" / "virtio").mkdir(parents=True)
    (src / "drivers" / "virtio" / "virtio.c").write_text("/* not the 2.6.32 file */\n")
    return ["fetch", "--version", "2.6.32", "--from", str(src)]


def _fetch_changed_file(ctx):
    src = ctx.tmp / "linux-2.6.32"
    shutil.copytree(_real_linux(), src, ignore=shutil.ignore_patterns("origin.json"))
    f = src / "drivers" / "net" / "virtio_net.c"
    f.write_bytes(f.read_bytes() + b"/* local change */\n")
    return ["fetch", "--version", "2.6.32", "--from", str(src)]


def _nothing_cached_at_all(ctx):
    assert not (ctx.cache / "linux").exists()


def _fetch_not_a_tarball(ctx):
    f = ctx.tmp / "linux-2.6.32.tar.xz"
    f.write_bytes(b"\x00garbage" * 100)
    return ["fetch", "--version", "2.6.32", "--from", str(f)]


def _fetch_dde_not_dde(ctx):
    d = ctx.tmp / "not-a-dde"
    (d / "libddekit").mkdir(parents=True)
    return ["fetch", "--dde", "--from", str(d)]


def _tampered_linux_cache(ctx):
    root = with_linux(ctx)
    with_dde(ctx)
    f = root / "drivers" / "virtio" / "virtio_ring.c"
    f.write_bytes(f.read_bytes().replace(b"BUG_ON", b"WARN_ON", 1))
    return port_args(ctx.tmp / "tree")


def _no_tree_written(ctx):
    assert not (ctx.tmp / "tree").exists()
    assert not list(ctx.tmp.glob(".tree.*"))


def _tampered_dde_cache(ctx):
    with_linux(ctx)
    dde = with_dde(ctx)
    victim = next((dde / "src").glob("libdde*linux26/lib/src/arch/l4/cli_sti.c"))
    victim.write_text(victim.read_text() + "\n/* changed in the cache */\n")
    return port_args(ctx.tmp / "tree")


def _rules(ctx, text):
    f = ctx.tmp / "extra.toml"
    f.write_text(text)
    return f


def _rules_unknown_key(ctx):
    f = _rules(ctx, '[[rule]]\nid = "x"\napi = "sg_set_buf"\naction = "rename"\nto = "y"\nwhy = "w"\nweight = 3\n')
    return port_args(ctx.tmp / "tree") + ["--rules", str(f)]


def _rules_not_toml(ctx):
    f = _rules(ctx, "[[rule]\nid = \n")
    return port_args(ctx.tmp / "tree") + ["--rules", str(f)]


def _two_rules_one_range(ctx):
    with_linux(ctx)
    with_dde(ctx)
    from porter.rules import RULES_DIR
    own = (RULES_DIR / "hurd-dde.toml").read_text()
    f = _rules(ctx, own + '\n[[rule]]\nid = "second-sg-set-buf"\napi = "sg_set_buf"\naction = "rename"\n'
                          'to = "other_sg_set_buf"\nwhy = "a second rule on the same calls"\n')
    return port_args(ctx.tmp / "tree") + ["--rules", str(f)]


def _out_under_a_file(ctx):
    with_linux(ctx)
    with_dde(ctx)
    (ctx.tmp / "afile").write_text("mine\n")
    return port_args(ctx.tmp / "afile" / "tree")


def _file_kept(ctx):
    assert (ctx.tmp / "afile").read_text() == "mine\n"


def _out_symlink(ctx):
    with_linux(ctx)
    with_dde(ctx)
    (ctx.tmp / "real").mkdir()
    (ctx.tmp / "link").symlink_to(ctx.tmp / "real")
    return port_args(ctx.tmp / "link")


def _link_kept(ctx):
    assert (ctx.tmp / "link").is_symlink() and list((ctx.tmp / "real").iterdir()) == []


def _mount_tmpfs(ctx, name, options):
    d = ctx.tmp / name
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "porter-test", str(d)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    ctx.notes.setdefault("mounts", []).append(d)
    return d


def _out_unwritable(ctx):
    with_linux(ctx)
    with_dde(ctx)
    ro = _mount_tmpfs(ctx, "ro", "ro,size=1m")
    return port_args(ro / "tree")


def _out_full_disk(ctx):
    with_linux(ctx)
    with_dde(ctx)
    small = _mount_tmpfs(ctx, "small", "size=96k")
    return port_args(small / "tree")


def _nothing_on_small_disk(ctx):
    small = ctx.tmp / "small"
    assert list(small.iterdir()) == [], list(small.iterdir())


def _out_not_porter(ctx):
    with_linux(ctx)
    with_dde(ctx)
    d = ctx.tmp / "tree"
    d.mkdir()
    (d / "notes.txt").write_text("mine\n")
    return port_args(d)


def _notes_kept(ctx):
    assert snapshot(ctx.tmp / "tree") == {"notes.txt": b"mine\n"}


def _hand_edited(ctx):
    out = emitted_tree(ctx)
    (out / "virtio_net.c").write_text("/* my fix */\n")
    ctx.notes["before"] = snapshot(out)
    return port_args(out)


def _hand_edit_kept(ctx):
    assert snapshot(ctx.tmp / "tree") == ctx.notes["before"]


def _killed_emit_leftovers(ctx):
    """A port killed between its two renames leaves the old tree aside and a half-written new one."""
    out = emitted_tree(ctx)
    whole = snapshot(out)
    aside = ctx.tmp / ".tree.old-killed"
    aside.mkdir()
    os.rename(out, aside / "tree")
    half = ctx.tmp / ".tree.new-killed"
    half.mkdir()
    (half / "virtio_net.c").write_text("/* half */")
    ctx.notes["whole"] = whole
    return ["check", str(out)]      # the tree is gone: check says so, without touching anything


def _tree_not_there(ctx):
    assert not (ctx.tmp / "tree").exists()
    # the next port puts the complete old tree back and clears the half-written one
    r = porter(port_args(ctx.tmp / "tree"), ctx.env, ctx.tmp)
    assert r.returncode == 0, r.stderr
    assert snapshot(ctx.tmp / "tree") == ctx.notes["whole"]
    assert not list(ctx.tmp.glob(".tree.*"))


def _not_a_porter_tree(cmd):
    def setup(ctx):
        d = ctx.tmp / "plain"
        d.mkdir()
        (d / "main.c").write_text("int main(void) { return 0; }\n")
        return [cmd, str(d)] if cmd != "check-hurd" else ["check", str(d), "--target", "hurd"]
    return setup


def _old_tree_for_hurd(ctx):
    d = ctx.tmp / "old"
    d.mkdir()
    (d / ".porter-manifest.json").write_text(json.dumps({"generator": "porter", "files": {}}))
    return ["check", str(d), "--target", "hurd"]


def _missing_toolchain(ctx):
    with_dde(ctx)
    bin_dir = ctx.tmp / "bin"
    bin_dir.mkdir()
    for tool in ("git", "make", "gcc", "nm", "dpkg"):    # a machine without flex, bison, autoconf...
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    ctx.env["PATH"] = f"{Path(sys.executable).parent}:{bin_dir}"
    return ["hurd", "sysroot"]


def _fetch_hurd_no_dde(ctx):
    return ["fetch", "--hurd"]


ROWS = [
    Row("unknown release", lambda c: ["fetch", "--version", "9.9.9"],
        r"unknown Linux version '9\.9\.9': .*manifest\.toml knows 2\.6\.28"),
    Row("fetch from a missing path", lambda c: ["fetch", "--version", "2.6.32", "--from", str(c.tmp / "nope")],
        r"--from .*nope: no such file or directory", _nothing_cached_at_all),
    Row("truncated sources", _fetch_truncated,
        r"Linux 2\.6\.32: the source does not hold this release: \d+ of its 19 files missing .*; 1 with "
        r"another SHA-256 \(drivers/virtio/virtio\.c", _nothing_cached_at_all),
    Row("a source file with a local change", _fetch_changed_file,
        r"1 with another SHA-256 \(drivers/net/virtio_net\.c: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}\)",
        _nothing_cached_at_all),
    Row("not a tarball", _fetch_not_a_tarball, r"linux-2\.6\.32\.tar\.xz: not a readable tarball",
        _nothing_cached_at_all),
    Row("a DDE that is not one", _fetch_dde_not_dde, r"is not a DDE tree: expected libdde-linux26/.*Give"),
    Row("fetch without what", lambda c: ["fetch"], r"needs --version RELEASE \(Linux\), --from TREE, --dde or --hurd"),
    Row("two --from for Linux", lambda c: ["fetch", "--version", "2.6.32", "--from", "a", "--from", "b"],
        r"--from takes one path with --version or --dde"),
    Row("Hurd sources before any DDE", _fetch_hurd_no_dde, r"no DDE tree in porter's cache: run `porter fetch --dde`"),
    Row("unknown bundle", lambda c: ["scan", "virtio-foo", "--version", "2.6.32"],
        r"argument BUNDLE: invalid choice: 'virtio-foo'", usage=True),
    Row("unknown device", lambda c: ["test", "tree", "--device", "kvm"], r"invalid choice: 'kvm'", usage=True),
    Row("release not in the manifest", lambda c: ["port", "virtio-net", "--version", "2.6.99", "--out", str(c.tmp / "t")],
        r"unknown Linux version '2\.6\.99'"),
    Row("release not fetched", lambda c: port_args(c.tmp / "tree"),
        r"Linux 2\.6\.32 is not in porter's cache .*run `porter fetch --version 2\.6\.32`"),
    Row("no DDE fetched", lambda c: (with_linux(c), port_args(c.tmp / "tree"))[1],
        r"no DDE tree: run `porter fetch --dde`"),
    Row("a --dde that names nothing", lambda c: (with_linux(c), with_dde(c), port_args(c.tmp / "tree") + ["--dde", "zzz"])[2],
        r"--dde zzz: not a cached DDE tree \(cached: .+\), a generation"),
    Row("a tampered Linux file in the cache", _tampered_linux_cache,
        r"virtio_ring\.c: changed since it was fetched \(sha256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}\); "
        r"run `porter fetch --version 2\.6\.32`", _no_tree_written),
    Row("a tampered DDE tree in the cache", _tampered_dde_cache,
        r"cli_sti\.c: the cached DDE tree changed since it was fetched .*run `porter fetch --dde`", _no_tree_written),
    Row("a rule with an unknown key", _rules_unknown_key,
        r"extra\.toml:1: rule 'x': unknown key\(s\) weight for action 'rename'"),
    Row("a rule file that is not TOML", _rules_not_toml, r"extra\.toml: not valid TOML"),
    Row("two rules on one range", _two_rules_one_range,
        r"rules '(sg-set-buf-phys|second-sg-set-buf)' and '(sg-set-buf-phys|second-sg-set-buf)' both edit "
        r"'sg_set_buf'.*make one rule's api or action narrower", _no_tree_written),
    Row("--out under a file", _out_under_a_file, r"--out .*afile/tree: .*afile is a file, not a directory",
        _file_kept),
    Row("--out on a symlink", _out_symlink, r"--out .*link is a symbolic link.*give the directory it points to",
        _link_kept),
    Row("--out unwritable", _out_unwritable, r"--out .*ro/tree: cannot create it in .*\(Read-only file system\)",
        needs_root=True),
    Row("--out on a full disk", _out_full_disk,
        r"--out .*small/tree: writing the tree failed \(No space left on device.*free some space and run again "
        r"\(nothing was changed\)", _nothing_on_small_disk, needs_root=True),
    Row("--out an existing directory porter did not write", _out_not_porter,
        r"tree exists and is not a tree porter emitted \(no \.porter-manifest\.json\)", _notes_kept),
    Row("a hand-edited tree", _hand_edited, r"has changes porter did not make \(virtio_net\.c \(edited\)\).*--force",
        _hand_edit_kept),
    Row("a tree a killed port left aside", _killed_emit_leftovers, r"tree is not a tree porter emitted",
        _tree_not_there),
    Row("check of a plain directory", _not_a_porter_tree("check"), r"plain is not a tree porter emitted"),
    Row("Hurd check of a plain directory", _not_a_porter_tree("check-hurd"), r"plain is not a tree porter emitted"),
    Row("build of a plain directory", _not_a_porter_tree("build"), r"plain is not a tree porter emitted"),
    Row("test of a plain directory", _not_a_porter_tree("test"), r"plain is not a tree porter emitted.*porter port"),
    Row("a tree from a porter without the Hurd glue", _old_tree_for_hurd,
        r"porting\.json does not say which Hurd generation.*re-emit the tree"),
    Row("a missing toolchain", _missing_toolchain,
        r"building the Hurd sysroot needs .*bison.*flex.*: apt-get install .*scripts/install-debian-deps --hurd"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_bad_input(row, tmp_path):
    if row.needs_root and not IS_ROOT:
        pytest.skip("needs root (a tmpfs mount)")
    ctx = Ctx(tmp_path, {k: v for k, v in os.environ.items() if k != "PORTER_DDE_TREE"}
              | {"PORTER_CACHE": str(tmp_path / "cache")})
    (tmp_path / "cache").mkdir()
    try:
        r = porter(row.setup(ctx), ctx.env, tmp_path)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert "Traceback" not in r.stderr, r.stderr
        assert r.returncode == 2, (r.returncode, r.stderr)
        errors = [line for line in lines if "error:" in line]
        assert len(errors) == 1, r.stderr
        if row.usage:
            assert lines[0].startswith("usage: porter") and lines[-1] == errors[0]
        else:
            assert lines == errors and errors[0].startswith("porter: error: "), r.stderr
        import re
        assert re.search(row.message, errors[0]), errors[0]
        if row.after:
            row.after(ctx)
    finally:
        for d in reversed(ctx.notes.get("mounts", [])):
            subprocess.run(["umount", str(d)], capture_output=True)


def test_there_are_at_least_25_rows():
    assert len(ROWS) >= 25 and len({r.name for r in ROWS}) == len(ROWS)


# ---------------------------------------------------------------- the harness's failures, one line each

def test_a_crashing_driver_host_is_one_line(tmp_path, monkeypatch, capsys):
    """A driver host that dies at start-up: DriverHostDied says so; the CLI prints it on one line, exit 2."""
    from porter import cli
    from porter.harness.driver_host import DriverHost, DriverHostDied
    from porter.harness.machine import Machine
    from porter.harness.memory import GuestMemory
    crash = tmp_path / "crash.c"
    crash.write_text("#include <signal.h>\nint main(void) { raise(SIGSEGV); return 0; }\n")
    exe = tmp_path / "crash"
    subprocess.run(["gcc", "-o", str(exe), str(crash)], check=True)
    with pytest.raises(DriverHostDied, match="driver host killed by SIGSEGV") as died:
        DriverHost(exe, Machine(GuestMemory(1 << 20)), ready_timeout=10)

    def failing(args):
        raise died.value
    monkeypatch.setattr(cli, "cmd_demo", failing)
    monkeypatch.setattr(sys, "argv", ["porter", "demo"])
    assert cli.main(["demo"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 1 and err[0].startswith("porter: error: DriverHostDied: ") and "SIGSEGV" in err[0]


def test_a_device_that_never_answers_is_one_line(tmp_path, monkeypatch, capsys):
    """A QEMU that starts but never answers: the backend gives up after its timeout, the CLI says so once."""
    from porter import cli
    from porter.harness.qemu import QemuDevice, QemuError
    silent = tmp_path / "qemu-silent"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    with pytest.raises(QemuError) as never:
        QemuDevice(qemu=str(silent), start_timeout=2)

    def failing(args):
        raise never.value
    monkeypatch.setattr(cli, "cmd_demo", failing)
    assert cli.main(["demo"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 1 and err[0].startswith("porter: error: Qemu")


def test_interrupted_emit_keeps_the_old_tree_whole(tmp_path, monkeypatch):
    """An emit interrupted mid-write (Ctrl-C) leaves the previous tree exactly as it was."""
    from porter.emit import emit_tree
    from porter.pipeline import load_inputs, scan_inputs
    from porter.plan import plan_port
    _real_linux()
    _real_dde()
    plan = plan_port(inputs := load_inputs("virtio-net", "2.6.32"), scan_inputs(inputs))
    out = tmp_path / "tree"
    emit_tree(plan, out)
    before = snapshot(out)
    (out / ".porter-manifest.json").write_text((out / ".porter-manifest.json").read_text())
    calls = {"n": 0}
    real = Path.write_bytes

    def interrupt_after_three(self, data):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(self, data)
    monkeypatch.setattr(Path, "write_bytes", interrupt_after_three)
    changed = plan_port(inputs, scan_inputs(inputs))
    changed.edits[next(iter(changed.edits))].clear()      # a different tree, so emit must rewrite
    with pytest.raises(KeyboardInterrupt):
        emit_tree(changed, out, force=True)
    monkeypatch.undo()
    assert snapshot(out) == before and not list(tmp_path.glob(".tree.*"))
