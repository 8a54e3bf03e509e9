/* porter/skbuff.h - sk_buff helpers newer than the DDE's Linux 2.6.29, and skb freeing that frees pages. */
#ifndef PORTER_SKBUFF_H
#define PORTER_SKBUFF_H

#include <linux/skbuff.h>
#include <linux/netdevice.h>
#include <porter/gfp.h>

/*
 * Why: the DDE's skbuff.h (2.6.29) has neither; virtio_net calls the first
 * from 2.6.33 and the second from 2.6.38.  Both are spelt out from what they
 * mean: an RX skb whose IP header lands aligned, and the offset of the
 * checksum start from skb->data.
 */
static inline struct sk_buff *netdev_alloc_skb_ip_align(struct net_device *dev,
							unsigned int length)
{
	struct sk_buff *skb = netdev_alloc_skb(dev, length + NET_IP_ALIGN);

	if (NET_IP_ALIGN && skb)
		skb_reserve(skb, NET_IP_ALIGN);
	return skb;
}

static inline int skb_checksum_start_offset(const struct sk_buff *skb)
{
	return skb->csum_start - skb_headroom(skb);
}

/*
 * Why: the DDE's kfree_skb() drops an skb's fragment pages with put_page(),
 * which never frees (its free_hot_page() is a stub): every skb freed with
 * pages attached leaks them.  virtio_net does that where an RX buffer does
 * not fit the ring (2.6.29-2.6.31 fill the ring until add_buf fails, then
 * free the skb holding that page: a page per refill) and on its error and
 * remove paths.  porter frees the pages it allocated (rule page-alloc) when
 * the skb's data is about to go, and leaves any other page to the DDE.
 */
static inline void porter_skb_free_frag_pages(struct sk_buff *skb)
{
	struct skb_shared_info *shinfo;
	int i, kept = 0;

	if (skb_shared(skb) || skb_cloned(skb))
		return;			/* the data outlives this reference */
	shinfo = skb_shinfo(skb);
	for (i = 0; i < shinfo->nr_frags; i++) {
		struct page *page = shinfo->frags[i].page;

		if (!porter_page_is_ours(page))
			shinfo->frags[kept++] = shinfo->frags[i];
		else if (put_page_testzero(page))
			porter___free_pages(page, 0);
	}
	shinfo->nr_frags = kept;
}

static inline void porter_kfree_skb(struct sk_buff *skb)
{
	if (skb)
		porter_skb_free_frag_pages(skb);
	kfree_skb(skb);
}

#define porter_dev_kfree_skb(skb) porter_kfree_skb(skb)

#endif /* PORTER_SKBUFF_H */
