"""The `sim` virtio-net: a Python model of legacy virtio-net-pci, deterministic and able to misbehave.

Its wire is a UNIX datagram socket (``DgramWire``: frames the driver
transmits go from ``netdev_path`` to the peer's socket, datagrams sent to
``netdev_path`` are received, as with QEMU's ``-netdev dgram``) or a tap
device (``TapWire``: the Linux kernel is the peer, as with ``-netdev
tap``). What is common to every device (registers,
queues, interrupts, the worker, the hostile switches) is
``virtio_device.VirtioPciDevice``; this module is virtio-net's part: the
TX, RX and control queues, the device config, the RX filter.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Callable, Optional

from porter.harness.pci import PCI_CLASS_NETWORK_ETHERNET
from porter.harness.virtio_device import VirtioPciDevice
from porter.harness.virtio_net import (
    DEFAULT_MAC, VIRTIO_NET_CONFIG_MAC, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET,
    VIRTIO_NET_CTRL_QUEUE, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, VIRTIO_NET_CTRL_RX_ALLUNI,
    VIRTIO_NET_CTRL_RX_NOBCAST, VIRTIO_NET_CTRL_RX_NOMULTI, VIRTIO_NET_CTRL_RX_NOUNI,
    VIRTIO_NET_CTRL_RX_PROMISC, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, VIRTIO_NET_CTRL_VLAN_DEL,
    VIRTIO_NET_ERR,
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_VLAN,
    VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF,
    VIRTIO_NET_F_STATUS, VIRTIO_NET_HDR, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_LEN, VIRTIO_NET_OK, VIRTIO_NET_RX_QUEUE, VIRTIO_NET_S_LINK_UP, VIRTIO_NET_TX_QUEUE,
    header_len, parse_mac)
from porter.harness.virtio_pci import (VIRTIO_F_ANY_LAYOUT, VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_ID_NET,
                                       VIRTIO_PCI_DEVICE_NET, VIRTIO_RING_F_INDIRECT_DESC, bit)
from porter.harness.vring import U16, Chain, DeviceQueue, RingViolation

QUEUE_SIZE = 256
DEFAULT_FEATURES = (bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_NET_F_MRG_RXBUF)
                    | bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_CTRL_RX)
                    | bit(VIRTIO_RING_F_INDIRECT_DESC))
# What the model implements. GUEST_* offloads are safe to offer (the sim never
# sends offloaded frames) and make a 2.6 driver post big-packet RX chains;
# HOST_TSO/UFO would need segmentation and EVENT_IDX event suppression: not offered.
SUPPORTED_FEATURES = (DEFAULT_FEATURES | bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM)
                      | bit(VIRTIO_NET_F_GUEST_TSO4) | bit(VIRTIO_NET_F_GUEST_TSO6)
                      | bit(VIRTIO_NET_F_GUEST_ECN) | bit(VIRTIO_NET_F_GUEST_UFO)
                      | bit(VIRTIO_NET_F_CTRL_VLAN) | bit(VIRTIO_NET_F_CTRL_RX_EXTRA)
                      | bit(VIRTIO_F_NOTIFY_ON_EMPTY) | bit(VIRTIO_F_ANY_LAYOUT))

MAX_FRAME = 65536             # largest datagram taken from the wire (QEMU's dgram takes 64 KiB + change)
RX_BURST = 256                # frames delivered per wake-up before TX gets a turn
TX_RETRY_MS = 1               # the wire was full: try the TX ring again this soon
_BROADCAST = b"\xff" * 6
_ETH_P_8021Q = b"\x81\x00"


@dataclass(frozen=True)
class CtrlCommand:
    """One control-queue command as the driver sent it, and the ack the sim gave."""
    cls: int
    cmd: int
    data: bytes
    ack: int


@dataclass
class RxFilter:
    """The RX mode the driver set through the control queue; QEMU starts promiscuous, so does the sim."""
    promisc: bool = True
    allmulti: bool = False
    alluni: bool = False
    nomulti: bool = False
    nouni: bool = False
    nobcast: bool = False
    unicast: list[bytes] = field(default_factory=list)
    multicast: list[bytes] = field(default_factory=list)
    vlans: set[int] = field(default_factory=set)


class DgramWire:
    """The wire as a bound UNIX datagram socket at ``path``; frames go to ``peer_path``."""

    def __init__(self, path: str, peer_path: Optional[str]) -> None:
        self.path, self.peer_path = path, peer_path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.bind(path)
            self._sock.setblocking(False)     # the worker never blocks on the wire; poll says when
        except BaseException:
            self._sock.close()
            raise

    def fileno(self) -> int:
        return self._sock.fileno()

    def send(self, frame: bytes) -> Optional[bool]:
        """True: sent; False: the peer's queue is full (try again); None: dropped (no peer)."""
        if self.peer_path is None:
            return None
        try:
            self._sock.sendto(frame, self.peer_path)
        except BlockingIOError:
            return False
        except OSError:                 # no peer bound, frame too big: the wire drops it, as QEMU's does
            return None
        return True

    def recv_into(self, buf: bytearray) -> Optional[int]:
        try:
            return self._sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            return None

    def close(self) -> None:
        self._sock.close()


