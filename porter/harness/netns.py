"""A network namespace with a tap device, where the Linux kernel is the peer."""

import ctypes
import fcntl
import os
import shutil
import struct
import subprocess
import threading
import uuid
import weakref

KERNEL_IP = "192.0.2.1"     # TEST-NET-1: never routed anywhere
PREFIX = 24


CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


class NetnsError(RuntimeError):
    pass


def netns_usable() -> str | None:
    """None if namespaces with tap devices can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root (ip netns, tap devices)"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    return None


def _ip(*args: str) -> str:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode:
        raise NetnsError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


class TapNamespace:
    """`ip netns add` + tap0 at 192.0.2.1/24, up; deleted by close() or the finalizer."""

    def __init__(self, ifname: str = "tap0"):
        why = netns_usable()
        if why:
            raise NetnsError(f"cannot create a network namespace: {why}")
        self.name = f"porter-{uuid.uuid4().hex[:8]}"
        self.ifname = ifname
        _ip("netns", "add", self.name)
        self._finalizer = weakref.finalize(self, subprocess.run, ["ip", "netns", "del", self.name],
                                           capture_output=True)
        try:
            for cmd in (["tuntap", "add", "dev", ifname, "mode", "tap"],
                        ["addr", "add", f"{KERNEL_IP}/{PREFIX}", "dev", ifname],
                        ["link", "set", "lo", "up"], ["link", "set", ifname, "up"]):
                _ip("-n", self.name, *cmd)
        except BaseException:
            self.close()
            raise

    @property
    def kernel_ip(self) -> str:
        return KERNEL_IP

    def open_tap(self) -> int:
        """An fd on the namespace's tap (one frame per read and write), for a device model in this process.

        The tap lives in the namespace, so a short-lived thread joins it
        (setns affects only the calling thread) to attach; the fd stays bound
        to the tap afterwards, wherever it is used."""
        result: list = []

        def attach() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            try:
                with open(f"/run/netns/{self.name}") as ns:
                    if libc.setns(ns.fileno(), CLONE_NEWNET):
                        raise OSError(ctypes.get_errno(), "setns")
                fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
                try:
                    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", self.ifname.encode(), IFF_TAP | IFF_NO_PI))
                except OSError:
                    os.close(fd)
                    raise
                result.append(fd)
            except OSError as e:
                result.append(e)

        t = threading.Thread(target=attach, name="netns-tap")
        t.start()
        t.join()
        if isinstance(result[0], OSError):
            raise NetnsError(f"cannot attach to {self.ifname} in {self.name}: {result[0]}")
        return result[0]

    def kernel_mac(self) -> bytes:
        out = _ip("-n", self.name, "-o", "link", "show", self.ifname)
        mac = out.split("link/ether", 1)[1].split()[0]
        return bytes.fromhex(mac.replace(":", ""))

    def close(self) -> None:
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
