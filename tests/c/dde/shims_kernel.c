/* shims_kernel.c - kernel side of porter's run-time check of its gap shims on the real DDE. */
#include <dde26.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/cpumask.h>
#include <linux/etherdevice.h>
#include <linux/netdevice.h>
#include <linux/skbuff.h>
#include <net/sch_generic.h>
#include <asm/io.h>
#include <porter/gfp.h>
#include <porter/netdevice.h>
#include <porter/skbuff.h>
#include <porter/slab.h>

extern void skb_init(void);

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		printk("porter-shims: FAILED %s (line %d)\n", #cond, __LINE__); \
		failures++; \
	} \
} while (0)

/* A holder of the TX lock that completed transmissions wakes a stopped queue; one that did not, does not. */
static void check_tx_unlock(struct net_device *dev)
{
	/* what register_netdevice() and dev_activate() would have set up */
	spin_lock_init(&dev->tx_global_lock);
	spin_lock_init(&netdev_get_tx_queue(dev, 0)->_xmit_lock);
	netdev_get_tx_queue(dev, 0)->xmit_lock_owner = -1;
	netdev_get_tx_queue(dev, 0)->qdisc = &noop_qdisc;
	netif_stop_queue(dev);
	porter_netif_tx_lock_bh(dev);
	porter_netif_tx_unlock_bh(dev);
	CHECK(netif_queue_stopped(dev));
	porter_netif_tx_lock_bh(dev);
	dev->stats.tx_packets++;		/* as free_old_xmit_skbs() counts a completion */
	porter_netif_tx_unlock_bh(dev);
	CHECK(!netif_queue_stopped(dev));
}

static void check_address_lists(struct net_device *dev)
{
	static const u8 mc0[6] = { 0x01, 0x00, 0x5e, 0, 0, 1 }, mc1[6] = { 0x33, 0x33, 0, 0, 0, 1 };
	static const u8 uc0[6] = { 0x02, 0, 0, 0, 0, 7 }, uc1[6] = { 0x02, 0, 0, 0, 0, 8 };
	struct dev_addr_list da[2];
	struct netdev_hw_addr hw[2];
	struct netdev_hw_addr *ha;
	struct dev_mc_list *mc;
	struct dev_addr_list *chain;
	int i;

	memset(da, 0, sizeof(da));
	memcpy(da[0].da_addr, mc0, 6);
	memcpy(da[1].da_addr, mc1, 6);
	da[0].da_addrlen = da[1].da_addrlen = 6;
	da[0].next = &da[1];
	dev->mc_list = &da[0];
	dev->mc_count = 2;
	CHECK(netdev_mc_count(dev) == 2);
	i = 0;
	netdev_for_each_mc_addr(ha, dev)	/* 2.6.35 on: netdev_hw_addr entries */
		CHECK(memcmp(ha->addr, i++ ? mc1 : mc0, 6) == 0);
	CHECK(i == 2);
	i = 0;
	netdev_for_each_mc_addr(mc, dev)	/* 2.6.34: the dev_mc_list chain itself */
		CHECK(mc == &da[i++]);
	CHECK(i == 2);
	dev->mc_list = NULL;
	dev->mc_count = 0;

	memset(hw, 0, sizeof(hw));
	memcpy(hw[0].addr, uc0, 6);
	memcpy(hw[1].addr, uc1, 6);
	INIT_LIST_HEAD(&dev->uc.list);
	CHECK(porter_netdev_uc_list(dev) == NULL);
	list_add_tail(&hw[0].list, &dev->uc.list);
	list_add_tail(&hw[1].list, &dev->uc.list);
	dev->uc.count = 2;
	CHECK(netdev_uc_count(dev) == 2);
	i = 0;
	netdev_for_each_uc_addr(ha, dev)
		CHECK(ha == &hw[i++]);
	CHECK(i == 2);
	chain = porter_netdev_uc_list(dev);	/* 2.6.30's dev->uc_list */
	CHECK(chain && memcmp(chain->da_addr, uc0, 6) == 0);
	CHECK(chain && chain->next && memcmp(chain->next->da_addr, uc1, 6) == 0);
	CHECK(chain && chain->next && chain->next->next == NULL);
	INIT_LIST_HEAD(&dev->uc.list);
	dev->uc.count = 0;
}

static void check_whole_pages(size_t (*in_use)(void))
{
	size_t before = in_use();
	u8 *p = porter_kzalloc_pages(3 * PAGE_SIZE, GFP_KERNEL);
	void *small = kmalloc(32, GFP_KERNEL);
	int i, zero = 1;

	CHECK(p && ((unsigned long)p & ~PAGE_MASK) == 0);
	CHECK(p && (virt_to_phys(p) & ~PAGE_MASK) == 0);
	for (i = 0; p && i < 3 * PAGE_SIZE; i++)
		zero &= p[i] == 0;
	CHECK(zero);
	CHECK(in_use() >= before + 3 * PAGE_SIZE);
	porter_kfree(p);
	porter_kfree(small);			/* a kmalloc'd object goes to kfree() */
	CHECK(in_use() < before + 3 * PAGE_SIZE);
}

/* An skb holding a porter page: the DDE's kfree_skb() keeps the page, porter_kfree_skb() frees it. */
static size_t freed_by(void (*free_skb)(struct sk_buff *), size_t (*in_use)(void))
{
	struct sk_buff *skb = alloc_skb(128, GFP_KERNEL);
	struct page *page = porter_alloc_page(GFP_KERNEL);
	size_t before;

	CHECK(skb && page && porter_page_is_ours(page));
	skb_fill_page_desc(skb, 0, page, 0, PAGE_SIZE);
	before = in_use();
	free_skb(skb);
	return before - in_use();
}

static void check_skb_helpers(struct net_device *dev, size_t (*in_use)(void))
{
	struct sk_buff *skb = netdev_alloc_skb_ip_align(dev, 200);

	CHECK(skb && skb_headroom(skb) == NET_SKB_PAD + NET_IP_ALIGN);
	if (skb) {
		skb->csum_start = skb_headroom(skb) + 14;
		CHECK(skb_checksum_start_offset(skb) == 14);
		kfree_skb(skb);
	}
	CHECK(freed_by(kfree_skb, in_use) < PAGE_SIZE);
	CHECK(freed_by(porter_kfree_skb, in_use) >= PAGE_SIZE);
}

/* Returns the number of failed checks. Built with the DDE's own flags. */
int shims_run(size_t (*in_use)(void))
{
	struct net_device *dev;

	cpumask_copy((struct cpumask *)cpu_possible_mask, cpu_online_mask);
	l4dde26_init();
	l4dde26_process_init();
	l4dde26_softirq_init();
	skb_init();
	l4dde26_do_initcalls();		/* net_dev_init: the NET_TX softirq a queue wake raises */

	dev = alloc_etherdev(0);
	CHECK(dev != NULL);
	if (!dev)
		return failures;
	check_tx_unlock(dev);
	check_address_lists(dev);
	check_whole_pages(in_use);
	check_skb_helpers(dev, in_use);
	return failures;
}
