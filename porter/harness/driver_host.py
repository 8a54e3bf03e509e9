"""Run a driver host (`porter build`'s executable) on a Machine and drive it as
libmachdevdde drives netdde on the Hurd: open an interface, transmit, receive,
read MAC and link state."""

import collections
import errno
import os
import queue
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from . import protocol as P
from .frame_ring import FrameRings
from .machine import Machine


class DriverHostError(RuntimeError):
    """The driver host failed; the message carries its exit and output."""


class DriverHostDied(DriverHostError):
    pass


@dataclass(frozen=True)
class NetInfo:
    mac: bytes
    flags: int
    mtu: int
    link_up: bool
    running: bool


@dataclass(frozen=True)
class RngInfo:
    """porter's hw_random core in the driver host: the registered rng and its counters (RNG_INFO)."""
    name: str
    pull_size: int
    pulls: int
    bytes_pulled: int
    bytes_read: int
    empty_pulls: int
    overruns: int
    timeouts: int
    buffered: int


# Messages that carry part of the answer to a request (its seq) before the reply: the reply's
# data is what they carried, in order.
STREAMED = frozenset({P.Msg.RNG_DATA})


@dataclass(frozen=True)
class HostStats:
    arena_in_use: int
    portio_traps: int
    rx_frames: int
    tx_frames: int
    tx_dropped: int
    rx_dropped: int
    arena_spare: int      # of arena_in_use: slabs' spare chunks, an allocator cache


# ---- virtio-blk -----------------------------------------------------------------------------

class BlkError(DriverHostError):
    """A disk request the driver host refused or the disk failed; ``errno`` is positive."""

    def __init__(self, what: str, status: int):
        super().__init__(f"{what}: {os.strerror(-status)} ({status})")
        self.errno = -status


@dataclass(frozen=True)
class BlkDisk:
    """An open disk or partition (BLK_OPEN's reply): sizes in 512-byte sectors."""
    handle: int
    name: str                 # the Mach name it was opened by (hd0, hd0s1)
    disk: str                 # the driver's name for the disk (vda)
    sectors: int
    start: int                # first sector on the disk (a partition's offset)
    block_size: int
    read_only: bool
    window_phys: int          # the data window in guest memory
    window_bytes: int


@dataclass(frozen=True)
class BlkStats:
    reads: int
    writes: int
    flushes: int
    errors: int
    in_flight: int
    bytes_read: int
    bytes_written: int
# -----------------------------------------------------------------------------------------------


def _name(mtype: int) -> str:
    try:
        return P.Msg(mtype).name
    except ValueError:
        return f"message type {mtype}"


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return {**P.HOST_EXIT_DOC, **P.EXIT_DOC}.get(code, f"exited with status {code}")


