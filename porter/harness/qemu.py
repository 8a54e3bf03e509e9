"""The `qemu` device backend: one QEMU device model in an x-remote process, driven by the harness.

QEMU runs with ``-machine x-remote``: it has no CPU of its own, only the
device (legacy virtio-pci by default) and its backend (a netdev, a drive).
The harness plays the PCI host: it owns config space, BAR addresses, guest
memory (a GuestMemory memfd at guest-physical 0) and the interrupt eventfds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

from porter.harness.memory import GuestMemory
from porter.harness.pci import CONFIG_SPACE_SIZE, check_config_access
from porter.harness.virtio_net import DEFAULT_MAC
from porter.harness.xremote import MemoryRegion, XRemoteClient

# PORTER_QEMU names another QEMU build (one with a patch, or a wrapper that logs)
QEMU_BINARY = os.environ.get("PORTER_QEMU", "qemu-system-x86_64")
# The pure legacy device a 2.6 driver expects (PCI 1af4:10xx, I/O BAR0);
# only INTx reaches the harness, so no MSI-X vectors.
LEGACY_OPTIONS: Mapping[str, str] = {"disable-modern": "on", "vectors": "0"}
DEVICE_ID = "dev0"           # the -device id: what QMP commands about the device name
_OUTPUT_TAIL = 4000          # characters of QEMU output an exception carries
_TERM_GRACE = 3.0            # seconds between SIGTERM and SIGKILL


@dataclass(frozen=True)
class DgramNetdev:
    """Frames leave QEMU as datagrams to ``peer_path`` (a socket the caller bound);
    datagrams sent to ``QemuDevice.netdev_path`` arrive as received frames."""
    peer_path: str


@dataclass(frozen=True)
class TapNetdev:
    """QEMU attaches to tap ``ifname`` in its network namespace (see ``QemuDevice(netns=...)``)."""
    ifname: str = "tap0"


Netdev = Union[DgramNetdev, TapNetdev]


class QemuError(RuntimeError):
    """QEMU failed; ``output`` holds the tail of what QEMU printed."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(f"{message}\n--- QEMU output ---\n{output.rstrip()}" if output.strip() else message)
        self.reason = message
        self.output = output


class QemuStartError(QemuError):
    """QEMU exited or never became ready while starting."""


class QmpError(QemuError):
    """A QMP command returned an error."""


