"""Client side (the "proxy") of QEMU's multi-process x-remote protocol (docs/qemu-x-remote.md).

QEMU's remote process serves one PCI device over a UNIX stream socket; this
module speaks its wire format and nothing else: no process management, no
PCI or virtio knowledge.
"""

from __future__ import annotations

import enum
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Callable, NoReturn, Optional, Sequence

# MPQemuMsg header on x86_64: int cmd, 4 bytes padding, size_t size.
HEADER = struct.Struct("<iiQ")
_RET_VALUE = struct.Struct("<Q")
_PCI_CONF = struct.Struct("<IIi")          # addr, val, len
_BAR_ACCESS = struct.Struct("<QQI?3x")     # addr, val, size, memory
MAX_REGIONS = 8                            # REMOTE_MAX_FDS
MAX_POSTED = 32                            # posted writes whose RET may be outstanding at once
_SYSMEM = struct.Struct(f"<{MAX_REGIONS}Q{MAX_REGIONS}Q{MAX_REGIONS}q")  # gpas, sizes, offsets
_FAILED = 0xFFFF_FFFF_FFFF_FFFF            # what QEMU returns when it rejects an access


class Cmd(enum.IntEnum):
    SYNC_SYSMEM = 0
    RET = 1
    PCI_CFGWRITE = 2
    PCI_CFGREAD = 3
    BAR_WRITE = 4
    BAR_READ = 5
    SET_IRQFD = 6
    DEVICE_RESET = 7


class XRemoteError(RuntimeError):
    """A request to the remote device failed; ``peer_report`` says what QEMU said, when known."""

    def __init__(self, message: str, peer_report: str = "") -> None:
        super().__init__(f"{message}\n{peer_report}" if peer_report else message)
        self.peer_report = peer_report


class XRemoteClosed(XRemoteError):
    """QEMU closed its end of the socket (it exited or shut the device down)."""


class XRemoteProtocolError(XRemoteError):
    """QEMU sent something this client does not expect, or rejected the access."""


class XRemoteTimeout(XRemoteError):
    """No reply within the client's timeout; QEMU is alive but stuck."""


@dataclass(frozen=True)
class MemoryRegion:
    """One SYNC_SYSMEM entry: ``size`` bytes of ``fd`` from ``offset`` appear at guest-physical ``gpa``."""
    gpa: int
    size: int
    fd: int
    offset: int = 0


