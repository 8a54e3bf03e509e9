"""Command line: porter fetch | scan | port | check."""

import argparse
import sys
from pathlib import Path

from . import PorterError


def cmd_fetch(args) -> int:
    from .fetch import fetch_dde, fetch_linux
    from .manifest import load_manifest
    sources = args.source or []
    if args.hurd:
        return fetch_hurd(sources)
    if len(sources) > 1:
        raise PorterError("--from takes one path with --version or --dde (several only with --hurd)")
    args.source = sources[0] if sources else None
    if args.dde:
        tree = fetch_dde(args.source, args.rev)
        print(f"DDE: {tree.root} ({', '.join(f'{k}={v}' for k, v in tree.origin.items())})")
        return 0
    if not args.version:
        raise PorterError("porter fetch needs --version V (Linux) or --dde")
    got = fetch_linux(load_manifest(), args.version, args.source)
    print(f"Linux {got.version}: {got.files} files verified (sha256) from {got.origin} -> {got.path}")
    return 0


def fetch_hurd(sources: list[Path]) -> int:
    """GNU Mach, MIG, the Hurd and Debian's glibc/gcc/libpciaccess for the generation of
    every DDE tree in the cache (the DDE decides which set, never a flag)."""
    from .dde import cached_dde_trees
    from .hurd import generation
    from .hurd.sets import load_sets
    from .hurd.sources import describe, fetch_set
    trees = cached_dde_trees()
    if not trees:
        raise PorterError("no DDE tree in porter's cache: run `porter fetch --dde` first; "
                          "its generation decides which Hurd sources to fetch")
    sets = load_sets()
    done = set()
    for tree in trees:
        gen = generation.of_dde_tree(tree.root)
        if gen.name in done:
            continue
        done.add(gen.name)
        got = fetch_set(sets.for_generation(gen.name), sources)
        print(f"Hurd sources for the {gen.name} generation (DDE {tree.root.parent.name}: {gen.evidence}):")
        for line in describe(got):
            print(f"  {line}")
    return 0


def cmd_scan(args) -> int:
    from .pipeline import load_inputs
    from .pipeline import scan_inputs as scan_bundle
    from .plan import plan_port
    from .report import print_scan
    inputs = load_inputs(args.bundle, args.version)
    scanned = scan_bundle(inputs)
    plan = plan_port(inputs, scanned)
    return print_scan(plan, as_json=args.json)


def cmd_port(args) -> int:
    from .pipeline import load_inputs
    from .pipeline import scan_inputs as scan_bundle
    from .plan import plan_port
    from .emit import emit_tree
    inputs = load_inputs(args.bundle, args.version)
    plan = plan_port(inputs, scan_bundle(inputs))
    plan.raise_if_unmapped()
    result = emit_tree(plan, Path(args.out), force=args.force)
    print(result.summary())
    return 0


def cmd_check(args) -> int:
    from .check import check_tree
    return check_tree(Path(args.tree), junit=args.junit, compilers=args.cc, target=args.target)


def cmd_build(args) -> int:
    from .build import build_host
    from .dde import require_dde
    from .dde_build import DdeBuildError, ensure_build
    dde = require_dde()
    try:
        dde_build = ensure_build(dde, log=lambda m: print(m, file=sys.stderr))
    except DdeBuildError as e:
        raise PorterError(str(e)) from None
    host = build_host(Path(args.tree), dde, dde_build, Path(args.output) if args.output else None)
    print(host.executable)
    return 0


def cmd_test(args) -> int:
    import os
    import subprocess
    from . import PROJECT_ROOT
    suites = {"qemu": ["test_driver_host.py", "test_virtio_net.py"], "sim": ["test_virtio_net_sim.py"]}
    harness = PROJECT_ROOT / "tests" / "harness"
    if not harness.is_dir():
        raise PorterError(f"{harness}: the harness tests are not here; run porter from its checkout")
    tree = Path(args.tree).resolve()
    if not (tree / ".porter-manifest.json").is_file():
        raise PorterError(f"{tree} is not a tree porter emitted")
    files = [str(harness / f) for f in suites[args.device]]
    env = dict(os.environ, PORTER_TEST_TREE=str(tree))
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files,
                            *args.pytest_args], cwd=PROJECT_ROOT, env=env)


