"""The harness: a machine (memory, PCI, interrupts, device backends) that runs ported drivers.

Modules, one job each:
- ``memory``: GuestMemory, the memfd that is the machine's physical memory.
- ``xremote``: the wire protocol of QEMU's multi-process x-remote device server.
- ``qemu``: QemuDevice, the backend that runs a real QEMU device model.
- ``virtio_legacy``: legacy virtio-pci constants, vring layout, and RingDriver,
  the harness's own minimal virtio-net driver (backend self-test, benchmark ceiling).
"""
