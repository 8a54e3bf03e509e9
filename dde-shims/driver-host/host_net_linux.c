/* host_net_linux.c - the driver host's Linux side for virtio-net: the DDE's net devices. */
#include <dde26.h>
#include <dde26_net.h>
#include <linux/netdevice.h>
#include <linux/etherdevice.h>
#include <linux/rtnetlink.h>
#include <linux/string.h>

#include "host_bridge.h"

/* libdde_linux26's Mach glue (lib/src/mach_glue/net.c): libmachdevdde's transmit path */
extern int linux_pkg_xmit(char *pkg_data, int len, void *del_data,
			  int (*del_func)(struct sk_buff *, void *),
			  struct net_device *dev);

static int host_rx(char *data, int len, struct net_device *dev)
{
	host_net_deliver_rx(dev->name, data, len);
	return NET_RX_SUCCESS;
}

void bundle_linux_init(void)
{
	printk("Initializing skb subsystem\n");
	skb_init();
	l4dde26_register_rx_callback(host_rx);
}

int bundle_list_devices(char names[][16], int max)
{
	struct net_device *dev;
	int n = 0;

	read_lock(&dev_base_lock);
	for_each_netdev(&init_net, dev) {
		if (n < max && !(dev->flags & IFF_LOOPBACK))
			strlcpy(names[n++], dev->name, 16);
	}
	read_unlock(&dev_base_lock);
	return n;
}

/* A held reference; callers drop it with dev_put(). */
static struct net_device *host_dev(const char *ifname)
{
	return dev_get_by_name(&init_net, ifname);
}

int host_net_open(const char *ifname)
{
	struct net_device *dev = host_dev(ifname);
	int err;

	if (!dev)
		return -ENODEV;
	rtnl_lock();
	err = dev_open(dev);
	rtnl_unlock();
	dev_put(dev);
	return err;
}

int host_net_close(const char *ifname)
{
	struct net_device *dev = host_dev(ifname);
	int err;

	if (!dev)
		return -ENODEV;
	rtnl_lock();
	err = dev_close(dev);
	rtnl_unlock();
	dev_put(dev);
	return err;
}

int host_net_xmit(const char *ifname, const void *frame, int len)
{
	struct net_device *dev = host_dev(ifname);
	unsigned long dropped;
	int err;

	if (!dev)
		return -ENODEV;
	if (!netif_running(dev)) {
		dev_put(dev);
		return -ENETDOWN;
	}
	/* the DDE has no qdisc to hold the frame: the caller keeps it and comes back */
	if (netif_queue_stopped(dev)) {
		dev_put(dev);
		return -EAGAIN;
	}
	/* 2.6.28-2.6.31 virtio_net keep one frame for a full ring and drop the next one
	 * ("we only queue one"), counting it in tx_dropped: that frame was busy, too */
	dropped = dev->stats.tx_dropped;
	/* linux_pkg_xmit returns positive Mach-style errors and NETDEV_TX_* codes */
	err = linux_pkg_xmit((char *)frame, len, NULL, NULL, dev);
	if (err == 0 && dev->stats.tx_dropped != dropped)
		err = -EAGAIN;
	/*
	 * The DDE's dev_queue_xmit (no qdisc) drops the frame with -ENETDOWN when the
	 * device's TX lock is held by another thread (every DDE thread is CPU 0, so it
	 * takes the holder, e.g. 2.6.28-2.6.31 virtio_net's xmit tasklet, for itself:
	 * "Dead loop on virtual device") or when the queue stopped under it. The
	 * device is up: the frame was busy, not refused; the caller still has it.
	 */
	if (err == -ENETDOWN && netif_running(dev))
		err = -EAGAIN;
	dev_put(dev);
	return err > 0 ? -err : err;
}

int host_net_info(const char *ifname, struct host_netdev_info *info)
{
	struct net_device *dev = host_dev(ifname);

	if (!dev)
		return -ENODEV;
	memcpy(info->mac, dev->dev_addr, 6);
	info->flags = dev->flags;
	info->mtu = dev->mtu;
	info->link_up = netif_carrier_ok(dev);
	info->running = netif_running(dev);
	dev_put(dev);
	return 0;
}

int host_net_rx_mode(const char *ifname, int promisc, int allmulti,
		     const unsigned char *mc, int nmc)
{
	struct net_device *dev = host_dev(ifname);
	int i, err = 0;

	if (!dev)
		return -ENODEV;
	rtnl_lock();
	if (!!(dev->flags & IFF_PROMISC) != !!promisc)
		dev_set_promiscuity(dev, promisc ? 1 : -1);
	if (!!(dev->flags & IFF_ALLMULTI) != !!allmulti)
		dev_set_allmulti(dev, allmulti ? 1 : -1);
	for (i = 0; i < nmc && !err; i++)
		err = dev_mc_add(dev, (void *)(mc + 6 * i), 6, 0);
	rtnl_unlock();
	dev_put(dev);
	return err;
}