class XRemoteClient:
    """Sends x-remote requests over ``sock`` and waits for their replies.

    Requests go one after the other (a lock covers send + reply), so any
    thread may call in; a posted BAR write (``bar_write(posted=True)``) does
    not wait for its RET, which is read before the next request's reply (or
    once ``MAX_POSTED`` are outstanding, so QEMU never blocks on a full
    socket). After a failure the byte stream can no longer be trusted, so
    every later call raises the first error again.
    ``peer_report`` is called on failure and returns what is known about
    the QEMU process (exit status, the tail of its output).
    """

    def __init__(self, sock: socket.socket, *, timeout: Optional[float] = 10.0,
                 peer_report: Optional[Callable[[], str]] = None) -> None:
        self._sock = sock
        self._sock.settimeout(timeout)
        self._timeout = timeout
        self._peer_report = peer_report or (lambda: "")
        self._lock = threading.Lock()
        self._broken: Optional[XRemoteError] = None
        self._posted = 0                      # BAR writes sent whose RET is not read yet
        # Room for a header plus a u64 payload: the biggest reply QEMU sends.
        self._reply = bytearray(HEADER.size + _RET_VALUE.size)

    # -- requests ---------------------------------------------------------

    def cfg_read(self, addr: int, size: int) -> int:
        _check_cfg(addr, size)
        value = self._call(Cmd.PCI_CFGREAD, _PCI_CONF.pack(addr, 0, size),
                           refused=f"PCI config read of {size} bytes at {addr:#x}")
        return value & ((1 << (8 * size)) - 1)

    def cfg_write(self, addr: int, value: int, size: int) -> None:
        _check_cfg(addr, size)
        self._call(Cmd.PCI_CFGWRITE, _PCI_CONF.pack(addr, value & 0xFFFF_FFFF, size),
                   refused=f"PCI config write of {size} bytes at {addr:#x}")

    def bar_read(self, addr: int, size: int, memory: bool = False) -> int:
        _check_bar(size)
        # A read narrower than 8 bytes can only be all-ones if QEMU refused it.
        return self._call(Cmd.BAR_READ, _BAR_ACCESS.pack(addr, 0, size, memory),
                          refused=f"{_space(memory)} read of {size} bytes at {addr:#x}" if size < 8 else None)

    def bar_write(self, addr: int, value: int, size: int, memory: bool = False, posted: bool = False) -> None:
        """``posted``: return once it is sent; QEMU's RET (a refusal included) is checked later."""
        _check_bar(size)
        value &= (1 << (8 * size)) - 1
        self._call(Cmd.BAR_WRITE, _BAR_ACCESS.pack(addr, value, size, memory),
                   refused=f"{_space(memory)} write of {size} bytes at {addr:#x}", posted=posted)

    def sync_sysmem(self, regions: Sequence[MemoryRegion]) -> None:
        """Replace the device's view of guest memory with ``regions`` (one fd each)."""
        if not 1 <= len(regions) <= MAX_REGIONS:
            raise ValueError(f"SYNC_SYSMEM takes 1 to {MAX_REGIONS} regions, not {len(regions)}")
        pad = [0] * (MAX_REGIONS - len(regions))
        payload = _SYSMEM.pack(*[r.gpa for r in regions], *pad,
                               *[r.size for r in regions], *pad,
                               *[r.offset for r in regions], *pad)
        self._call(Cmd.SYNC_SYSMEM, payload, fds=[r.fd for r in regions], reply=False)

    def set_irqfd(self, irq_fd: int, resample_fd: int) -> None:
        """QEMU writes ``irq_fd`` when INTx rises; a write to ``resample_fd`` (EOI) re-raises it if still high."""
        self._call(Cmd.SET_IRQFD, b"", fds=[irq_fd, resample_fd], reply=False)

    def device_reset(self) -> None:
        self._call(Cmd.DEVICE_RESET, b"")

    def close(self) -> None:
        self._sock.close()

    # -- transport --------------------------------------------------------

    def _call(self, cmd: Cmd, payload: bytes, fds: Sequence[int] = (), reply: bool = True,
              refused: Optional[str] = None, posted: bool = False) -> Optional[int]:
        """Send one request and return RET's value; with ``refused``, all-ones means QEMU refused it."""
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if not posted or self._posted >= MAX_POSTED:
                self._settle()
            self._send(cmd, payload, fds)
            if posted:
                self._posted += 1
                return None
            if not reply:
                return None
            return self._checked_ret(cmd, refused)

    def _checked_ret(self, cmd: Cmd, refused: Optional[str]) -> Optional[int]:
        value = self._recv_ret(cmd)
        # QEMU answers all-ones for an access it refuses, and then shuts down.
        if refused is not None and value == _FAILED:
            self._fail(XRemoteProtocolError, f"QEMU refused the {refused}")
        return value

    def _settle(self) -> None:
        while self._posted:
            self._posted -= 1
            self._checked_ret(Cmd.BAR_WRITE, "posted BAR write")

    def _send(self, cmd: Cmd, payload: bytes, fds: Sequence[int]) -> None:
        msg = HEADER.pack(cmd, 0, len(payload)) + payload
        try:
            if fds:
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
                sent = self._sock.sendmsg([msg], anc)
                if sent < len(msg):          # the fds went with the first byte
                    self._sock.sendall(msg[sent:])
            else:
                self._sock.sendall(msg)
        except (BrokenPipeError, ConnectionResetError) as e:
            self._fail(XRemoteClosed, f"QEMU closed the x-remote socket while sending {cmd.name} ({e.strerror})")
        except socket.timeout:
            self._fail(XRemoteTimeout, f"QEMU did not accept {cmd.name} within {self._timeout}s")
        except OSError as e:
            self._fail(XRemoteError, f"sending {cmd.name} failed: {e}")

    def _recv_ret(self, cmd: Cmd) -> Optional[int]:
        buf = self._reply
        # Only one request is ever in flight and QEMU sends nothing unasked,
        # so reading up to header + u64 at once cannot swallow a later message.
        got = self._recv_into(buf, 0, HEADER.size, len(buf), cmd)
        rcmd, _, size = HEADER.unpack_from(buf)
        if rcmd != Cmd.RET:
            self._fail(XRemoteProtocolError, f"expected RET for {cmd.name}, QEMU sent command {rcmd}")
        if size not in (0, _RET_VALUE.size):
            self._fail(XRemoteProtocolError, f"RET for {cmd.name} carries {size} bytes, expected 0 or 8")
        if got < HEADER.size + size:
            self._recv_into(buf, got, HEADER.size + size, HEADER.size + size, cmd)
        return _RET_VALUE.unpack_from(buf, HEADER.size)[0] if size else None

    def _recv_into(self, buf: bytearray, start: int, need: int, limit: int, cmd: Cmd) -> int:
        """Read into ``buf[start:limit]`` until at least ``need`` bytes are there; return the count."""
        got = start
        view = memoryview(buf)
        while got < need:
            try:
                n = self._sock.recv_into(view[got:limit])
            except socket.timeout:
                self._fail(XRemoteTimeout, f"no reply to {cmd.name} within {self._timeout}s")
            except ConnectionResetError as e:
                self._fail(XRemoteClosed, f"QEMU reset the x-remote socket awaiting the reply to {cmd.name} ({e.strerror})")
            if n == 0:
                if got == 0:
                    self._fail(XRemoteClosed, f"QEMU closed the x-remote socket instead of replying to {cmd.name}")
                self._fail(XRemoteClosed, f"short read: the reply to {cmd.name} ended after {got} of {need} bytes")
            got += n
        return got

    def _fail(self, kind: type[XRemoteError], message: str) -> NoReturn:
        error = kind(message, self._peer_report())
        self._broken = error
        raise error


def _check_cfg(addr: int, size: int) -> None:
    # QEMU asserts on other lengths, i.e. it would abort instead of answering.
    if size not in (1, 2, 4):
        raise ValueError(f"PCI config access size must be 1, 2 or 4, not {size}")
    if addr < 0:
        raise ValueError(f"PCI config address {addr} is negative")


def _check_bar(size: int) -> None:
    if size not in (1, 2, 4, 8):
        raise ValueError(f"BAR access size must be 1, 2, 4 or 8, not {size}")


def _space(memory: bool) -> str:
    return "memory BAR" if memory else "I/O port"
