"""ARP and ICMP echo spoken by the harness through the driver (the driver host
has no IP stack of its own): enough to make a real kernel answer."""

import struct
import time
from dataclasses import dataclass
from typing import Callable

ETH_ARP, ETH_IP = 0x0806, 0x0800


def ip_bytes(ip: str) -> bytes:
    return bytes(int(x) for x in ip.split("."))


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def arp_request(our_mac: bytes, our_ip: str, target_ip: str) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_IP, 6, 4, 1, our_mac, ip_bytes(our_ip),
                       bytes(6), ip_bytes(target_ip))
    return (b"\xff" * 6 + our_mac + struct.pack("!H", ETH_ARP) + body).ljust(60, b"\0")


def echo_request(src_mac: bytes, dst_mac: bytes, src_ip: str, dst_ip: str, ident: int, seq: int,
                 payload: bytes) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0x4000, 64, 1, 0,
                     ip_bytes(src_ip), ip_bytes(dst_ip))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return dst_mac + src_mac + struct.pack("!H", ETH_IP) + ip + icmp


@dataclass(frozen=True)
class EchoReply:
    seq: int
    bytes: int
    ttl: int
    rtt_ms: float


class Pinger:
    """send(frame) puts a frame on the wire through the driver; receive(timeout)
    returns the next frame the driver delivered."""

    def __init__(self, send: Callable[[bytes], object], receive: Callable[[float], bytes],
                 our_mac: bytes, our_ip: str):
        self.send, self.receive, self.mac, self.ip = send, receive, our_mac, our_ip
        self.ident = 0x5054

    def _wait(self, match: Callable[[bytes], bool], timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.receive(left)
            except TimeoutError:
                return None
            if match(frame):
                return frame
        return None

    def resolve(self, ip: str, timeout: float = 3.0, tries: int = 3) -> bytes | None:
        """The MAC that answers ARP for ip; the request is sent again each timeout/tries
        seconds, as arping does (a peer still bringing its link up drops the first)."""
        want = ip_bytes(ip)
        for _ in range(tries):
            self.send(arp_request(self.mac, self.ip, ip))
            reply = self._wait(lambda f: f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02"
                               and f[28:32] == want and f[0:6] == self.mac, timeout / tries)
            if reply:
                return reply[22:28]
        return None

    def echo(self, dst_mac: bytes, ip: str, seq: int, size: int = 56, timeout: float = 2.0) -> EchoReply | None:
        payload = bytes((seq + i) & 0xFF for i in range(size))
        t0 = time.perf_counter()
        self.send(echo_request(self.mac, dst_mac, self.ip, ip, self.ident, seq, payload))
        want = ip_bytes(ip)

        def is_reply(f: bytes) -> bool:
            return (f[12:14] == b"\x08\x00" and f[23] == 1 and f[26:30] == want
                    and f[34] == 0 and struct.unpack("!HH", f[38:42]) == (self.ident, seq)
                    and f[42:42 + size] == payload)
        reply = self._wait(is_reply, timeout)
        if reply is None:
            return None
        return EchoReply(seq, len(reply) - 34, reply[22], (time.perf_counter() - t0) * 1000)
