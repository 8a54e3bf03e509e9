"""Ready-to-drive rigs: guest memory, a PCI machine with a device backend, the
driver host on top, and (for a NIC) the test's own peer on the wire; torn down
whole on every exit path (a context manager)."""

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

from .dma_check import SHADOW_AREA, DmaGuard
from .driver_host import DriverHost
from .machine import Machine
from .memory import GuestMemory
from .netns import TapNamespace
from .qemu import DEVICE_ID as QEMU_DEVICE_ID, DgramNetdev, QemuDevice, TapNetdev
from .sim_net import MAX_FRAME, SimNetDevice
from .virtio_net import DEFAULT_MAC
from .sim_rng import SimRngDevice
from .virtio_rng import PIPE_CHUNK, QEMU_OPTIONS, QEMU_RNG_ID, qemu_rng_args

BACKENDS = ("qemu", "sim")


class Rig:
    """Guest memory, a PCI machine with one device backend behind the DMA guard, and the
    driver host on top. A device's rig says how its backend is made (``make_device``)."""

    def __init__(self, host_executable: Path, *, backend: str = "qemu", mem_size: int = 32 << 20,
                 trace: bool = False, host_env: dict | None = None, start_host: bool = True):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.backend = backend
        self.host_executable = Path(host_executable)
        self.host_env = host_env
        self.host: DriverHost | None = None
        self._stack = contextlib.ExitStack()
        try:
            self.dir = Path(tempfile.mkdtemp(prefix="porter-rig-"))
            self._stack.callback(shutil.rmtree, self.dir, True)
            self.device = self._stack.enter_context(self.make_device())
            self.qemu = self.device if backend == "qemu" else None
            # the DDE's arena, then the DMA guard's shadow rings (the device's view of the queues)
            self.memory = self._stack.enter_context(GuestMemory(mem_size + SHADOW_AREA))
            self.device.sync_memory(self.memory)
            self.machine = Machine(self.memory, arena_size=mem_size, trace=[] if trace else None)
            self._stack.callback(self.machine.close)
            # every address the driver hands the device is checked before the device sees it
            self.dma = DmaGuard(self.device, self.memory, arena_size=mem_size)
            self.slot = self.machine.attach(self.dma)
            if start_host:
                self.start_host()
        except BaseException:
            self._stack.close()
            raise

    def make_device(self):
        """The backend (a context manager), made inside __init__ once ``self.dir`` exists."""
        raise NotImplementedError

    def start_host(self) -> DriverHost:
        """(Re)start the driver host against the same device."""
        if self.host is not None:
            self.host.shutdown()
        self.host = DriverHost(self.host_executable, self.machine, env=self.host_env)
        self.host_started(self.host)
        return self.host

    def host_started(self, host: DriverHost) -> None:
        """What a device's rig sets up on a new driver host."""

    def close(self) -> None:
        if self.host is not None:
            self.host.shutdown()
            self.host = None
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NetRig(Rig):
    """virtio-net on a device backend: QEMU's own device model (backend="qemu",
    device_options = its -device properties) or porter's model (backend="sim",
    device_options = SimNetDevice's features and faults). The wire's other end is a
    UNIX datagram socket of the test (wire="dgram") or, with wire="tap", a tap
    device in a fresh network namespace where the Linux kernel answers. Frames
    move between the harness and the driver host through shared-memory rings
    (``frame_rings=False``: a message each)."""

    def __init__(self, host_executable: Path, *, backend: str = "qemu", mac: str = DEFAULT_MAC,
                 device_options=None, qemu_options=None, wire: str = "dgram", frame_rings: bool = True,
                 **rig_options):
        if wire not in ("dgram", "tap"):
            raise ValueError(f"wire must be 'dgram' or 'tap', not {wire!r}")
        self.mac = mac
        self.wire = wire
        self.frame_rings = frame_rings
        self.device_options = dict(device_options or qemu_options or {})
        self.netns = self.peer = None
        super().__init__(host_executable, backend=backend, **rig_options)

    def make_device(self):
        if self.wire == "tap":
            self.netns = self._stack.enter_context(TapNamespace())
            netdev = TapNetdev(self.netns.ifname)
        else:
            self.peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._stack.callback(self.peer.close)
            self.peer.bind(str(self.dir / "peer.sock"))
            netdev = DgramNetdev(str(self.dir / "peer.sock"))
        if self.backend == "sim":
            if self.netns is not None:
                fd = self.netns.open_tap()
                try:
                    return SimNetDevice(tap_fd=fd, mac=self.mac, **self.device_options)
                except BaseException:
                    os.close(fd)
                    raise
            return SimNetDevice(str(self.dir / "peer.sock"), mac=self.mac, **self.device_options)
        return QemuDevice("virtio-net-pci", netdev=netdev, mac=self.mac, options=self.device_options,
                          netns=self.netns.name if self.netns else None)

    def host_started(self, host: DriverHost) -> None:
        if self.frame_rings and host.ready_ifnames:
            host.attach_frame_rings()

    def peer_send(self, frame: bytes) -> None:
        self.peer.sendto(frame, self.device.netdev_path)

    def peer_recv(self, timeout: float = 5.0) -> bytes:
        self.peer.settimeout(timeout)
        return self.peer.recv(MAX_FRAME)

    def peer_drain(self) -> list[bytes]:
        got = []
        self.peer.setblocking(False)
        try:
            while True:
                got.append(self.peer.recv(MAX_FRAME))
        except BlockingIOError:
            pass
        finally:
            self.peer.setblocking(True)
        return got

    def set_link(self, up: bool) -> None:
        """Take the NIC's link down or up, as a cable would: QEMU's set_link, or the sim's."""
        if self.qemu is not None:
            self.qemu.qmp("set_link", name=QEMU_DEVICE_ID, up=up)
        else:
            self.device.set_link(up)

    @property
    def mac_bytes(self) -> bytes:
        return bytes.fromhex(self.mac.replace(":", ""))


