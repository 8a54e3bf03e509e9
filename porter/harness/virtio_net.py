"""virtio-net's part of the contract: feature bits, device config, the per-frame header, queues, control commands.

From the virtio spec's legacy net device section and Linux 2.6.32's
include/linux/virtio_net.h.
"""

from __future__ import annotations

import struct

DEFAULT_MAC = "52:54:00:12:34:56"     # QEMU's default for the first NIC; every backend uses it

# -- feature bits ------------------------------------------------------------------
VIRTIO_NET_F_CSUM = 0           # device handles partial checksums on TX
VIRTIO_NET_F_GUEST_CSUM = 1     # driver handles partial checksums on RX
VIRTIO_NET_F_CTRL_GUEST_OFFLOADS = 2
VIRTIO_NET_F_MAC = 5            # config holds the MAC
VIRTIO_NET_F_GSO = 6
VIRTIO_NET_F_GUEST_TSO4 = 7
VIRTIO_NET_F_GUEST_TSO6 = 8
VIRTIO_NET_F_GUEST_ECN = 9
VIRTIO_NET_F_GUEST_UFO = 10
VIRTIO_NET_F_HOST_TSO4 = 11
VIRTIO_NET_F_HOST_TSO6 = 12
VIRTIO_NET_F_HOST_ECN = 13
VIRTIO_NET_F_HOST_UFO = 14
VIRTIO_NET_F_MRG_RXBUF = 15     # RX buffers may merge; header grows num_buffers
VIRTIO_NET_F_STATUS = 16        # config holds link status
VIRTIO_NET_F_CTRL_VQ = 17       # control queue (queue 2)
VIRTIO_NET_F_CTRL_RX = 18       # RX mode control (promiscuous, all-multicast)
VIRTIO_NET_F_CTRL_VLAN = 19
VIRTIO_NET_F_CTRL_RX_EXTRA = 20
VIRTIO_NET_F_GUEST_ANNOUNCE = 21

# -- device config (at VIRTIO_PCI_CONFIG) -------------------------------------------
VIRTIO_NET_CONFIG_MAC = 0       # 6 bytes
VIRTIO_NET_CONFIG_STATUS = 6    # u16
VIRTIO_NET_S_LINK_UP = 1
VIRTIO_NET_S_ANNOUNCE = 2

# -- struct virtio_net_hdr, and virtio_net_hdr_mrg_rxbuf (+ u16 num_buffers) once MRG_RXBUF is on
VIRTIO_NET_HDR = struct.Struct("<BBHHHH")   # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VIRTIO_NET_HDR_LEN = VIRTIO_NET_HDR.size
VIRTIO_NET_HDR_MRG_RXBUF_LEN = VIRTIO_NET_HDR_LEN + 2
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_NONE = 0

# -- queues ----------------------------------------------------------------------------
VIRTIO_NET_RX_QUEUE = 0
VIRTIO_NET_TX_QUEUE = 1
VIRTIO_NET_CTRL_QUEUE = 2       # when CTRL_VQ is negotiated

# -- control queue commands: class, command, then the ack byte the device writes -------
VIRTIO_NET_OK, VIRTIO_NET_ERR = 0, 1
VIRTIO_NET_CTRL_RX = 0
VIRTIO_NET_CTRL_RX_PROMISC, VIRTIO_NET_CTRL_RX_ALLMULTI = 0, 1
VIRTIO_NET_CTRL_RX_ALLUNI, VIRTIO_NET_CTRL_RX_NOMULTI = 2, 3
VIRTIO_NET_CTRL_RX_NOUNI, VIRTIO_NET_CTRL_RX_NOBCAST = 4, 5
VIRTIO_NET_CTRL_MAC = 1
VIRTIO_NET_CTRL_MAC_TABLE_SET = 0
VIRTIO_NET_CTRL_VLAN = 2
VIRTIO_NET_CTRL_VLAN_ADD, VIRTIO_NET_CTRL_VLAN_DEL = 0, 1


def header_len(features: int) -> int:
    """The per-frame header's size once ``features`` are negotiated."""
    return VIRTIO_NET_HDR_MRG_RXBUF_LEN if features >> VIRTIO_NET_F_MRG_RXBUF & 1 else VIRTIO_NET_HDR_LEN


def parse_mac(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"MAC must look like {DEFAULT_MAC}, not {mac!r}")
    return bytes(int(p, 16) for p in parts)
