"""A ready-to-drive rig: guest memory, a PCI machine with a device backend, the
driver host on top, and the test's own peer on the wire; torn down whole on
every exit path (a context manager, with a finalizer behind it)."""

import contextlib
import shutil
import socket
import tempfile
from pathlib import Path

from .dma_check import DmaGuard
from .driver_host import DriverHost
from .machine import Machine
from .memory import GuestMemory
from .netns import TapNamespace
from .qemu import DgramNetdev, QemuDevice, TapNetdev
from .sim_net import SimNetDevice
from .virtio_net import DEFAULT_MAC

BACKENDS = ("qemu", "sim")


class NetRig:
    """virtio-net on a device backend: QEMU's own device model (backend="qemu",
    device_options = its -device properties) or porter's model (backend="sim",
    device_options = SimNetDevice's features and faults). The wire's other end is a
    UNIX datagram socket of the test (wire="dgram") or, with QEMU and wire="tap",
    a tap device in a fresh network namespace where the Linux kernel answers."""

    def __init__(self, host_executable: Path, *, backend: str = "qemu", mac: str = DEFAULT_MAC,
                 device_options=None, qemu_options=None, mem_size: int = 32 << 20, trace: bool = False,
                 host_env: dict | None = None, start_host: bool = True, wire: str = "dgram"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if backend == "sim" and wire != "dgram":
            raise ValueError("the sim backend has a datagram wire only")
        device_options = dict(device_options or qemu_options or {})
        self.backend = backend
        self._stack = contextlib.ExitStack()
        self.host_executable = Path(host_executable)
        self.host_env = host_env
        try:
            self.dir = Path(tempfile.mkdtemp(prefix="porter-rig-"))
            self._stack.callback(shutil.rmtree, self.dir, True)
            self.mac = mac
            self.netns = self.peer = None
            if wire == "tap":
                self.netns = self._stack.enter_context(TapNamespace())
                netdev = TapNetdev(self.netns.ifname)
            elif wire == "dgram":
                self.peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._stack.callback(self.peer.close)
                self.peer.bind(str(self.dir / "peer.sock"))
                netdev = DgramNetdev(str(self.dir / "peer.sock"))
            else:
                raise ValueError(f"wire must be 'dgram' or 'tap', not {wire!r}")
            if backend == "sim":
                self.device = self._stack.enter_context(
                    SimNetDevice(str(self.dir / "peer.sock"), mac=mac, **device_options))
            else:
                self.device = self._stack.enter_context(
                    QemuDevice("virtio-net-pci", netdev=netdev, mac=mac, options=device_options,
                               netns=self.netns.name if self.netns else None))
            self.qemu = self.device if backend == "qemu" else None
            self.memory = self._stack.enter_context(GuestMemory(mem_size))
            self.device.sync_memory(self.memory)
            self.machine = Machine(self.memory, trace=[] if trace else None)
            self._stack.callback(self.machine.close)
            # every address the driver hands the device is checked on its way there
            self.dma = DmaGuard(self.device, self.memory)
            self.slot = self.machine.attach(self.dma)
            self.host: DriverHost | None = None
            if start_host:
                self.start_host()
        except BaseException:
            self._stack.close()
            raise

    def start_host(self) -> DriverHost:
        """(Re)start the driver host against the same device."""
        if self.host is not None:
            self.host.shutdown()
        self.host = DriverHost(self.host_executable, self.machine, env=self.host_env)
        return self.host

    def peer_send(self, frame: bytes) -> None:
        self.peer.sendto(frame, self.device.netdev_path)

    def peer_recv(self, timeout: float = 5.0) -> bytes:
        self.peer.settimeout(timeout)
        return self.peer.recv(65536)

    def peer_drain(self) -> list[bytes]:
        got = []
        self.peer.setblocking(False)
        try:
            while True:
                got.append(self.peer.recv(65536))
        except BlockingIOError:
            pass
        finally:
            self.peer.setblocking(True)
        return got

    @property
    def mac_bytes(self) -> bytes:
        return bytes.fromhex(self.mac.replace(":", ""))

    def close(self) -> None:
        if self.host is not None:
            self.host.shutdown()
            self.host = None
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