def cmd_hurd_sysroot(args) -> int:
    """Build the i686-gnu sysroot for each cached DDE tree's generation (or the one named)."""
    from .dde import cached_dde_trees
    from .hurd import generation
    from .hurd.prepare import prepare_sysroot
    trees = cached_dde_trees()
    if not trees:
        raise PorterError("no DDE tree in porter's cache: run `porter fetch --dde` first")
    done = set()
    for tree in trees:
        gen = generation.of_dde_tree(tree.root).name
        if gen in done or (args.generation and gen != args.generation):
            continue
        done.add(gen)
        sysroot = prepare_sysroot(gen, tree, log=lambda m: print(m, file=sys.stderr))
        print(f"{gen}: {sysroot.sysroot}")
    if args.generation and args.generation not in done:
        raise PorterError(f"no DDE tree of the {args.generation} generation in porter's cache")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(args.version, Path(args.out), args.count)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="porter", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fetch", help="bring Linux sources or the DDE into porter's cache, verified")
    f.add_argument("--version", help="Linux release, e.g. 2.6.32")
    f.add_argument("--dde", action="store_true", help="fetch the Hurd's DDE instead of Linux")
    f.add_argument("--hurd", action="store_true",
                   help="fetch GNU Mach, MIG, the Hurd (git) and Debian's glibc, gcc and libpciaccess "
                        "sources for the generation of each cached DDE tree")
    f.add_argument("--from", dest="source", type=Path, action="append",
                   help="local Linux tree, release tarball or git directory; or a DDE git directory/tree; "
                        "with --hurd (repeatable): git directories or trees of gnumach, mig and hurd, or "
                        "directories holding them or Debian .dsc files")
    f.add_argument("--rev", help="with --dde and a git source: branch or commit (default: dde)")
    f.set_defaults(func=cmd_fetch)

    s = sub.add_parser("scan", help="list the kernel APIs a driver bundle uses and what porter does with each")
    s.add_argument("bundle")
    s.add_argument("--version", required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_scan)

    o = sub.add_parser("port", help="emit a Hurd DDE driver tree")
    o.add_argument("bundle")
    o.add_argument("--version", required=True)
    o.add_argument("--out", required=True)
    o.add_argument("--force", action="store_true", help="overwrite files edited by hand")
    o.set_defaults(func=cmd_port)

    c = sub.add_parser("check", help="compile an emitted tree against the DDE and list undefined symbols")
    c.add_argument("tree")
    c.add_argument("--junit", type=Path, help="write JUnit XML here")
    c.add_argument("--cc", action="append", choices=("gcc", "clang"),
                   help="compiler(s) to use (default: gcc; repeat for clang too)")
    c.add_argument("--target", choices=("linux", "hurd"), default="linux",
                   help="linux: the Linux-side sources against the DDE on this machine (default); "
                        "hurd: every file with the tree's own Makefile for i686-gnu, as the Hurd builds it")
    c.set_defaults(func=cmd_check)

    b = sub.add_parser("build", help="link a tree with the real DDE into a driver host the harness runs")
    b.add_argument("tree")
    b.add_argument("-o", "--output", help="executable to write (default: TREE.host/driver-host)")
    b.set_defaults(func=cmd_build)

    t = sub.add_parser("test", help="run the harness suite on a tree (built into a driver host) against a device")
    t.add_argument("tree")
    t.add_argument("--device", choices=("qemu", "sim"), default="qemu")
    t.set_defaults(pytest_args=[])    # what follows `--` goes to pytest (see main)
    t.set_defaults(func=cmd_test)

    h = sub.add_parser("hurd", help="the Hurd target: cross sysroot, toolchain, image")
    hsub = h.add_subparsers(dest="hurd_command", required=True)
    hs = hsub.add_parser("sysroot", help="build the i686-gnu sysroot (cross gcc, GNU Mach, MIG, Hurd, glibc "
                                         "headers, the libraries a DDE tree links) into porter's cache")
    hs.add_argument("--generation", choices=("2016", "2020"),
                    help="only this generation (default: that of every cached DDE tree)")
    hs.set_defaults(func=cmd_hurd_sysroot)

    d = sub.add_parser("demo", help="port, check and build virtio-net, then ping a kernel through it on QEMU")
    d.add_argument("--version", default="2.6.32")
    d.add_argument("--out", default="out/dde_virtio_net")
    d.add_argument("--count", type=int, default=5)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # argparse mishandles `--` after a subcommand; `porter test TREE -- -k x` passes `-k x` to pytest
    passthrough = []
    if argv[:1] == ["test"] and "--" in argv:
        argv, passthrough = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = build_parser().parse_args(argv)
    if passthrough:
        args.pytest_args = passthrough
    try:
        return args.func(args)
    except PorterError as e:
        print(f"porter: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
