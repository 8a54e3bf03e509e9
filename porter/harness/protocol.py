"""The driver host's wire protocol, Python side (C side: dde-shims/driver-host/protocol.h)."""

import array
import enum
import socket
import struct
from dataclasses import dataclass

MAGIC = 0x52545250          # "PRTR"
VERSION = 1
MSG_MAX = 65536
IFNAMSIZ = 16
HEADER = struct.Struct("<IHHII")      # magic, version, type, seq, len


class Msg(enum.IntEnum):
    SETUP = 1
    OPEN = 2
    CLOSE = 3
    XMIT = 4
    INFO = 5
    RX_MODE = 6
    SHUTDOWN = 7
    STATS = 8
    REPLY = 64
    READY = 65
    RX = 66
    LOG = 67
    ERROR = 68
    BYE = 69
    PCI_GET_DEVICE = 128
    PCI_READ = 129
    PCI_WRITE = 130
    PCI_IRQ = 131
    PIO_READ = 132
    PIO_WRITE = 133


SETUP = struct.Struct("<II8I")          # mem_size, nirqs, irq_lines[8]
REPLY_HDR = struct.Struct("<i")
INFO_REPLY = struct.Struct("<6sHIII")   # mac, flags, mtu, link_up, running
STATS_REPLY = struct.Struct("<IIII")    # arena_in_use, portio_traps, rx_frames, tx_frames
READY = struct.Struct("<I" + "16s" * 8)
RX_MODE = struct.Struct("<16sIII")      # ifname, promisc, allmulti, nmc
GET_DEVICE = struct.Struct("<I")
PCI_CFG = struct.Struct("<BBBBHHI")     # bus, slot, func, pad, pos, len, value
PIO = struct.Struct("<HHI")             # port, size, value


class ProtocolError(Exception):
    """A message that does not follow the protocol."""


@dataclass(frozen=True)
class Message:
    type: int
    seq: int
    payload: bytes
    fds: tuple[int, ...] = ()


def ifname_bytes(name: str) -> bytes:
    raw = name.encode()
    if not raw or len(raw) >= IFNAMSIZ:
        raise ValueError(f"interface name {name!r} must have 1..{IFNAMSIZ - 1} bytes")
    return raw.ljust(IFNAMSIZ, b"\0")


def encode(mtype: int, seq: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(MAGIC, VERSION, int(mtype), seq, len(payload)) + payload


def send(sock: socket.socket, mtype: int, seq: int, payload: bytes = b"", fds=()) -> None:
    data = encode(mtype, seq, payload)
    if len(data) > MSG_MAX:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MSG_MAX}")
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], anc)


def recv(sock: socket.socket) -> Message | None:
    """One message, or None when the peer closed the channel. A malformed one
    raises ProtocolError (after closing any fds it carried)."""
    data, anc, flags, _ = sock.recvmsg(MSG_MAX, socket.CMSG_SPACE(24 * 4))
    fds = []
    for level, kind, blob in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(blob[:len(blob) - len(blob) % a.itemsize])
            fds.extend(a)
    if not data and not fds:
        return None
    try:
        if flags & socket.MSG_TRUNC:
            raise ProtocolError("message truncated")
        if len(data) < HEADER.size:
            raise ProtocolError("message shorter than its header")
        magic, version, mtype, seq, length = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise ProtocolError(f"bad magic {magic:#x}")
        if version != VERSION:
            raise ProtocolError(f"protocol version {version}, expected {VERSION}")
        if length != len(data) - HEADER.size:
            raise ProtocolError(f"payload length {length} in the header, {len(data) - HEADER.size} sent")
    except ProtocolError:
        for fd in fds:
            _close(fd)
        raise
    return Message(mtype, seq, data[HEADER.size:], tuple(fds))


def _close(fd: int) -> None:
    import os
    try:
        os.close(fd)
    except OSError:
        pass