class BlkRig(Rig):
    """virtio-blk on a raw image file: QEMU's own virtio-blk-pci (backend="qemu",
    device_options = its -device properties) or porter's model over the same file
    (backend="sim", device_options = SimBlkDevice's). ``read_only``: the disk is
    read-only (QEMU's read-only=on, the model's VIRTIO_BLK_F_RO)."""

    def __init__(self, host_executable: Path, image: Path, *, backend: str = "qemu", read_only: bool = False,
                 device_options=None, mem_size: int = 64 << 20, **rig_options):
        self.image = Path(image)
        if not self.image.is_file():
            raise ValueError(f"{self.image}: the disk image does not exist")
        self.read_only = read_only
        self.device_options = dict(device_options or {})
        super().__init__(host_executable, backend=backend, mem_size=mem_size, **rig_options)

    def make_device(self):
        return blk_device(self.backend, self.image, read_only=self.read_only, options=self.device_options)


def blk_device(backend: str, image: Path, *, read_only: bool = False, options=None):
    """A virtio-blk backend over the raw ``image``: QEMU's virtio-blk-pci (``options``: its
    -device properties) or porter's sim (``options``: SimBlkDevice's)."""
    options = dict(options or {})
    if backend == "sim":
        from .sim_blk import SimBlkDevice
        return SimBlkDevice(image, read_only=read_only, **options)
    # QEMU's option syntax doubles a comma inside a value
    path = str(Path(image).resolve()).replace(",", ",,")
    blockdev = (f"driver=raw,node-name=disk0,file.driver=file,file.filename={path}"
                + (",read-only=on" if read_only else ""))
    return QemuDevice("virtio-blk-pci", options={"drive": "disk0", **options}, extra_args=["-blockdev", blockdev])


class RngRig(Rig):
    """virtio-rng on a device backend: QEMU's own virtio-rng-pci reading a FIFO the test writes
    (backend="qemu", device_options = its -device properties, e.g. max-bytes and period), or
    porter's model (backend="sim", device_options = SimRngDevice's source and faults). ``feed()``
    gives the device bytes to hand out, in order, on either."""

    def __init__(self, host_executable: Path, *, backend: str = "qemu", device_options=None, **rig_options):
        self.device_options = dict(device_options or {})
        self.fifo_path: Path | None = None
        self._fifo_fd: int | None = None
        super().__init__(host_executable, backend=backend, **rig_options)

    def make_device(self):
        if self.backend == "sim":
            return SimRngDevice(**self.device_options)
        self.fifo_path = self.dir / "entropy.fifo"
        os.mkfifo(self.fifo_path)
        # Held open (read-write never blocks) for the rig's life: at a FIFO without a writer
        # QEMU's rng-random reads end of file over and over, and hands the driver 0 bytes.
        self._fifo_fd = os.open(self.fifo_path, os.O_RDWR | os.O_CLOEXEC)
        self._stack.callback(os.close, self._fifo_fd)
        return QemuDevice("virtio-rng-pci", options={"rng": QEMU_RNG_ID, **QEMU_OPTIONS, **self.device_options},
                          extra_args=qemu_rng_args(self.fifo_path))

    def feed(self, data: bytes) -> None:
        """Give the device ``data`` to hand out after what it has. With QEMU this writes the FIFO
        in PIPE_CHUNK pieces (each reaches QEMU whole) and blocks while the FIFO is full."""
        if self.backend == "sim":
            self.device.feed(data)
            return
        view = memoryview(data)
        for at in range(0, len(view), PIPE_CHUNK):
            chunk = view[at:at + PIPE_CHUNK]
            while chunk:
                chunk = chunk[os.write(self._fifo_fd, chunk):]

    def feed_in_background(self, data: bytes) -> threading.Thread:
        """``feed(data)`` in a thread (QEMU takes what the driver asks for, so a big feed blocks)."""
        writer = threading.Thread(target=self.feed, args=(data,), name="rng-feed", daemon=True)
        writer.start()
        return writer
