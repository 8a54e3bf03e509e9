"""virtio-blk's part of the contract: feature bits, device config, the request header and status, the queue.

From the virtio spec's legacy block device section and Linux 2.6.32's
include/linux/virtio_blk.h.
"""

from __future__ import annotations

import struct

SECTOR = 512                    # the unit of every sector number in the protocol

# -- feature bits ------------------------------------------------------------------
VIRTIO_BLK_F_BARRIER = 0        # the device takes VIRTIO_BLK_T_BARRIER (legacy)
VIRTIO_BLK_F_SIZE_MAX = 1       # config.size_max: the largest single buffer
VIRTIO_BLK_F_SEG_MAX = 2        # config.seg_max: the most data buffers in a request
VIRTIO_BLK_F_GEOMETRY = 4       # config.geometry
VIRTIO_BLK_F_RO = 5             # read-only
VIRTIO_BLK_F_BLK_SIZE = 6       # config.blk_size: the logical block size
VIRTIO_BLK_F_SCSI = 7           # SCSI command passthrough
VIRTIO_BLK_F_FLUSH = 9          # VIRTIO_BLK_T_FLUSH
VIRTIO_BLK_F_TOPOLOGY = 10
VIRTIO_BLK_F_CONFIG_WCE = 11

# -- device config (at VIRTIO_PCI_CONFIG), little endian ---------------------------------
VIRTIO_BLK_CONFIG_CAPACITY = 0  # u64, in SECTORs
VIRTIO_BLK_CONFIG_SIZE_MAX = 8  # u32
VIRTIO_BLK_CONFIG_SEG_MAX = 12  # u32
VIRTIO_BLK_CONFIG_GEOMETRY = 16  # u16 cylinders, u8 heads, u8 sectors
VIRTIO_BLK_CONFIG_BLK_SIZE = 20  # u32
VIRTIO_BLK_CONFIG = struct.Struct("<QIIHBBI")    # capacity .. blk_size: 24 bytes
VIRTIO_BLK_CONFIG_LEN = VIRTIO_BLK_CONFIG.size

# -- a request: struct virtio_blk_outhdr, the data buffers, then one status byte ------------
VIRTIO_BLK_OUTHDR = struct.Struct("<IIQ")        # type, ioprio, sector
VIRTIO_BLK_T_IN = 0
VIRTIO_BLK_T_OUT = 1
VIRTIO_BLK_T_SCSI_CMD = 2
VIRTIO_BLK_T_FLUSH = 4
VIRTIO_BLK_T_GET_ID = 8
VIRTIO_BLK_T_BARRIER = 0x8000_0000               # a flag on the type (legacy)
VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP = 0, 1, 2
VIRTIO_BLK_ID_BYTES = 20

VIRTIO_BLK_REQUEST_QUEUE = 0
