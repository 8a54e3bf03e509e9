"""The driver host's wire protocol, Python side: framing, sending and receiving.

The numbers and layouts (message types, structs, limits, exit statuses) are
``contract``, generated from dde-shims/driver-host/protocol.h; this module
re-exports them, so ``P.Msg.XMIT`` and ``P.INFO_REPLY`` mean what the C side
compiles.
"""

import array
import os
import socket
from dataclasses import dataclass

from .contract import *          # noqa: F401,F403  (the generated contract is this module's vocabulary)
from .contract import IFNAMSIZ, MSG_HDR, MSG_MAGIC, MSG_MAX, MSG_MAX_FDS, PROTO_VERSION


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
    return MSG_HDR.pack(MSG_MAGIC, PROTO_VERSION, int(mtype), seq, len(payload)) + payload


def send(sock: socket.socket, mtype: int, seq: int, payload: bytes = b"", fds=()) -> None:
    data = encode(mtype, seq, payload)
    if len(data) > MSG_MAX:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MSG_MAX}")
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], anc)


def recv(sock: socket.socket) -> Message | None:
    """One message, or None when the peer closed the channel. A malformed one
    raises ProtocolError (after closing any fds it carried)."""
    data, anc, flags, _ = sock.recvmsg(MSG_MAX, socket.CMSG_SPACE(MSG_MAX_FDS * 4))
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
        if len(data) < MSG_HDR.size:
            raise ProtocolError("message shorter than its header")
        magic, version, mtype, seq, length = MSG_HDR.unpack_from(data)
        if magic != MSG_MAGIC:
            raise ProtocolError(f"bad magic {magic:#x}")
        if version != PROTO_VERSION:
            raise ProtocolError(f"protocol version {version}, expected {PROTO_VERSION}")
        if length != len(data) - MSG_HDR.size:
            raise ProtocolError(f"payload length {length} in the header, {len(data) - MSG_HDR.size} sent")
    except ProtocolError:
        for fd in fds:
            _close(fd)
        raise
    return Message(mtype, seq, data[MSG_HDR.size:], tuple(fds))


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
