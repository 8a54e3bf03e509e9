"""Legacy virtio over PCI, as Linux 2.6 drivers see it: IDs, the register block in I/O BAR0, status and ISR bits, transport features.

The constants follow the virtio spec's "Legacy Interface" sections and
Linux 2.6.32's virtio_pci.h, virtio_config.h and virtio_ring.h. Device
types' own bits live in their modules (``virtio_net``, ...).
"""

from __future__ import annotations

VIRTIO_PCI_VENDOR = 0x1AF4
# Legacy ("transitional") PCI device IDs are 0x1000 + (virtio device type - 1) for these.
VIRTIO_PCI_DEVICE_NET = 0x1000
VIRTIO_PCI_DEVICE_BLK = 0x1001
VIRTIO_PCI_DEVICE_RNG = 0x1005
# Virtio device types; a legacy device carries its type as the PCI subsystem ID.
VIRTIO_ID_NET, VIRTIO_ID_BLOCK, VIRTIO_ID_RNG = 1, 2, 4

# -- the register block at the start of I/O BAR0 (no MSI-X) -------------------
VIRTIO_PCI_HOST_FEATURES = 0    # u32, device features 0..31
VIRTIO_PCI_GUEST_FEATURES = 4   # u32, features the driver accepts
VIRTIO_PCI_QUEUE_PFN = 8        # u32, ring address >> VIRTIO_PCI_QUEUE_ADDR_SHIFT
VIRTIO_PCI_QUEUE_NUM = 12       # u16, size of the selected queue (read only)
VIRTIO_PCI_QUEUE_SEL = 14       # u16
VIRTIO_PCI_QUEUE_NOTIFY = 16    # u16, queue index
VIRTIO_PCI_STATUS = 18          # u8
VIRTIO_PCI_ISR = 19             # u8, read clears it and lowers INTx
VIRTIO_PCI_CONFIG = 20          # device config, when MSI-X is off
VIRTIO_PCI_QUEUE_ADDR_SHIFT = 12
VIRTIO_PCI_VRING_ALIGN = 4096

VIRTIO_PCI_ISR_QUEUE = 0x1
VIRTIO_PCI_ISR_CONFIG = 0x2

VIRTIO_CONFIG_S_ACKNOWLEDGE = 0x1
VIRTIO_CONFIG_S_DRIVER = 0x2
VIRTIO_CONFIG_S_DRIVER_OK = 0x4
VIRTIO_CONFIG_S_FAILED = 0x80

# -- transport feature bits ------------------------------------------------------
VIRTIO_F_NOTIFY_ON_EMPTY = 24
VIRTIO_F_ANY_LAYOUT = 27
VIRTIO_RING_F_INDIRECT_DESC = 28
VIRTIO_RING_F_EVENT_IDX = 29
VIRTIO_F_BAD_FEATURE = 30


def bit(feature: int) -> int:
    return 1 << feature


def bits(mask: int) -> str:
    """A feature mask as the set of its bit numbers: ``{5, 16}``."""
    return "{" + ", ".join(str(i) for i in range(64) if mask >> i & 1) + "}"


def legacy_bar_size(config_len: int) -> int:
    """What BAR0 of a legacy device decodes: registers plus device config, rounded up to a power of two (QEMU's sizing)."""
    size = VIRTIO_PCI_CONFIG + config_len
    return 1 << (size - 1).bit_length()
