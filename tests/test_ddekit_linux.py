"""ddekit-linux: the DDEKit API on Linux user space, exercised by real i386 programs.

Every test builds a C program from tests/c/ddekit/ with ``gcc -m32`` against
the DDE's own DDEKit headers (``PORTER_DDE_TREE``, default /tmp/dde-src) and
the ddekit-linux sources, runs it, and checks its exit status and output. The
programs check the values themselves and exit 1 naming the failed check.
"""

import os
import re
import resource
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIM = ROOT / "dde-shims" / "ddekit-linux"
PROGRAMS = ROOT / "tests" / "c" / "ddekit"
CFLAGS = ["-m32", "-O0", "-g", "-Wall", "-Werror", "-pthread"]
LINKER_SCRIPT = SHIM / "l4dde_ctors.ld"

EXIT_UNSUPPORTED = 97  # DDEKIT_LINUX_EXIT_UNSUPPORTED
EXIT_HOST_SETUP = 98   # DDEKIT_LINUX_EXIT_HOST_SETUP

# libc names libdde_linux26 defines itself (nm of its build); host code linked
# next to it must not call them, or it gets the kernel's versions.
DDE_DEFINED_LIBC = {
    "memcmp", "mktime", "sigprocmask", "snprintf", "sprintf", "sscanf", "strcspn",
    "strlcpy", "strpbrk", "strrchr", "strsep", "strspn", "vsnprintf", "vsprintf", "vsscanf",
}


def find_dde_tree() -> Path | None:
    configured = os.environ.get("PORTER_DDE_TREE")
    tree = Path(configured) if configured else Path("/tmp/dde-src")
    return tree if (tree / "libddekit" / "ddekit" / "types.h").is_file() else None


DDE_TREE = find_dde_tree()
pytestmark = pytest.mark.skipif(
    DDE_TREE is None,
    reason="no DDEKit headers: set PORTER_DDE_TREE to a DDE tree with libddekit/ddekit/*.h")


def library_sources() -> list[Path]:
    """The sources ddekit-linux.mk lists (the one list porter's build uses)."""
    text = (SHIM / "ddekit-linux.mk").read_text()
    block = re.search(r"^DDEKIT_LINUX_SRCS :=((?:.*\\\n)*.*)$", text, re.M)
    assert block, "DDEKIT_LINUX_SRCS not found in ddekit-linux.mk"
    return [SHIM / name for name in re.findall(r"\$\(DDEKIT_LINUX_DIR\)/(\S+\.c)", block.group(1))]


def include_flags() -> list[str]:
    return [f"-I{SHIM}", f"-I{DDE_TREE / 'libddekit'}", f"-I{PROGRAMS}"]


