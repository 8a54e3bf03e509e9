"""porter: port Linux 2.6 virtio drivers onto the GNU Hurd's DDE, check the trees
for Linux and for the Hurd, and run them in a harness against real virtio devices."""

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
    manifest = load_manifest()
    if args.source is not None and (not args.release or args.release not in manifest.releases):
        from .unlisted import fetch_unlisted
        got = fetch_unlisted(manifest, args.source, args.release, args.rev)
    elif not args.release:
        raise PorterError("porter fetch needs --version RELEASE (Linux), --from TREE, --dde or --hurd")
    else:
        got = fetch_linux(manifest, args.release, args.source)
    if got.listed:
        print(f"Linux {got.version}: {got.files} files verified (sha256) from {got.origin} -> {got.path}")
    else:
        print(f"Linux {got.version}: not in manifest (its Makefile says {got.makefile_version}); "
              f"{got.files} files hashed (sha256) from {got.origin} -> {got.path}; "
              f"bundles: {', '.join(got.bundles)}")
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
    inputs = load_inputs(args.bundle, args.release, args.rules, dde=_dde(args.dde))
    scanned = scan_bundle(inputs)
    plan = plan_port(inputs, scanned)
    return print_scan(plan, as_json=args.json)


def cmd_port(args) -> int:
    from .pipeline import load_inputs
    from .pipeline import scan_inputs as scan_bundle
    from .plan import plan_port
    from .emit import emit_tree
    inputs = load_inputs(args.bundle, args.release, args.rules, dde=_dde(args.dde))
    plan = plan_port(inputs, scan_bundle(inputs))
    plan.raise_if_unmapped()
    result = emit_tree(plan, args.out, force=args.force)
    print(result.summary())
    return 0


def cmd_check(args) -> int:
    from .check import check_tree
    return check_tree(args.tree, junit=args.junit, compilers=args.cc, target=args.target, as_json=args.json)


def cmd_build(args) -> int:
    from .build import build_host
    from .dde import dde_of_tree
    from .dde_build import DdeBuildError, ensure_build
    from .tree import emitted_tree
    emitted_tree(args.tree)
    dde = dde_of_tree(args.tree)
    try:
        dde_build = ensure_build(dde, log=lambda m: print(m, file=sys.stderr))
    except DdeBuildError as e:
        raise PorterError(str(e)) from None
    host = build_host(args.tree, dde, dde_build, args.output)
    print(host.executable)
    return 0


def cmd_test(args) -> int:
    from .suites import run_harness
    return run_harness(args.tree, args.device, args.pytest_args)


def cmd_matrix(args) -> int:
    from .matrix import cmd_matrix as run
    return run(args)


def cmd_diff_api(args) -> int:
    from .diff_api import cmd_diff_api as run
    return run(args)


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


def _tree_system(tree: Path):
    """The Hurd system (built on demand) for an emitted tree's generation and DDE."""
    from .hurd.check import tree_generation
    from .hurd.prepare import dde_for, prepare_system
    from .tree import emitted_tree, tree_dde_id
    tree = emitted_tree(tree)
    return prepare_system(tree_generation(tree), dde_for(tree_generation(tree), tree_dde_id(tree)), log=lambda m: print(m, file=sys.stderr))


def cmd_hurd_build(args) -> int:
    from .hurd.system import ensure_image
    image = ensure_image(_tree_system(args.tree), args.tree, log=lambda m: print(m, file=sys.stderr))
    print(f"kernel {image.system.kernel}\nimage  {image.disk}")
    return 0


def cmd_hurd_boot(args) -> int:
    from .hurd.system import boot, ensure_image
    image = ensure_image(_tree_system(args.tree), args.tree, log=lambda m: print(m, file=sys.stderr))
    text, accel = boot(image, args.until, args.timeout)
    print(text.replace("\x1b", ""))
    print(f"[porter: booted with {accel}; {'saw' if args.until in text else 'did not see'} {args.until!r}]")
    return 0 if args.until in text else 1


def cmd_demo(args) -> int:
    from .demo import run_demo
    from .emit import tree_name
    return run_demo(args.bundle, args.release, args.out or Path("out") / tree_name(args.bundle), args.count)


def _dde(choice: str | None):
    """The DDE tree --dde names (None: porter's current one)."""
    if choice is None:
        return None
    from .dde import select_dde
    return select_dde(choice)


def _is_harness_error(e: BaseException) -> bool:
    """The driver host or the device failed under the harness (only once the harness was loaded:
    porter's other commands start without it)."""
    if "porter.harness.driver_host" not in sys.modules:
        return False
    from .harness.driver_host import DriverHostError
    from .harness.qemu import QemuError
    return isinstance(e, (DriverHostError, QemuError, TimeoutError))

