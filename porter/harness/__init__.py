"""The harness: a machine (memory, PCI, interrupts, device backends) that runs ported drivers.

Modules, one concept each, from the bus up:
- ``memory``: GuestMemory, the memfd that is the machine's physical memory.
- ``pci``: a PCI function's config space and I/O BAR; what firmware does to it.
- ``virtio_pci``: legacy virtio over PCI (IDs, the register block, status, ISR, transport features).
- ``vring``: the split virtqueue (layout, reading a chain, the device side of a queue).
- ``virtio_device``: the base of every modelled device (registers, ISR/INTx, queues, worker, faults).
- ``virtio_net``, ``sim_net``: virtio-net's constants, and the sim's virtio-net model.
- ``ring_driver``: the harness's own minimal drivers (backend self-test, benchmark ceiling).
- ``dma_check``: the guard that checks every chain before the device sees it.
- ``xremote``, ``qemu``: QEMU's x-remote protocol, and QemuDevice, a real QEMU device model.
- ``machine``, ``protocol``, ``driver_host``, ``rig``: the PCI bus the driver host sees, its
  wire protocol, the driver host process, and a whole rig around one device.
"""
