/* porter/netdevice.h - NAPI, RX hand-off, TX locking and address lists as the DDE needs them. */
#ifndef PORTER_NETDEVICE_H
#define PORTER_NETDEVICE_H

#include <linux/netdevice.h>
#include <linux/interrupt.h>
#include <linux/skbuff.h>
#include <porter/gfp.h>
#include <porter/skbuff.h>

/*
 * Why: the DDE runs softirqs in a thread it wakes only when an interrupt
 * handler returns (lib/src/arch/l4/irq.c), and __napi_schedule() merely marks
 * NET_RX pending.  Called from process context, as virtio_net's open does
 * after switching RX interrupts off, the poll never runs and received frames
 * wait for some unrelated interrupt.  raise_softirq() wakes the thread.
 */
static inline void porter___napi_schedule(struct napi_struct *n)
{
	__napi_schedule(n);
	raise_softirq(NET_RX_SOFTIRQ);
}

/*
 * Why: the DDE's RX hook (l4dde26_do_rx_callback, and libmachdevdde behind
 * it) passes skb->data with skb->len onward, as if every skb were linear, so
 * a driver that leaves part of a frame in page fragments (virtio_net's
 * mergeable and big RX buffers) would hand over the bytes after the head.
 * And the DDE's put_page() never frees (its free_hot_page() is a stub), so
 * letting the skb code release the fragments leaks a page per frame.
 * porter delivers a linear copy and frees the skb with porter_kfree_skb(),
 * which frees the pages the driver took from porter_alloc_page() (rule
 * page-alloc).
 */
static inline int porter_netif_receive_skb(struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	struct sk_buff *linear;

	if (!skb_is_nonlinear(skb))
		return netif_receive_skb(skb);
	linear = skb_copy(skb, GFP_ATOMIC);	/* headers and MAC offsets too */
	porter_kfree_skb(skb);
	if (!linear) {
		dev->stats.rx_dropped++;
		return NET_RX_DROP;
	}
	return netif_receive_skb(linear);
}

/*
 * Why: netif_tx_lock() only freezes the TX queues; it is the qdisc layer that
 * checks the frozen bit before calling ->ndo_start_xmit().  The DDE has no
 * qdisc: its dev_queue_xmit() takes the no-queue path, which checks "stopped"
 * and not "frozen", so start_xmit runs on the caller's thread while the
 * driver's own netif_tx_lock() holder (virtio_net's xmit tasklet up to
 * 2.6.31, in the softirq thread) works on the same virtqueue: "id N is not a
 * head!" under load.  Holding each queue's xmit lock too (the lock
 * dev_queue_xmit takes around start_xmit) excludes it, as a qdisc would.
 *
 * And the holder may swallow a wake-up: up to 2.6.31 the xmit tasklet frees
 * completed buffers, and when it runs (in the DDE's softirq thread, beside
 * start_xmit) after start_xmit stopped the queue and re-enabled the TX
 * callback, it takes the very completions whose interrupt was to wake the
 * queue; vring_interrupt() then finds nothing new and calls no callback, and
 * TX stops for good.  So the unlock wakes a stopped queue when the holder
 * completed transmissions (dev->stats.tx_packets grew under the lock), as the
 * driver's own TX callback would have.
 */
void porter_netif_tx_lock(struct net_device *dev);
void porter_netif_tx_unlock(struct net_device *dev);

static inline void porter_netif_tx_lock_bh(struct net_device *dev)
{
	local_bh_disable();
	porter_netif_tx_lock(dev);
}

static inline void porter_netif_tx_unlock_bh(struct net_device *dev)
{
	porter_netif_tx_unlock(dev);
	local_bh_enable();
}

/*
 * Address lists.  The DDE keeps secondary unicast addresses in dev->uc (a
 * netdev_hw_addr_list, as 2.6.31 does) and multicast addresses in the
 * dev_addr_list chain dev->mc_list (as 2.6.29 does).  virtio_net reads them
 * through each release's own interface: dev->uc_count/uc_list (2.6.30), the
 * netdev_*_count() and netdev_for_each_*_addr() helpers (2.6.34), with
 * netdev_hw_addr entries for multicast too (2.6.35).
 */
#define netdev_uc_count(dev)	((dev)->uc.count)
#define netdev_mc_count(dev)	((dev)->mc_count)

#define netdev_for_each_uc_addr(ha, dev) \
	list_for_each_entry(ha, &(dev)->uc.list, list)

/* One step through dev->mc_list; the netdev_hw_addr view is a copy in the iterator. */
struct porter_mc_iter {
	struct dev_addr_list *next;
	struct netdev_hw_addr ha;
};

static inline void *porter_mc_iter_step(struct porter_mc_iter *it, int want_hw_addr)
{
	struct dev_addr_list *da = it->next;

	if (!da)
		return NULL;
	it->next = da->next;
	if (!want_hw_addr)
		return da;
	memset(&it->ha, 0, sizeof(it->ha));
	memcpy(it->ha.addr, da->da_addr, min_t(int, da->da_addrlen, MAX_ADDR_LEN));
	return &it->ha;
}

/* ha is a struct dev_mc_list * (2.6.34) or a struct netdev_hw_addr * (2.6.35 on) */
#define netdev_for_each_mc_addr(ha, dev) \
	for (struct porter_mc_iter __porter_mc = { (dev)->mc_list }; \
	     ((ha) = porter_mc_iter_step(&__porter_mc, \
		__builtin_types_compatible_p(typeof(*(ha)), struct netdev_hw_addr))) != NULL; )

/*
 * dev->uc_list of 2.6.30: its unicast list as a dev_addr_list chain.  The
 * chain is a per-device copy of dev->uc that the next call for the same
 * device overwrites; callers hold the device's address lock, as
 * ndo_set_rx_mode's do.  NULL when the list is empty.
 */
struct dev_addr_list *porter_netdev_uc_list(struct net_device *dev);

#endif /* PORTER_NETDEVICE_H */
