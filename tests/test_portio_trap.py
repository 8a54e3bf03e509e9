"""The port-I/O trap: real in/out/ins/outs in an unprivileged 32-bit process.

The test programs (tests/c/ddekit/portio_*.c) execute the instructions with
inline assembly; without ioperm() each one faults and the trap emulates it.
Faults that are not port I/O must still kill the process by SIGSEGV, after a
report on stderr.
"""

import re
import resource
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TRAP = ROOT / "dde-shims" / "portio-trap"
PROGRAMS = ROOT / "tests" / "c" / "ddekit"
CFLAGS = ["-m32", "-O0", "-g", "-Wall", "-Werror", "-pthread"]


def build(tmp_path: Path, program: str) -> Path:
    exe = tmp_path / Path(program).stem
    done = subprocess.run(["gcc", *CFLAGS, f"-I{TRAP}", f"-I{PROGRAMS}", str(PROGRAMS / program),
                           str(TRAP / "portio_trap.c"), "-o", str(exe)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return exe


def no_core_dumps():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run(exe: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60,
                          preexec_fn=no_core_dumps)


@pytest.fixture(scope="module")
def crasher(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("portio-crash"), "portio_crash.c")


def report(stderr: str) -> dict[str, str]:
    """The fields of the trap's fatal report."""
    fields = {}
    for key, pattern in (("reason", r"portio-trap: fatal SIGSEGV: (.+)"),
                         ("address", r"fault address: 0x([0-9a-f]{8})"),
                         ("eip", r"  eip: 0x([0-9a-f]{8})"),
                         ("bytes", r"bytes at eip:((?: (?:[0-9a-f]{2}|\?\?)){16})")):
        match = re.search(pattern, stderr)
        assert match, f"no {key} in report:\n{stderr}"
        fields[key] = match.group(1).strip()
    return fields


def test_trap_builds_warning_free_optimised(tmp_path):
    done = subprocess.run(["gcc", "-m32", "-O2", "-Wall", "-Wextra", "-Werror",
                           "-Wmissing-prototypes", "-c", str(TRAP / "portio_trap.c"),
                           "-o", str(tmp_path / "portio_trap.o")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_instruction_form(tmp_path):
    done = run(build(tmp_path, "portio_test.c"))
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert re.findall(r"^PASS (\S+)$", done.stdout, re.M) == [
        "in_imm8", "out_imm8", "in_dx", "out_dx", "ins_single", "rep_ins", "outs",
        "direction_flag", "threads"]


def test_null_write_dies_with_report(crasher):
    done = run(crasher, "null-write")
    assert done.returncode == -signal.SIGSEGV, done.stderr
    assert "trap installed" in done.stdout and "survived" not in done.stdout
    fields = report(done.stderr)
    assert fields["reason"].startswith("address not mapped")
    assert fields["address"] == "00000000"
    # the faulting store: c7 00 01 00 00 00 = movl $1, (%eax)
    assert "??" not in fields["bytes"]
    assert fields["bytes"].startswith("c7 ")


def test_null_call_report_shows_unreadable_bytes(crasher):
    done = run(crasher, "null-call")
    assert done.returncode == -signal.SIGSEGV, done.stderr
    fields = report(done.stderr)
    assert fields["eip"] == "00000000"
    assert fields["bytes"] == " ".join(["??"] * 16)


def test_privileged_non_io_instruction_dies(crasher):
    done = run(crasher, "hlt")
    assert done.returncode == -signal.SIGSEGV, done.stderr
    fields = report(done.stderr)
    assert fields["reason"] == "general protection fault on an instruction that is not port I/O"
    insn = int(re.search(r"instruction at (0x[0-9a-f]+)", done.stdout).group(1), 16)
    assert int(fields["eip"], 16) == insn
    assert fields["bytes"].startswith("f4 ")   # hlt


def test_fault_while_emulating_string_io(crasher):
    done = run(crasher, "bad-buffer")
    assert done.returncode == -signal.SIGSEGV, done.stderr
    fields = report(done.stderr)
    assert fields["reason"].startswith("fault while emulating port I/O")
    assert fields["address"] == "00000010"
    assert re.search(r"while emulating the port I/O instruction at eip 0x[0-9a-f]{8}: f3 6c ",
                     done.stderr)


def test_sigsegv_from_kill_is_not_emulated(crasher):
    done = run(crasher, "kill")
    assert done.returncode == -signal.SIGSEGV, done.stderr
    assert report(done.stderr)["reason"] == "SIGSEGV sent by a process, not a fault"
