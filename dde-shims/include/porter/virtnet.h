/* porter/virtnet.h - virtio-net's control features only together with its control queue. */
#ifndef PORTER_VIRTNET_H
#define PORTER_VIRTNET_H

#include <linux/kernel.h>
#include <linux/netdevice.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

/*
 * Why: the control features (RX mode, VLAN filter, ...) need the control
 * queue, VIRTIO_NET_F_CTRL_VQ (virtio spec, 5.1.3.1), but a 2.6 virtio_net
 * takes each from whatever the device offers.  Offered without the queue (as
 * QEMU's ctrl_vq=off does), the first RX-mode change at dev_open() hits
 * BUG_ON(!CTRL_VQ) in virtnet_send_command().  Like Linux 4.1's
 * virtnet_validate_features(), refuse such a device before its netdev goes
 * live, with a message; virtnet_probe() then unwinds as for any failed
 * register_netdev().
 */
static inline int porter_register_netdev(struct net_device *dev)
{
	static const struct { unsigned int bit; const char *name; } needs_cvq[] = {
#ifdef VIRTIO_NET_F_CTRL_RX
		{ VIRTIO_NET_F_CTRL_RX, "VIRTIO_NET_F_CTRL_RX" },
#endif
#ifdef VIRTIO_NET_F_CTRL_VLAN
		{ VIRTIO_NET_F_CTRL_VLAN, "VIRTIO_NET_F_CTRL_VLAN" },
#endif
#ifdef VIRTIO_NET_F_CTRL_RX_EXTRA
		{ VIRTIO_NET_F_CTRL_RX_EXTRA, "VIRTIO_NET_F_CTRL_RX_EXTRA" },
#endif
#ifdef VIRTIO_NET_F_GUEST_ANNOUNCE
		{ VIRTIO_NET_F_GUEST_ANNOUNCE, "VIRTIO_NET_F_GUEST_ANNOUNCE" },
#endif
	};
	struct virtio_device *vdev = container_of(dev->dev.parent, struct virtio_device, dev);
	unsigned int i;

	/* the negotiated bits themselves: virtio_has_feature() BUG()s on a bit the
	 * driver's feature table does not list */
#ifdef VIRTIO_NET_F_CTRL_VQ
	if (test_bit(VIRTIO_NET_F_CTRL_VQ, vdev->features))
		return register_netdev(dev);
#endif
	for (i = 0; i < ARRAY_SIZE(needs_cvq); i++) {
		if (test_bit(needs_cvq[i].bit, vdev->features)) {
			dev_err(&vdev->dev, "device offers %s without VIRTIO_NET_F_CTRL_VQ: refused "
				"(porter rule virtnet-control-features-need-ctrl-vq)\n", needs_cvq[i].name);
			return -EINVAL;
		}
	}
	return register_netdev(dev);
}

#endif /* PORTER_VIRTNET_H */