class QemuDevice:
    """One device model served by its own ``qemu-system-x86_64 -machine x-remote`` process.

    The constructor starts QEMU and returns once QMP reports ``running``
    (a queue kick sent earlier is held silently). ``close()`` (or leaving a
    ``with`` block) stops and reaps QEMU and removes its working directory;
    a finalizer does the same at garbage collection or interpreter exit, and
    QEMU also exits by itself when the x-remote socket closes, so no process
    outlives the harness.

    ``options`` are extra ``-device`` properties (``{"mrg_rxbuf": "off"}``);
    they override ``LEGACY_OPTIONS``. ``extra_args`` go to QEMU as they are
    (e.g. ``-blockdev`` for virtio-blk-pci). With ``netns`` QEMU is started
    inside that network namespace through ``ip netns exec``.
    """

    def __init__(self, device: str = "virtio-net-pci", *, netdev: Optional[Netdev] = None,
                 mac: Optional[str] = None, options: Optional[Mapping[str, object]] = None,
                 extra_args: Sequence[str] = (), netns: Optional[str] = None,
                 qemu: str = QEMU_BINARY, start_timeout: float = 15.0,
                 reply_timeout: float = 10.0) -> None:
        self.device = device
        self.netdev = netdev
        self.mac = (mac or DEFAULT_MAC) if netdev is not None else mac
        self.netns = netns
        self.workdir = tempfile.mkdtemp(prefix="porter-qemu-")
        # What must go away with this device; the finalizer holds it, never self.
        self._resources = _Resources(self.workdir)
        self._finalizer = weakref.finalize(self, _cleanup, self._resources)
        self.log_path = os.path.join(self.workdir, "qemu.log")
        self._qmp_path = os.path.join(self.workdir, "qmp.sock")
        self.netdev_path = os.path.join(self.workdir, "net.sock") if isinstance(netdev, DgramNetdev) else None
        self.proc: Optional[subprocess.Popen] = None
        self.command: list[str] = []
        self._client: Optional[XRemoteClient] = None
        self._qmp: Optional[socket.socket] = None
        self._qmp_buffer = b""
        self._last_output = ""
        try:
            self._start(qemu, options or {}, extra_args, start_timeout, reply_timeout)
        except BaseException:
            self.close()
            raise

    # -- life cycle -------------------------------------------------------

    def _start(self, qemu: str, options: Mapping[str, object], extra_args: Sequence[str],
               start_timeout: float, reply_timeout: float) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._resources.sockets.append(ours)
        try:
            self.command = self._command(qemu, options, extra_args, theirs.fileno())
            with open(self.log_path, "wb") as log:
                try:
                    self.proc = self._resources.proc = subprocess.Popen(
                        self.command, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                        stdout=log, stderr=subprocess.STDOUT)
                except FileNotFoundError as e:
                    raise QemuStartError(f"cannot run {e.filename}: not installed?") from None
        finally:
            # QEMU holds its end now; keeping ours open here would hide its exit from us.
            theirs.close()
        self._client = XRemoteClient(ours, timeout=reply_timeout, peer_report=self._peer_report)
        self._wait_running(start_timeout)
        self._qmp.settimeout(reply_timeout)

    def _command(self, qemu: str, options: Mapping[str, object], extra_args: Sequence[str],
                 fd: int) -> list[str]:
        props = {"id": DEVICE_ID}
        if self.netdev is not None:
            props["netdev"] = "net0"
        if self.mac is not None:
            props["mac"] = self.mac
        props.update(LEGACY_OPTIONS)
        props.update({k: _qemu_value(v) for k, v in options.items()})
        cmd = [qemu, "-machine", "x-remote", "-nodefaults", "-nographic",
               "-monitor", "none", "-serial", "none",
               "-qmp", f"unix:{self._qmp_path},server=on,wait=off",
               "-device", ",".join([self.device] + [f"{k}={v}" for k, v in props.items()])]
        if isinstance(self.netdev, DgramNetdev):
            cmd += ["-netdev", f"dgram,id=net0,local.type=unix,local.path={self.netdev_path},"
                               f"remote.type=unix,remote.path={self.netdev.peer_path}"]
        elif isinstance(self.netdev, TapNetdev):
            cmd += ["-netdev", f"tap,id=net0,ifname={self.netdev.ifname},script=no,downscript=no"]
        elif self.netdev is not None:
            raise TypeError(f"unknown netdev {self.netdev!r}")
        cmd += list(extra_args)
        cmd += ["-object", f"x-remote-object,id=robj0,devid={DEVICE_ID},fd={fd}"]
        if self.netns is not None:
            # ip execs QEMU in place (no fork), so self.proc is QEMU itself.
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        return cmd

    def _wait_running(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive("while starting")
            qmp = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                qmp.connect(self._qmp_path)
                break
            except OSError:
                qmp.close()
                if time.monotonic() > deadline:
                    raise QemuStartError(f"QEMU did not open its QMP socket within {timeout}s",
                                         self.output()) from None
                time.sleep(0.02)
        qmp.settimeout(max(1.0, deadline - time.monotonic()))
        self._qmp = qmp
        self._resources.sockets.append(qmp)
        try:
            self._qmp_read()                               # the greeting
            self.qmp("qmp_capabilities")
            while (status := self.qmp("query-status")["status"]) != "running":
                if time.monotonic() > deadline:
                    raise QemuStartError(f"QEMU stayed in state {status!r} for {timeout}s", self.output())
                time.sleep(0.02)
        except QemuStartError:
            raise
        except QemuError as e:
            # Usually QEMU quit during start-up (e.g. a bad -device option after
            # QMP was already listening): then its exit and own words are the news.
            self._state()
            self._check_alive("while starting")
            raise QemuStartError(f"QEMU failed while starting: {e.reason}", self.output()) from None

    def close(self) -> None:
        """Stop QEMU (socket close, SIGTERM, SIGKILL), reap it, remove its files. Idempotent."""
        self._qmp = None
        if self.proc is not None and self._finalizer.alive:
            self._last_output = self.output()
        self._finalizer()

    def __enter__(self) -> QemuDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    def output(self) -> str:
        """The tail of QEMU's stdout/stderr (kept after close())."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - _OUTPUT_TAIL))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return self._last_output

    def _check_alive(self, when: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise QemuStartError(f"QEMU exited {when} ({_describe_status(self.proc.returncode)}); "
                                 f"command: {' '.join(self.command)}", self.output())

    def _state(self) -> str:
        """QEMU's fate; a QEMU that just closed a socket is usually on its way out, so wait a moment."""
        assert self.proc is not None
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pass
        return f"QEMU (pid {self.proc.pid}) {_describe_status(self.proc.returncode)}"

    def _peer_report(self) -> str:
        """What an x-remote error carries: QEMU's fate and its own words."""
        if self.proc is None:
            return ""
        state, output = self._state(), self.output().rstrip()
        return f"{state}; its output:\n{output}" if output else f"{state}; it printed nothing"

    # -- QMP ----------------------------------------------------------------

    def qmp(self, command: str, **arguments: object) -> object:
        """Run one QMP command and return its ``return`` value (events in between are dropped)."""
        if self._qmp is None:
            raise QemuError("QMP is not connected (QEMU closed?)")
        request: dict[str, object] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        try:
            self._qmp.sendall(json.dumps(request).encode() + b"\n")
        except OSError as e:
            raise QemuError(f"QMP {command}: {e}", self.output()) from None
        while True:
            reply = self._qmp_read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise QmpError(f"QMP {command}: {reply['error'].get('desc', reply['error'])}")

    def _qmp_read(self) -> dict:
        assert self._qmp is not None
        while b"\n" not in self._qmp_buffer:
            try:
                chunk = self._qmp.recv(65536)
            except ConnectionResetError:
                chunk = b""
            except OSError as e:
                raise QemuError(f"QMP read failed: {e}", self.output()) from None
            if not chunk:
                raise QemuError(f"QEMU closed its QMP socket; {self._state()}", self.output())
            self._qmp_buffer += chunk
        line, self._qmp_buffer = self._qmp_buffer.split(b"\n", 1)
        return json.loads(line)

    # -- the device ---------------------------------------------------------

    @property
    def client(self) -> XRemoteClient:
        if self._client is None or not self._finalizer.alive:
            raise QemuError("the QEMU device is closed")
        return self._client

    def sync_memory(self, memory: GuestMemory) -> None:
        """Map ``memory`` as the device's guest RAM at guest-physical 0 (physical address = offset)."""
        self.client.sync_sysmem([MemoryRegion(gpa=0, size=memory.size, fd=memory.fd)])

    def set_irqfd(self, irq_fd: int, resample_fd: int) -> None:
        """INTx: QEMU writes ``irq_fd`` when the line rises; write ``resample_fd`` after handling (EOI)."""
        self.client.set_irqfd(irq_fd, resample_fd)

    def cfg_read(self, offset: int, size: int) -> int:
        start = _cfg_window(offset, size)
        if start == offset:
            return self.client.cfg_read(offset, size)
        # Near the end of config space QEMU only takes the last dword whole.
        dword = self.client.cfg_read(start, 4)
        return (dword >> (8 * (offset - start))) & ((1 << (8 * size)) - 1)

    def cfg_write(self, offset: int, value: int, size: int) -> None:
        start = _cfg_window(offset, size)
        if start == offset:
            self.client.cfg_write(offset, value, size)
            return
        shift, mask = 8 * (offset - start), (1 << (8 * size)) - 1
        dword = self.client.cfg_read(start, 4)
        self.client.cfg_write(start, (dword & ~(mask << shift)) | ((value & mask) << shift), 4)

    def io_read(self, port: int, size: int) -> int:
        """Read an I/O port; the address is the one the harness programmed into the BAR."""
        return self.client.bar_read(port, size)

    def io_write(self, port: int, value: int, size: int) -> None:
        self.client.bar_write(port, value, size)

    def io_write_posted(self, port: int, value: int, size: int) -> None:
        """A write whose completion nobody waits for (a queue notify): QEMU's reply is read later."""
        self.client.bar_write(port, value, size, posted=True)

    def reset(self) -> None:
        """Reset the device as a PCI reset would (device state; config space BARs stay)."""
        self.client.device_reset()

    def __repr__(self) -> str:
        return f"QemuDevice({self.device!r}, pid={self.pid}, workdir={self.workdir!r})"


def _cfg_window(offset: int, size: int) -> int:
    """Where to access config space so QEMU's 4-byte window stays inside it.

    x-remote's root bus is conventional PCI; QEMU stops the device (and
    exits) on a config access whose 4-byte window would end beyond it."""
    check_config_access(offset, size)
    return min(offset, CONFIG_SPACE_SIZE - 4)


def _qemu_value(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _describe_status(returncode: Optional[int]) -> str:
    if returncode is None:
        return "is running"
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


@dataclass
class _Resources:
    workdir: str
    proc: Optional[subprocess.Popen] = None
    sockets: list[socket.socket] = field(default_factory=list)


def _cleanup(res: _Resources) -> None:
    """Close our sockets, stop and reap QEMU, remove the working directory.

    Module-level and holding no reference to the QemuDevice, so that
    weakref.finalize can run it at garbage collection and at exit.
    """
    for s in res.sockets:
        s.close()                      # QEMU shuts down on EOF of the x-remote socket
    proc = res.proc
    if proc is not None and proc.poll() is None:
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=_TERM_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    shutil.rmtree(res.workdir, ignore_errors=True)