EXIT_CODES = "exit status: 0 ok, 1 a check or test failed, 2 bad input or usage (the message says what to do)"


def _known():
    """Bundles and releases the manifest lists (for --help and choices); none if it is unreadable,
    so that the command itself reports why."""
    from .manifest import load_manifest
    try:
        m = load_manifest()
        return sorted(m.bundles), list(m.releases)
    except PorterError:
        return [], []


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    bundles, releases = _known()
    releases_help = f"Linux release ({', '.join(releases)})" if releases else "Linux release, e.g. 2.6.32"
    p = argparse.ArgumentParser(prog="porter", description=__doc__, epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=f"porter {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help_text):
        return sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                              epilog=EXIT_CODES)

    def bundle_arg(parser):
        parser.add_argument("bundle", choices=bundles or None, metavar="BUNDLE",
                            help=f"driver bundle ({', '.join(bundles)})" if bundles else "driver bundle")

    def dde_arg(parser):
        parser.add_argument("--dde", metavar="ID|PATH",
                            help="the DDE tree to use: a cache id (`porter fetch --dde` prints it), a "
                                 "generation (2016, 2020) or a DDE source tree (default: the one last fetched)")

    f = command("fetch", "bring Linux sources, the DDE or the Hurd's sources into porter's cache, verified")
    f.add_argument("--version", dest="release", metavar="RELEASE", help=releases_help)
    f.add_argument("--dde", action="store_true", help="fetch the Hurd's DDE instead of Linux")
    f.add_argument("--hurd", action="store_true",
                   help="fetch GNU Mach, MIG, the Hurd (git) and Debian's glibc, gcc and libpciaccess "
                        "sources for the generation of each cached DDE tree")
    f.add_argument("--from", dest="source", type=Path, action="append", metavar="PATH",
                   help="local Linux tree, release tarball or git directory; or a DDE git directory/tree; "
                        "with --hurd (repeatable): git directories or trees of gnumach, mig and hurd, or "
                        "directories holding them or Debian .dsc files")
    f.add_argument("--rev", help="with a git source: branch or commit (default: dde for --dde, else HEAD)")
    f.set_defaults(func=cmd_fetch)

    s = command("scan", "list the kernel APIs a driver bundle uses and what porter does with each")
    bundle_arg(s)
    s.add_argument("--version", dest="release", metavar="RELEASE", required=True, help=releases_help)
    s.add_argument("--rules", type=Path, action="append", metavar="TOML",
                   help="rule files to use instead of porter's own (repeatable)")
    dde_arg(s)
    s.add_argument("--json", action="store_true", help="the scan as JSON on stdout")
    s.set_defaults(func=cmd_scan)

    o = command("port", "emit a Hurd DDE driver tree")
    bundle_arg(o)
    o.add_argument("--version", dest="release", metavar="RELEASE", required=True, help=releases_help)
    o.add_argument("--out", required=True, type=Path, metavar="DIR", help="the tree to write (atomically)")
    o.add_argument("--rules", type=Path, action="append", metavar="TOML",
                   help="rule files to use instead of porter's own (repeatable)")
    dde_arg(o)
    o.add_argument("--force", action="store_true", help="overwrite files edited by hand")
    o.set_defaults(func=cmd_port)

    c = command("check", "compile an emitted tree and list the undefined symbols nothing defines")
    c.add_argument("tree", type=Path, metavar="TREE")
    c.add_argument("--target", choices=("linux", "hurd"), default="linux",
                   help="linux: the Linux-side sources against the DDE on this machine (default); "
                        "hurd: every file with the tree's own Makefile for i686-gnu, as the Hurd builds it")
    c.add_argument("--cc", action="append", choices=("gcc", "clang"),
                   help="compiler(s) to use (default: gcc; repeat for clang too)")
    c.add_argument("--junit", type=Path, metavar="XML", help="write JUnit XML here")
    c.add_argument("--json", action="store_true", help="the result as JSON on stdout instead of the table")
    c.set_defaults(func=cmd_check)

    b = command("build", "link a tree with the real DDE into a driver host the harness runs")
    b.add_argument("tree", type=Path, metavar="TREE")
    b.add_argument("-o", "--output", type=Path, help="executable to write (default: TREE.host/driver-host)")
    b.set_defaults(func=cmd_build)

    t = command("test", "run the harness suite on a tree (built into a driver host) against a device")
    t.add_argument("tree", type=Path, metavar="TREE")
    t.add_argument("--device", choices=("qemu", "sim"), default="qemu",
                   help="qemu: QEMU's own device in x-remote mode (default); sim: porter's model, hostile modes")
    t.set_defaults(pytest_args=[])    # what follows `--` goes to pytest (see main)
    t.set_defaults(func=cmd_test)

    x = command("matrix", "every release of a bundle through cache, scan, port, check, build and the harness "
                          "on QEMU, in parallel; a table, matrix.json, matrix.md and JUnit XML")
    bundle_arg(x)
    x.add_argument("--versions", nargs="+", choices=releases or None, metavar="RELEASE",
                   help=f"the releases to run (default: all{': ' + ', '.join(releases) if releases else ''})")
    x.add_argument("--jobs", "-j", type=int, metavar="N", help="releases at once (default: the cores)")
    x.add_argument("--out", type=Path, default=Path("porter-matrix"), metavar="DIR",
                   help="where the reports go (default: ./porter-matrix)")
    x.add_argument("--json", action="store_true", help="matrix.json on stdout instead of the table")
    x.set_defaults(pytest_args=[])    # what follows `--` goes to the harness's pytest
    x.set_defaults(func=cmd_matrix)

    d = command("diff-api", "the kernel APIs a bundle uses that changed between two releases, and the rules "
                            "that fire in one and not the other")
    d.add_argument("old", choices=releases or None, metavar="V1", help=releases_help)
    d.add_argument("new", choices=releases or None, metavar="V2", help=releases_help)
    bundle_arg(d)
    d.add_argument("--rules", type=Path, action="append", metavar="TOML",
                   help="rule files to use instead of porter's own (repeatable)")
    d.add_argument("--json", action="store_true", help="the difference as JSON on stdout")
    d.set_defaults(func=cmd_diff_api)

    h = command("hurd", "the Hurd target: cross sysroot and toolchain")
    hsub = h.add_subparsers(dest="hurd_command", required=True, metavar="COMMAND")
    hs = hsub.add_parser("sysroot", help="build the i686-gnu sysroot (cross gcc, GNU Mach, MIG, Hurd, glibc "
                                         "headers, the libraries a DDE tree links) into porter's cache")
    hs.add_argument("--generation", choices=("2016", "2020"),
                    help="only this generation (default: that of every cached DDE tree)")
    hs.set_defaults(func=cmd_hurd_sysroot)

    hb = hsub.add_parser("build", help="build GNU Mach, glibc, the Hurd's servers and an image with TREE as "
                                       "netdde (all into porter's cache)")
    hb.add_argument("tree", type=Path, metavar="TREE")
    hb.set_defaults(func=cmd_hurd_build)
    ho = hsub.add_parser("boot", help="boot TREE's image in QEMU and print its console")
    ho.add_argument("tree", type=Path, metavar="TREE")
    ho.add_argument("--until", default="porter-hurd: runsystem started", help="console text to wait for")
    ho.add_argument("--timeout", type=float, default=180, help="seconds (default 180)")
    ho.set_defaults(func=cmd_hurd_boot)

    d = command("demo", "port, check and build a driver, then run it on QEMU's device (virtio-net: ping a "
                        "kernel through it; virtio-blk: write a pattern onto an image file and read it back; "
                        "virtio-rng: read 1 MiB through it and compare)")
    d.add_argument("--bundle", default="virtio-net", metavar="BUNDLE",
                   help="the driver: virtio-net (default), virtio-blk or virtio-rng")
    d.add_argument("--version", dest="release", metavar="RELEASE", default="2.6.32", help=releases_help)
    d.add_argument("--out", type=Path, metavar="DIR", help="where the tree goes (default out/dde_<bundle>)")
    d.add_argument("--count", type=int, default=5, help="pings to send (virtio-net) or 64 KiB blocks to write "
                                                              "(virtio-blk) (default 5)")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # argparse mishandles `--` after a subcommand; `porter test TREE -- -k x` passes `-k x` to pytest
    passthrough = []
    if argv[:1] in (["test"], ["matrix"]) and "--" in argv:
        argv, passthrough = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = build_parser().parse_args(argv)
    if passthrough:
        args.pytest_args = passthrough
    try:
        return args.func(args)
    except PorterError as e:
        print(f"porter: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if _is_harness_error(e):
            # the driver host or the device failed under the harness: say which, not where in porter
            first = (str(e).strip().splitlines() or [""])[0]
            print(f"porter: error: {type(e).__name__}: {first} (`porter test TREE -- -x` shows the driver "
                  "host's and the device's output)", file=sys.stderr)
            return 2
        if isinstance(e, OSError):
            # a file porter could not read or write: name it; nothing was left half-written
            where = f"{e.filename}: " if e.filename else ""
            print(f"porter: error: {where}{e.strerror or e}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("porter: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