def gcc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(["gcc", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"gcc {' '.join(args)}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """ddekit-linux compiled with the test flags into a static archive."""
    out = tmp_path_factory.mktemp("ddekit-linux")
    objects = []
    for source in library_sources():
        obj = out / (source.stem + ".o")
        gcc([*CFLAGS, *include_flags(), "-c", str(source), "-o", str(obj)], out)
        objects.append(str(obj))
    archive = out / "libddekit-linux.a"
    subprocess.run(["ar", "rcs", str(archive), *objects], check=True)
    return archive


def build(library: Path, tmp_path: Path, *sources: str, ldflags=()) -> Path:
    exe = tmp_path / Path(sources[0]).stem
    gcc([*CFLAGS, *include_flags(), *(str(PROGRAMS / s) for s in sources), str(library),
         f"-Wl,-T,{LINKER_SCRIPT}", *ldflags, "-o", str(exe)], tmp_path)
    return exe


def no_core_dumps():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run(exe: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=no_core_dumps)


def assert_passed(done: subprocess.CompletedProcess, *parts: str):
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    passed = re.findall(r"^PASS (\S+)$", done.stdout, re.M)
    assert passed == list(parts), done.stdout


# -- the sources themselves ---------------------------------------------------

def test_makefile_lists_every_source():
    listed = sorted(p.name for p in library_sources())
    assert listed == sorted(p.name for p in SHIM.glob("*.c"))
    for source in library_sources():
        first = source.read_text().splitlines()[0]
        assert re.match(rf"/\* {re.escape(source.name)} -- .+ \*/$", first), f"{source.name}: no brief"


def test_library_builds_warning_free_optimised(tmp_path):
    for source in library_sources():
        gcc(["-m32", "-O2", "-Wall", "-Wextra", "-Werror", "-Wstrict-prototypes",
             "-Wmissing-prototypes", "-pthread", *include_flags(), "-c", str(source),
             "-o", str(tmp_path / (source.stem + ".o"))], tmp_path)


def test_host_code_avoids_libc_names_the_dde_redefines(library):
    undefined = subprocess.run(["nm", "-u", str(library)], capture_output=True, text=True,
                               check=True).stdout.split()
    assert "vasprintf" in undefined  # the formatter it does use
    assert not DDE_DEFINED_LIBC & set(undefined)


def test_defines_what_the_dde_leaves_undefined(library):
    # jiffies and HZ are declared extern by the DDE and defined nowhere else
    defined = subprocess.run(["nm", "--defined-only", str(library)], capture_output=True,
                             text=True, check=True).stdout
    for symbol in ("jiffies", "HZ", "fetch_jiffies", "dump_stack", "ddekit_init"):
        assert re.search(rf"^[0-9a-f]+ [BDT] {symbol}$", defined, re.M), symbol


# -- memory -----------------------------------------------------------------------

def test_dma_arena(library, tmp_path):
    done = run(build(library, tmp_path, "arena_test.c"))
    assert_passed(done, "attach", "large_malloc", "page_zero_never_returned", "slab_contiguous",
                  "slab_threads", "not_dma_able", "contig_malloc", "pgtab_regions")
    # lookups of memory outside the pgtab fail with the Hurd's message
    assert re.search(r"a virtual address 0x[0-9a-f]+ doesn't exist\.", done.stderr)
    assert re.search(r"a physical address 0x[0-9a-f]+ doesn't exist\.", done.stderr)


def test_dma_allocation_without_arena_stops(library, tmp_path):
    done = run(build(library, tmp_path, "arena_test.c"), "no-arena")
    assert done.returncode == EXIT_HOST_SETUP, done.stderr
    assert "ddekit_linux_arena_attach()" in done.stderr


def test_large_free_of_foreign_memory_panics(library, tmp_path):
    done = run(build(library, tmp_path, "arena_test.c"), "bad-free")
    assert done.returncode == -signal.SIGABRT, done.stderr
    assert "not a block from ddekit_large_malloc" in done.stderr
    assert "dump_stack:" in done.stderr


# -- time ------------------------------------------------------------------------

def test_timers_and_jiffies(library, tmp_path):
    done = run(build(library, tmp_path, "timer_test.c"))
    assert_passed(done, "expiry_order", "rearm_from_callback", "rate")
    rate = float(re.search(r"jiffies per second: ([\d.]+)", done.stdout).group(1))
    assert 90 <= rate <= 110


# -- interrupts ------------------------------------------------------------------

def test_interrupts_from_eventfd(library, tmp_path):
    done = run(build(library, tmp_path, "interrupt_test.c"))
    assert_passed(done, "bind", "attach", "handler_on_irq_thread", "disable_enable",
                  "disable_waits_for_handler", "detach", "shared", "resample")
    assert "irq 11 has no eventfd" in done.stderr


# -- threads and synchronisation ----------------------------------------------------

def test_threads_locks_condvars_semaphores(library, tmp_path):
    done = run(build(library, tmp_path, "sync_test.c"))
    assert_passed(done, "threads", "foreign_thread", "locks", "lock_contention", "condvars",
                  "semaphores", "sleep_wakeup")


# -- PCI and resources ----------------------------------------------------------------

def test_pci_through_host_callbacks(library, tmp_path):
    done = run(build(library, tmp_path, "pci_test.c"))
    assert_passed(done, "enumeration", "config_space", "device_handles", "resources", "io_ports")


def test_pci_callbacks_must_be_complete(library, tmp_path):
    done = run(build(library, tmp_path, "pci_test.c"), "incomplete-ops")
    assert done.returncode == EXIT_HOST_SETUP
    assert "every callback" in done.stderr


# -- initcalls ---------------------------------------------------------------------------

INITCALLS_A_THEN_B = [
    "a_prio1", "b_prio9", "b_prio10",       # 1, 9, 10: numeric, not by name
    "a_core", "b_core",                     # 1000, link order among equals
    "b_subsys",                             # 1003
    "a_device", "b_device",                 # 1005
    "a_late",                               # 1006
    "b_prio20000",                          # five digits
    "b_unprioritised",                      # plain .l4dde_ctors, last
]


@pytest.mark.parametrize("objects", [("initcall_a.c", "initcall_b.c"),
                                     ("initcall_b.c", "initcall_a.c")])
def test_initcalls_run_in_netdde_order(library, tmp_path, objects):
    exe = build(library, tmp_path, "initcall_main.c", *objects, ldflags=["-Wl,--gc-sections"])
    done = run(exe)
    assert done.returncode == 0, done.stderr
    ran = re.findall(r"^initcall (\S+)$", done.stdout, re.M)
    expected = list(INITCALLS_A_THEN_B)
    if objects[0] == "initcall_b.c":   # ties follow the link order
        for a, b in (("a_core", "b_core"), ("a_device", "b_device")):
            i, j = expected.index(a), expected.index(b)
            expected[i], expected[j] = b, a
    assert ran == expected
    assert f"ran {len(expected)}" in done.stdout


def test_initcalls_without_linker_script_fail_to_link(library, tmp_path):
    sources = [str(PROGRAMS / s) for s in ("initcall_main.c", "initcall_a.c")]
    done = subprocess.run(["gcc", *CFLAGS, *include_flags(), *sources, str(library),
                           "-o", str(tmp_path / "no-script")], capture_output=True, text=True)
    assert done.returncode != 0
    assert "__ddekit_linux_ctors_start" in done.stderr


# -- trace and stop ---------------------------------------------------------------------------

def unsupported_names() -> list[str]:
    header = (SHIM / "ddekit_linux_unsupported.h").read_text()
    return re.findall(r"^\s*X\((\w+)\)", header, re.M)


def test_unsupported_list_is_not_empty():
    assert "ddekit_request_mem" in unsupported_names()


@pytest.mark.parametrize("name", unsupported_names())
def test_unsupported_function_stops_with_its_name(library, tmp_path, name):
    done = run(build(library, tmp_path, "unsupported_test.c"), name)
    assert done.returncode == EXIT_UNSUPPORTED, f"exit {done.returncode}\n{done.stderr}"
    assert done.stderr == f"ddekit-linux: {name} is not implemented on the Linux host; stopping\n"


# -- console, panic ------------------------------------------------------------------------

def test_print_goes_to_stderr(library, tmp_path):
    done = run(build(library, tmp_path, "print_test.c"), "print")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ("plain line\n"
                           "formatted text -42 0000beef z|\n"
                           "debug 7\n"
                           "main(): log 5\n")


def test_panic_aborts_with_message_and_backtrace(library, tmp_path):
    done = run(build(library, tmp_path, "print_test.c"), "panic")
    assert done.returncode == -signal.SIGABRT
    assert "ddekit_panic: the device is on fire (42)\n" in done.stderr
    assert "dump_stack:" in done.stderr


def test_assert_panics(library, tmp_path):
    done = run(build(library, tmp_path, "print_test.c"), "assert")
    assert done.returncode == -signal.SIGABRT
    assert "Assertion failed: two == 3" in done.stderr
    assert "Function: main()" in done.stderr