class TapWire:
    """The wire as a tap fd (one frame per read and write); the device owns and closes it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        os.set_blocking(fd, False)

    def fileno(self) -> int:
        return self._fd

    def send(self, frame: bytes) -> Optional[bool]:
        try:
            os.write(self._fd, frame)
        except BlockingIOError:
            return False
        except OSError:                 # the tap is down, or the frame too big: dropped
            return None
        return True

    def recv_into(self, buf: bytearray) -> Optional[int]:
        try:
            return os.readv(self._fd, [buf])
        except (BlockingIOError, InterruptedError):
            return None

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass


class SimNetDevice(VirtioPciDevice):
    """A legacy virtio-net-pci device (1af4:1000) modelled in Python.

    Queues: 0 RX, 1 TX, 2 control (when CTRL_VQ is offered), ``queue_size``
    entries each. ``faults`` are ``virtio_device.Faults`` fields. The wire is
    a datagram socket (``peer_path``: where frames go) or, with ``tap_fd``,
    a tap device (the device takes the fd over).

    What tests look at, besides the base's: ``ctrl_commands``, ``rx_filter``,
    and the counters ``frames_tx`` (frames put on the wire), ``frames_rx``
    (frames written to RX buffers), ``tx_dropped`` (no peer), ``rx_dropped``
    (no posted chain could hold it), ``rx_filtered``.
    """

    PCI_DEVICE_ID = VIRTIO_PCI_DEVICE_NET
    VIRTIO_ID = VIRTIO_ID_NET
    CLASS_CODE = PCI_CLASS_NETWORK_ETHERNET
    SUPPORTED_FEATURES = SUPPORTED_FEATURES

    def __init__(self, peer_path: Optional[str] = None, *, tap_fd: Optional[int] = None, mac: str = DEFAULT_MAC,
                 features: int = DEFAULT_FEATURES, queue_size: int = QUEUE_SIZE, **faults: object) -> None:
        if peer_path is not None and tap_fd is not None:
            raise ValueError("a SimNetDevice has one wire: a datagram peer_path or a tap_fd, not both")
        self.mac = parse_mac(mac)
        self.peer_path = peer_path
        self.netdev_path: Optional[str] = None
        self._tap_fd = tap_fd
        self.link_up = True
        self.ctrl_commands: list[CtrlCommand] = []
        self.frames_tx = self.frames_rx = 0
        self.tx_dropped = self.rx_dropped = self.rx_filtered = 0
        self._rx_pending: Optional[bytes] = None   # a frame off the wire, waiting for RX buffers
        self._rx_buf = bytearray(MAX_FRAME + 1)    # one byte more, to tell an oversized datagram
        self._rx_more = False                      # the last RX burst stopped at its limit
        self._tx_retry = False                     # the wire was full: TX ring not drained
        self._wire = None
        super().__init__(features=features, queue_size=queue_size, faults=faults)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"netdev={self.netdev_path!r}" if self.netdev_path else "tap"
        return f"SimNetDevice(mac={self.mac.hex(':')}, features={self.features:#x}, {state})"

    # -- the model's part of VirtioPciDevice -----------------------------------------------

    def open_resources(self, workdir: str, owned: list) -> None:
        if self._tap_fd is not None:
            self._wire = TapWire(self._tap_fd)
        else:
            self.netdev_path = os.path.join(workdir, "net.sock")
            self._wire = DgramWire(self.netdev_path, self.peer_path)
        owned.append(self._wire)

    def queue_names(self) -> list[str]:
        return ["rx", "tx"] + (["ctrl"] if self.features & bit(VIRTIO_NET_F_CTRL_VQ) else [])

    def config_bytes(self) -> bytes:
        """struct virtio_net_config as far as the offered features make it exist (QEMU sizes it so)."""
        status = U16.pack(VIRTIO_NET_S_LINK_UP if self.link_up else 0)
        return self.mac + (status if self.features & bit(VIRTIO_NET_F_STATUS) else b"")

    def config_write(self, offset: int, data: bytes) -> None:
        # Legacy drivers may set the MAC through config; the status field is read-only.
        mac = bytearray(self.mac)
        for i, byte in enumerate(data):
            if VIRTIO_NET_CONFIG_MAC <= offset + i < VIRTIO_NET_CONFIG_MAC + 6:
                mac[offset + i - VIRTIO_NET_CONFIG_MAC] = byte
        self.mac = bytes(mac)

    def device_reset(self) -> None:
        """Forget the RX mode and a stalled TX; the wire and link stay."""
        self._tx_retry = False
        self.rx_filter = RxFilter()

    def queue_work(self, index: int) -> Optional[Callable[[DeviceQueue], None]]:
        # An RX kick only says "buffers posted": device_work's receive burst looks at them.
        return {VIRTIO_NET_TX_QUEUE: self._transmit, VIRTIO_NET_CTRL_QUEUE: self._control}.get(index)

    def poll_fds(self) -> list[int]:
        # Hold one frame; the rest wait in the socket, as in QEMU. Before DRIVER_OK
        # frames wait there too: setting it wakes the worker.
        if self._rx_pending is None and self._wire is not None and self._ram is not None and self._running:
            return [self._wire.fileno()]
        return []

    def poll_timeout(self) -> Optional[int]:
        return 0 if self._rx_more else TX_RETRY_MS if self._tx_retry else None

    def device_work(self, ready: set[int]) -> None:
        self._rx_more = False
        if self._rx_pending is None:
            self._rx_pending = self._recv_frame()
        self.serve(self.queue(VIRTIO_NET_RX_QUEUE), self._receive_burst)

    # -- what tests do to the device --------------------------------------------------------

    def set_link(self, up: bool) -> None:
        """Change the link status in device config and raise a config interrupt (if STATUS is offered)."""
        with self._lock:
            self.link_up = up
        if self.features & bit(VIRTIO_NET_F_STATUS):
            self.config_changed()

    # -- TX -----------------------------------------------------------------------------------

    def _transmit(self, queue: DeviceQueue) -> None:
        hdr_len = header_len(self.guest_features)
        self._tx_retry = False
        for _ in range(queue.avail_count(self._ram)):
            chain = self.chain(queue)
            where = f"{queue.label}: chain at descriptor {chain.head}"
            if chain.writable:
                raise RingViolation(f"{where}: TX chain has device-writable buffers")
            if not hdr_len <= chain.readable_len <= hdr_len + MAX_FRAME:
                raise RingViolation(f"{where}: TX chain carries {chain.readable_len} bytes; it must hold a "
                                    f"{hdr_len}-byte virtio-net header and at most {MAX_FRAME} frame bytes")
            data = self.gather(chain.readable)
            frame = self._apply_tx_header(where, data[:hdr_len], data[hdr_len:])
            if not self._send(frame):
                # Leave the chain on the ring and come back soon: the peer's queue is full.
                self._tx_retry = True
                self.kick_again(queue.index)
                return
            queue.take()
            self.put_used(queue, [(chain, 0)])

    def _apply_tx_header(self, where: str, header: bytes, frame: bytes) -> bytes:
        flags, gso_type, _, _, csum_start, csum_offset = VIRTIO_NET_HDR.unpack_from(header)
        if gso_type != VIRTIO_NET_HDR_GSO_NONE:
            raise RingViolation(f"{where}: header asks for GSO type {gso_type}; no HOST_TSO/UFO was offered")
        if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
            if not self.negotiated(VIRTIO_NET_F_CSUM):
                raise RingViolation(f"{where}: header has NEEDS_CSUM, but VIRTIO_NET_F_CSUM was not negotiated")
            if csum_start + csum_offset + 2 > len(frame):
                raise RingViolation(f"{where}: checksum at {csum_start}+{csum_offset} lies beyond the "
                                    f"{len(frame)}-byte frame")
            frame = _complete_checksum(frame, csum_start, csum_offset)
        return frame

    def _send(self, frame: bytes) -> bool:
        """Put ``frame`` on the wire; False if the peer's queue is full (try again later)."""
        if not self.link_up:            # QEMU drops what a NIC with its link down sends
            self.tx_dropped += 1
            return True
        sent = self._wire.send(frame)
        if sent is None:
            self.tx_dropped += 1
        elif sent:
            self.frames_tx += 1
        return sent is not False

    # -- control queue -------------------------------------------------------------------------

    def _control(self, queue: DeviceQueue) -> None:
        for _ in range(queue.avail_count(self._ram)):
            chain = self.chain(queue)
            if chain.readable_len < 2 or chain.capacity < 1 or chain.readable_len > 64 * 1024:
                raise RingViolation(f"{queue.label}: chain at descriptor {chain.head}: a command needs a "
                                    f"class/cmd header and a 1-byte ack buffer, found {chain.readable_len} "
                                    f"readable and {chain.capacity} writable bytes")
            request = self.gather(chain.readable)
            cls, cmd, data = request[0], request[1], request[2:]
            ack = self._control_answer(cls, cmd, data)
            self.ctrl_commands.append(CtrlCommand(cls, cmd, data, ack))
            self.scatter(chain.writable, bytes([ack]))
            queue.take()
            self.put_used(queue, [(chain, 1)])

    def _control_answer(self, cls: int, cmd: int, data: bytes) -> int:
        """Apply a command as QEMU would; VIRTIO_NET_ERR for what was not negotiated or is malformed."""
        f = self.rx_filter
        if cls == VIRTIO_NET_CTRL_RX and len(data) == 1:
            needed = VIRTIO_NET_F_CTRL_RX if cmd <= VIRTIO_NET_CTRL_RX_ALLMULTI else VIRTIO_NET_F_CTRL_RX_EXTRA
            attr = {VIRTIO_NET_CTRL_RX_PROMISC: "promisc", VIRTIO_NET_CTRL_RX_ALLMULTI: "allmulti",
                    VIRTIO_NET_CTRL_RX_ALLUNI: "alluni", VIRTIO_NET_CTRL_RX_NOMULTI: "nomulti",
                    VIRTIO_NET_CTRL_RX_NOUNI: "nouni", VIRTIO_NET_CTRL_RX_NOBCAST: "nobcast"}.get(cmd)
            if attr is None or not self.negotiated(needed):
                return VIRTIO_NET_ERR
            setattr(f, attr, bool(data[0]))
            return VIRTIO_NET_OK
        if cls == VIRTIO_NET_CTRL_MAC and cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET:
            tables = _parse_mac_tables(data)
            if tables is None or not self.negotiated(VIRTIO_NET_F_CTRL_RX):
                return VIRTIO_NET_ERR
            f.unicast, f.multicast = tables
            return VIRTIO_NET_OK
        if cls == VIRTIO_NET_CTRL_VLAN and len(data) == 2 and self.negotiated(VIRTIO_NET_F_CTRL_VLAN):
            vid = U16.unpack(data)[0]
            if vid >= 4096 or cmd not in (VIRTIO_NET_CTRL_VLAN_ADD, VIRTIO_NET_CTRL_VLAN_DEL):
                return VIRTIO_NET_ERR
            (f.vlans.add if cmd == VIRTIO_NET_CTRL_VLAN_ADD else f.vlans.discard)(vid)
            return VIRTIO_NET_OK
        return VIRTIO_NET_ERR

    # -- RX --------------------------------------------------------------------------------------

    def _recv_frame(self) -> Optional[bytes]:
        n = self._wire.recv_into(self._rx_buf)
        if n is None:
            return None
        if n > MAX_FRAME:
            self.rx_dropped += 1        # no Ethernet frame is that long
            return None
        return bytes(self._rx_buf[:n])

    def _receive_burst(self, queue: DeviceQueue) -> None:
        for _ in range(RX_BURST):
            if self._rx_pending is None:
                self._rx_pending = self._recv_frame()
                if self._rx_pending is None:
                    return
            if not self._deliver(queue, self._rx_pending):
                return                           # no buffers: wait for the driver's RX kick
            self._rx_pending = None
        self._rx_more = True

    def _deliver(self, queue: DeviceQueue, frame: bytes) -> bool:
        """Write ``frame`` into posted RX buffers. False: not enough buffers yet (frame kept)."""
        if not self.link_up:            # ... and what would reach it
            self.rx_dropped += 1
            return True
        if not self._accepts(frame):
            self.rx_filtered += 1
            return True
        hdr_len = header_len(self.guest_features)
        mergeable = hdr_len > VIRTIO_NET_HDR_LEN
        needed = hdr_len + len(frame)
        available = queue.avail_count(self._ram)
        chains: list[Chain] = []
        room = 0
        while room < needed and len(chains) < (available if mergeable else min(available, 1)):
            chain = self.chain(queue, len(chains))
            if chain.readable:
                raise RingViolation(f"{queue.label}: chain at descriptor {chain.head}: "
                                    f"RX chain has device-readable buffers")
            if not chains and chain.capacity < hdr_len:
                raise RingViolation(f"{queue.label}: chain at descriptor {chain.head}: "
                                    f"{chain.capacity} bytes cannot hold the {hdr_len}-byte virtio-net header")
            chains.append(chain)
            room += chain.capacity
        if room < needed:
            if not chains:
                return False
            if mergeable and available < queue.num:
                return False                     # more buffers may come
            # A non-mergeable chain, or a whole ring, too small for the frame: QEMU drops it too.
            self.rx_dropped += 1
            return True
        header = bytearray(hdr_len)
        if mergeable:
            U16.pack_into(header, VIRTIO_NET_HDR_LEN, len(chains))
        data = bytes(header) + frame
        used, done = [], 0
        for chain in chains:
            n = self.scatter(chain.writable, data[done:done + chain.capacity])
            used.append((chain, n))
            done += n
        queue.take(len(chains))
        self.put_used(queue, used)
        self.frames_rx += 1
        return True

    def _accepts(self, frame: bytes) -> bool:
        """QEMU's receive_filter: the RX mode and MAC/VLAN tables the driver set."""
        f = self.rx_filter
        if f.promisc:
            return True
        if (self.negotiated(VIRTIO_NET_F_CTRL_VLAN) and frame[12:14] == _ETH_P_8021Q
                and len(frame) >= 16 and _vlan_id(frame) not in f.vlans):
            return False
        dest = frame[:6]
        if len(dest) < 6:
            return False
        if dest == _BROADCAST:
            return not f.nobcast
        if dest[0] & 1:
            return not f.nomulti and (f.allmulti or dest in f.multicast)
        return not f.nouni and (f.alluni or dest == self.mac or dest in f.unicast)


def _parse_mac_tables(data: bytes) -> Optional[tuple[list[bytes], list[bytes]]]:
    """VIRTIO_NET_CTRL_MAC_TABLE_SET: unicast then multicast, each u32 count + count MACs; None if malformed."""
    tables, at = [], 0
    for _ in range(2):
        if at + 4 > len(data):
            return None
        count = struct.unpack_from("<I", data, at)[0]
        at += 4
        if at + 6 * count > len(data):
            return None
        tables.append([data[at + 6 * i:at + 6 * i + 6] for i in range(count)])
        at += 6 * count
    return (tables[0], tables[1]) if at == len(data) else None


def _vlan_id(frame: bytes) -> int:
    return struct.unpack_from("!H", frame, 14)[0] & 0xFFF


def _complete_checksum(frame: bytes, start: int, offset: int) -> bytes:
    """What CSUM offload does: fold the one's-complement sum from ``start`` (the field holds the
    pseudo-header sum) and store its complement at ``start + offset``."""
    out = bytearray(frame)
    data = out[start:] + (b"\0" if (len(out) - start) % 2 else b"")
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", out, start + offset, ~total & 0xFFFF)
    return bytes(out)
