/* porter/netdevice.h - NAPI and RX hand-off as the DDE needs them. */
#ifndef PORTER_NETDEVICE_H
#define PORTER_NETDEVICE_H

#include <linux/netdevice.h>
#include <linux/interrupt.h>
#include <linux/skbuff.h>
#include <porter/gfp.h>

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
 * porter delivers a linear copy and frees the fragment pages, which the
 * driver took from porter_alloc_page() (rule page-alloc) and the skb owns.
 */
static inline int porter_netif_receive_skb(struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	struct sk_buff *linear;
	int i;

	if (!skb_is_nonlinear(skb))
		return netif_receive_skb(skb);
	linear = skb_copy(skb, GFP_ATOMIC);	/* headers and MAC offsets too */
	if (!skb_shinfo(skb)->frag_list) {
		for (i = 0; i < skb_shinfo(skb)->nr_frags; i++)
			porter___free_pages(skb_shinfo(skb)->frags[i].page, 0);
		skb_shinfo(skb)->nr_frags = 0;
		skb->len -= skb->data_len;
		skb->data_len = 0;
	}
	kfree_skb(skb);
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
 */
static inline void porter_netif_tx_lock(struct net_device *dev)
{
	unsigned int i;

	netif_tx_lock(dev);
	for (i = 0; i < dev->num_tx_queues; i++)
		spin_lock(&netdev_get_tx_queue(dev, i)->_xmit_lock);
}

static inline void porter_netif_tx_unlock(struct net_device *dev)
{
	unsigned int i;

	for (i = dev->num_tx_queues; i-- > 0; )
		spin_unlock(&netdev_get_tx_queue(dev, i)->_xmit_lock);
	netif_tx_unlock(dev);
}

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

#endif /* PORTER_NETDEVICE_H */