class DriverHost:
    def __init__(self, executable: Path, machine: Machine, *, env: dict | None = None,
                 reply_timeout: float = 20.0, ready_timeout: float = 60.0):
        self.machine = machine
        self.reply_timeout = reply_timeout
        self.ready_ifnames: list[str] = []
        self.rx: "queue.Queue[tuple[str, bytes]]" = queue.Queue()      # RX messages (no frame rings)
        self.rings: FrameRings | None = None
        self._rx_taken: collections.deque = collections.deque()   # off the RX ring, not yet received
        self.logs: list[str] = []
        self.protocol_errors: list[str] = []
        self._pending: dict[int, "queue.Queue"] = {}
        self._streamed: dict[int, list[bytes]] = {}      # seq -> STREAMED payloads so far
        self._seq = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._blk_done: dict[int, int] = {}          # virtio-blk: tag -> completion status
        self._blk_cond = threading.Condition()
        self._blk_tag = 0
        self._closed = False
        self._dir = Path(tempfile.mkdtemp(prefix="porter-host-"))
        self.log_path = self._dir / "driver-host.log"
        ctl_h, ctl_d = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        io_h, io_d = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.ctl, self.io = ctl_h, io_h
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(executable), "--ctl-fd", str(ctl_d.fileno()), "--io-fd", str(io_d.fileno())],
                pass_fds=(ctl_d.fileno(), io_d.fileno()), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        ctl_d.close()
        io_d.close()
        self._finalizer = weakref.finalize(self, _kill, self.proc)
        self._io_thread = threading.Thread(target=self._serve_io, name="host-io", daemon=True)
        self._ctl_thread = threading.Thread(target=self._read_ctl, name="host-ctl", daemon=True)
        self._io_thread.start()
        self._ctl_thread.start()
        try:
            self._setup()
            if not self._ready.wait(ready_timeout):
                raise self._failure(f"no READY within {ready_timeout}s (the DDE's initcalls did not finish)")
            if self.proc.poll() is not None:
                raise self._failure("the driver host died during start-up")
        except BaseException:
            self.close()
            raise

    # -- start-up
    def _setup(self) -> None:
        m = self.machine
        lines = [s.irq for s in m.slots]
        fds = [m.memory.fd]
        for s in m.slots:
            fds += [s.irq_fd, s.resample_fd]
        payload = P.SETUP_REQ.pack(m.arena_size, len(lines), *(lines + [0] * (P.MAX_DEVICES - len(lines))))
        status, _ = self._call(P.Msg.SETUP, payload, fds)
        if status:
            raise self._failure(f"SETUP refused ({status})")

    # -- requests
    def _call(self, mtype: int, payload: bytes = b"", fds=(), timeout: float | None = None):
        with self._lock:
            self._seq += 1
            seq = self._seq
            box: "queue.Queue" = queue.Queue(1)
            self._pending[seq] = box
        try:
            P.send(self.ctl, mtype, seq, payload, fds)
        except OSError as e:
            raise self._failure(f"cannot send to the driver host ({e})") from None
        deadline = time.monotonic() + (timeout or self.reply_timeout)
        while True:
            try:
                kind, body = box.get(timeout=0.2)
                break
            except queue.Empty:
                if self.proc.poll() is not None and box.empty():
                    raise self._failure(f"the driver host died while {_name(mtype)} was pending")
                if time.monotonic() > deadline:
                    raise self._failure(f"no reply to {_name(mtype)} within {timeout or self.reply_timeout}s")
        self._pending.pop(seq, None)
        if kind == "error":
            raise DriverHostError(f"the driver host rejected {_name(mtype)}: {body}")
        status = P.REPLY_HDR.unpack_from(body)[0]
        return status, body[P.REPLY_HDR.size:]

    def open(self, ifname: str = "eth0") -> None:
        status, _ = self._call(P.Msg.OPEN, P.ifname_bytes(ifname))
        if status:
            raise DriverHostError(f"open {ifname}: {os.strerror(-status)} ({status})")

    def close_if(self, ifname: str = "eth0") -> None:
        status, _ = self._call(P.Msg.CLOSE, P.ifname_bytes(ifname))
        if status:
            raise DriverHostError(f"close {ifname}: {os.strerror(-status)} ({status})")

    def xmit(self, frame: bytes, ifname: str = "eth0") -> int:
        """dev_queue_xmit's verdict: 0 when the driver took the frame."""
        status, _ = self._call(P.Msg.XMIT, P.ifname_bytes(ifname) + bytes(frame))
        return status

    def attach_frame_rings(self, slots: int = 256, slot_size: int = 2048) -> FrameRings:
        """From now on frames go through shared-memory rings, not a message each (NET_RINGS)."""
        rings = FrameRings(slots, slot_size)
        try:
            status, _ = self._call(P.Msg.NET_RINGS, P.NET_RINGS_REQ.pack(slots, slot_size), rings.handover_fds())
        except BaseException:
            rings.close()
            raise
        if status:
            rings.close()
            raise DriverHostError(f"frame rings refused: {os.strerror(-status)} ({status})")
        self.rings = rings
        return rings

    def _dev(self, ifname: str) -> int:
        try:
            return self.ready_ifnames.index(ifname)
        except ValueError:
            raise DriverHostError(f"{ifname}: the driver host has no such interface "
                                  f"({', '.join(self.ready_ifnames) or 'none'})") from None

    def send(self, frame: bytes, ifname: str = "eth0", timeout: float = 5.0) -> None:
        """Transmit, waiting while the driver has stopped its queue (ring full); never dropped for that."""
        self.send_many([frame], ifname, timeout)

    def send_many(self, frames, ifname: str = "eth0", timeout: float = 5.0) -> int:
        """Transmit ``frames`` in order, waiting while the driver's queue is stopped; how many.

        With frame rings a frame is sent once it is in the TX ring (the host
        hands it to the driver, and counts what the driver refuses as
        tx_dropped). Without, each is an XMIT: the DDE has no qdisc, so the
        host answers -EAGAIN while the driver's queue is stopped and the
        caller is the one that waits."""
        frames = list(frames)
        if self.rings is not None:
            done = self.rings.tx.put(self._dev(ifname), frames, timeout)
            if done < len(frames):
                self._check_alive("a TX ring slot was awaited")
                raise DriverHostError(f"transmit on {ifname}: the TX ring stayed full for {timeout}s "
                                      f"(the driver took no frame; {done} of {len(frames)} queued)")
            return done
        for frame in frames:
            deadline = time.monotonic() + timeout
            while (status := self.xmit(frame, ifname)) == -errno.EAGAIN and time.monotonic() < deadline:
                time.sleep(0.0005)
            if status:
                raise DriverHostError(f"transmit on {ifname}: {os.strerror(-status)} ({status})")
        return len(frames)

    def _check_alive(self, what: str) -> None:
        if self.proc.poll() is not None:
            raise self._failure(f"the driver host died while {what}")

    def info(self, ifname: str = "eth0") -> NetInfo:
        status, body = self._call(P.Msg.INFO, P.ifname_bytes(ifname))
        if status:
            raise DriverHostError(f"info {ifname}: {os.strerror(-status)} ({status})")
        mac, flags, mtu, link, running = P.INFO_REPLY.unpack_from(body)
        return NetInfo(mac, flags, mtu, bool(link), bool(running))

    def rx_mode(self, ifname: str = "eth0", promisc=False, allmulti=False, multicast=()) -> None:
        mc = b"".join(bytes(a) for a in multicast)
        body = P.RX_MODE_REQ.pack(P.ifname_bytes(ifname), int(promisc), int(allmulti), len(multicast)) + mc
        status, _ = self._call(P.Msg.RX_MODE, body)
        if status:
            raise DriverHostError(f"rx mode {ifname}: {os.strerror(-status)} ({status})")

    def stats(self) -> HostStats:
        _, body = self._call(P.Msg.STATS)
        return HostStats(*P.STATS_REPLY.unpack_from(body))

    # -- virtio-blk: the disk as libmachdev drives it (open by name, sectors, completions) ------
    def blk_open(self, name: str = "hd0", writable: bool = True, window_bytes: int = 1 << 20) -> BlkDisk:
        raw = name.encode()
        if not raw or len(raw) >= P.BLK_NAMESIZ:
            raise ValueError(f"disk name {name!r} must have 1..{P.BLK_NAMESIZ - 1} bytes")
        status, body = self._call(P.Msg.BLK_OPEN, P.BLK_OPEN_REQ.pack(raw, int(writable), window_bytes))
        if status:
            raise BlkError(f"open {name}", status)
        handle, bs, sectors, start, ro, wbytes, wphys, disk = P.BLK_OPEN_REPLY.unpack_from(body)
        return BlkDisk(handle, name, disk.split(b"\0", 1)[0].decode(), sectors, start, bs, bool(ro), wphys, wbytes)

    def blk_close(self, disk: BlkDisk) -> None:
        status, _ = self._call(P.Msg.BLK_CLOSE, P.BLK_HANDLE_REQ.pack(disk.handle))
        if status:
            raise BlkError(f"close {disk.name}", status)

    def blk_submit(self, disk: BlkDisk, op: str, sector: int = 0, nbytes: int = 0, offset: int = 0) -> tuple[int, int]:
        """Send one request ("read", "write", "flush"); (its tag, the host's verdict: 0 or -errno).
        A request taken (0) completes later: ``blk_wait(tag)``."""
        mtype = {"read": P.Msg.BLK_READ, "write": P.Msg.BLK_WRITE, "flush": P.Msg.BLK_FLUSH}[op]
        with self._blk_cond:
            self._blk_tag = (self._blk_tag + 1) & P.BLK_TAG_MAX
            tag = self._blk_tag
            self._blk_done.pop(tag, None)
        status, _ = self._call(mtype, P.BLK_RW_REQ.pack(disk.handle, tag, sector, nbytes, offset))
        return tag, status

    def blk_wait(self, tag: int, timeout: float = 10.0) -> int:
        """The completion status of request ``tag`` (its BLK_DONE)."""
        deadline = time.monotonic() + timeout
        with self._blk_cond:
            while tag not in self._blk_done:
                left = deadline - time.monotonic()
                if self.proc.poll() is not None:
                    raise self._failure(f"the driver host died while disk request {tag} was pending")
                if left <= 0:
                    raise TimeoutError(f"disk request {tag}: no completion within {timeout}s")
                self._blk_cond.wait(min(left, 0.2))
            return self._blk_done.pop(tag)

    def blk_completed(self) -> dict[int, int]:
        """Every completion not yet waited for (tag -> status), taken."""
        with self._blk_cond:
            done, self._blk_done = self._blk_done, {}
            return done

    def blk_io(self, disk: BlkDisk, op: str, sector: int = 0, nbytes: int = 0, offset: int = 0,
               timeout: float = 10.0) -> int:
        """Submit and wait: 0, or -errno (refused by the host, or failed at the disk)."""
        tag, status = self.blk_submit(disk, op, sector, nbytes, offset)
        return status if status else self.blk_wait(tag, timeout)

    def blk_read(self, disk: BlkDisk, sector: int, nbytes: int, offset: int = 0, timeout: float = 10.0) -> bytes:
        status = self.blk_io(disk, "read", sector, nbytes, offset, timeout)
        if status:
            raise BlkError(f"read {disk.name} sector {sector} +{nbytes}", status)
        return self.machine.memory.read(disk.window_phys + offset, nbytes)

    def blk_write(self, disk: BlkDisk, sector: int, data: bytes, offset: int = 0, timeout: float = 10.0) -> None:
        self.machine.memory.write(disk.window_phys + offset, data)
        status = self.blk_io(disk, "write", sector, len(data), offset, timeout)
        if status:
            raise BlkError(f"write {disk.name} sector {sector} +{len(data)}", status)

    def blk_flush(self, disk: BlkDisk, timeout: float = 10.0) -> None:
        status = self.blk_io(disk, "flush", timeout=timeout)
        if status:
            raise BlkError(f"flush {disk.name}", status)

    def blk_stats(self) -> BlkStats:
        _, body = self._call(P.Msg.BLK_STATS)
        reads, writes, flushes, errors, in_flight, _, rd, wr = P.BLK_STATS_REPLY.unpack_from(body)
        return BlkStats(reads, writes, flushes, errors, in_flight, rd, wr)

    # -- virtio-rng (host_rng.c)
    def rng_read(self, n: int, *, at_least: int | None = None, timeout: float | None = 5.0) -> bytes:
        """Up to ``n`` bytes from the registered hwrng, read as the Hurd translator reads them: back
        once ``at_least`` (default: all ``n``) arrived or ``timeout`` seconds passed (None: no limit).
        Fewer only at the timeout (b"": none came); the driver's errors raise."""
        want = n if at_least is None else at_least
        timeout_ms = -1 if timeout is None else int(timeout * 1000)
        wait = (timeout if timeout is not None else 24 * 3600) + self.reply_timeout
        status, data = self._call(P.Msg.RNG_READ, P.RNG_READ_REQ.pack(n, want, timeout_ms), timeout=wait)
        if status in (-errno.ETIMEDOUT, -errno.EAGAIN):
            return b""
        if status < 0:
            raise DriverHostError(f"rng read of {n} bytes: {os.strerror(-status)} ({status})")
        if len(data) != status:
            raise DriverHostError(f"rng read: the reply says {status} bytes, {len(data)} came")
        return data

    def cpu_seconds(self) -> float:
        """User and system CPU time the driver host has used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rng_info(self) -> RngInfo:
        _, body = self._call(P.Msg.RNG_INFO)
        name, *counters = P.RNG_INFO_REPLY.unpack_from(body)
        return RngInfo(name.rstrip(b"\0").decode(), *counters)

    def receive(self, timeout: float = 5.0) -> tuple[str, bytes]:
        """The next frame the DDE's RX callback delivered."""
        deadline = time.monotonic() + timeout
        while True:
            if self.rings is not None:
                if not self._rx_taken:
                    self._rx_taken.extend(self.rings.rx.get(min(0.2, max(0.0, deadline - time.monotonic()))))
                if self._rx_taken:
                    dev, frame = self._rx_taken.popleft()
                    return self.ready_ifnames[dev] if dev < len(self.ready_ifnames) else f"dev{dev}", frame
            try:
                return self.rx.get(timeout=0 if self.rings is not None
                                   else min(0.2, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise self._failure("the driver host died while a frame was awaited")
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"no frame within {timeout}s")

    def send_raw(self, data: bytes) -> None:
        """Put arbitrary bytes on the control channel (tests of the host's checks)."""
        self.ctl.sendmsg([data])

    def shutdown(self, timeout: float = 10.0) -> int:
        """Ask the host to stop; its exit status."""
        if self.proc.poll() is None:
            try:
                self._call(P.Msg.SHUTDOWN, timeout=timeout)
            except DriverHostError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.close()

    def close(self) -> int:
        if not self._closed:
            self._closed = True
            for s in (self.ctl, self.io):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                _kill(self.proc)
            self.ctl.close()
            self.io.close()
            if self.rings is not None:
                self.rings.close()
            self._finalizer.detach()
        return self.proc.returncode

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _failure(self, what: str) -> DriverHostDied:
        code = self.proc.poll()
        tail = "\n".join(self.output().splitlines()[-40:])
        return DriverHostDied(f"{what}; driver host {_describe_exit(code)}\n--- its output (last lines) ---\n{tail}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    # -- the channels' threads
    def _messages(self, sock: socket.socket, channel: str):
        """The messages arriving on ``sock`` until it closes; malformed ones are noted and skipped."""
        while True:
            try:
                msg = P.recv(sock)
            except P.ProtocolError as e:
                self.protocol_errors.append(f"{channel} channel: {e}")
                continue
            except OSError:
                return
            if msg is None:
                return
            yield msg

    def _read_ctl(self) -> None:
        for msg in self._messages(self.ctl, "control"):
            if msg.type == P.Msg.REPLY:
                box = self._pending.get(msg.seq)
                streamed = b"".join(self._streamed.pop(msg.seq, ()))
                if box is not None:
                    box.put(("reply", msg.payload + streamed))
            elif msg.type in STREAMED:
                if msg.seq in self._pending:
                    self._streamed.setdefault(msg.seq, []).append(msg.payload)
            elif msg.type == P.Msg.ERROR:
                text = msg.payload.decode(errors="replace")
                box = self._pending.get(msg.seq)
                if box is not None:
                    box.put(("error", text))
                else:
                    self.protocol_errors.append(text)
            elif msg.type == P.Msg.RX and len(msg.payload) >= P.IFNAMSIZ:
                name = msg.payload[:P.IFNAMSIZ].rstrip(b"\0").decode()
                self.rx.put((name, msg.payload[P.IFNAMSIZ:]))
            elif msg.type == P.Msg.READY:
                n, *names = P.READY_MSG.unpack_from(msg.payload)
                self.ready_ifnames = [x.rstrip(b"\0").decode() for x in names[:n]]
                self._ready.set()
            elif msg.type == P.Msg.BLK_DONE and len(msg.payload) == P.BLK_DONE_MSG.size:
                _, tag, status = P.BLK_DONE_MSG.unpack(msg.payload)
                with self._blk_cond:
                    self._blk_done[tag] = status
                    self._blk_cond.notify_all()
            elif msg.type == P.Msg.LOG:
                self.logs.append(msg.payload.decode(errors="replace"))
            elif msg.type == P.Msg.BYE:
                box = self._pending.get(msg.seq)
                if box is not None:
                    box.put(("reply", P.REPLY_HDR.pack(0)))
            for fd in msg.fds:
                os.close(fd)

    def _serve_io(self) -> None:
        m = self.machine
        for msg in self._messages(self.io, "io"):
            if msg.type == P.Msg.PIO_WRITE_POSTED:
                # nobody waits for this one: a failure can only be recorded
                try:
                    port, size, value = P.PIO_REQ.unpack(msg.payload)
                    m.pio_write(port, size, value, posted=True)
                except Exception as e:
                    m.errors.append(f"posted port write: {e}")
                continue
            try:
                status, value = self._io_answer(m, msg)
            except (struct.error, ValueError) as e:
                P.send(self.io, P.Msg.ERROR, msg.seq, f"malformed {msg.type}: {e}".encode())
                continue
            except Exception as e:       # a backend failure (QEMU gone): tell the host, keep the reason
                m.errors.append(f"device backend: {e}")
                status, value = -errno.EIO, 0xFFFFFFFF
            try:
                P.send(self.io, P.Msg.REPLY, msg.seq, P.IO_REPLY.pack(status, value & 0xFFFFFFFF))
            except OSError:
                return

    @staticmethod
    def _io_answer(m: Machine, msg: P.Message) -> tuple[int, int]:
        t = msg.type
        if t == P.Msg.PIO_READ:
            port, size, _ = P.PIO_REQ.unpack(msg.payload)
            return 0, m.pio_read(port, size)
        if t == P.Msg.PIO_WRITE:
            port, size, value = P.PIO_REQ.unpack(msg.payload)
            m.pio_write(port, size, value)
            return 0, 0
        if t == P.Msg.IO_SYNC:
            return 0, 0                  # served in order: every earlier write is done
        if t == P.Msg.PCI_GET_DEVICE:
            (nr,) = P.GET_DEVICE_REQ.unpack(msg.payload)
            s = m.pci_device(nr)
            return (0, s.bus | s.slot << 8 | s.func << 16) if s else (-errno.ENODEV, 0)
        if t in (P.Msg.PCI_READ, P.Msg.PCI_WRITE, P.Msg.PCI_IRQ):
            bus, slot, func, _, pos, size, value = P.PCI_CFG_REQ.unpack(msg.payload)
            if t == P.Msg.PCI_IRQ:
                s = m.find(bus, slot, func)
                return (0, s.irq) if s else (-errno.ENODEV, 0)
            if t == P.Msg.PCI_READ:
                v = m.cfg_read(bus, slot, func, pos, size)
                return (0, v) if v is not None else (-errno.EINVAL, 0xFFFFFFFF)
            return (0 if m.cfg_write(bus, slot, func, pos, size, value) else -errno.EINVAL), 0
        raise ValueError(f"unknown request type {t}")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
