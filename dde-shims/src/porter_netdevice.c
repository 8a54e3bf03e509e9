/* porter_netdevice.c - TX locking that keeps start_xmit out and wake-ups in, and dev->uc_list (see porter/netdevice.h). */
#include <linux/kernel.h>
#include <linux/netdevice.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <porter/netdevice.h>

/* What porter keeps per device; netdde never frees its devices, nor does porter. */
struct porter_netdev_state {
	struct porter_netdev_state *next;
	struct net_device *dev;
	unsigned long tx_packets_at_lock;	/* under porter_netif_tx_lock() */
	int uc_capacity;
	struct dev_addr_list *uc_entries;	/* porter_netdev_uc_list()'s copy */
};

static struct porter_netdev_state *porter_netdev_states;
static DEFINE_SPINLOCK(porter_netdev_states_lock);

static struct porter_netdev_state *porter_netdev_state(struct net_device *dev)
{
	struct porter_netdev_state *s;
	unsigned long flags;

	spin_lock_irqsave(&porter_netdev_states_lock, flags);
	for (s = porter_netdev_states; s && s->dev != dev; s = s->next)
		;
	if (!s) {
		s = kzalloc(sizeof(*s), GFP_ATOMIC);
		if (s) {
			s->dev = dev;
			s->next = porter_netdev_states;
			porter_netdev_states = s;
		}
	}
	spin_unlock_irqrestore(&porter_netdev_states_lock, flags);
	return s;
}

void porter_netif_tx_lock(struct net_device *dev)
{
	struct porter_netdev_state *s = porter_netdev_state(dev);
	unsigned int i;

	netif_tx_lock(dev);
	for (i = 0; i < dev->num_tx_queues; i++)
		spin_lock(&netdev_get_tx_queue(dev, i)->_xmit_lock);
	if (s)
		s->tx_packets_at_lock = dev->stats.tx_packets;
}

void porter_netif_tx_unlock(struct net_device *dev)
{
	struct porter_netdev_state *s = porter_netdev_state(dev);
	int completed = s && dev->stats.tx_packets != s->tx_packets_at_lock;
	unsigned int i;

	for (i = dev->num_tx_queues; i-- > 0; )
		spin_unlock(&netdev_get_tx_queue(dev, i)->_xmit_lock);
	netif_tx_unlock(dev);
	for (i = 0; completed && i < dev->num_tx_queues; i++) {
		struct netdev_queue *txq = netdev_get_tx_queue(dev, i);

		if (netif_tx_queue_stopped(txq))
			netif_tx_wake_queue(txq);
	}
}

struct dev_addr_list *porter_netdev_uc_list(struct net_device *dev)
{
	struct porter_netdev_state *s;
	struct netdev_hw_addr *ha;
	int n = dev->uc.count, i = 0;

	if (n == 0)
		return NULL;
	s = porter_netdev_state(dev);
	if (s && s->uc_capacity < n) {
		kfree(s->uc_entries);
		s->uc_entries = kcalloc(n, sizeof(*s->uc_entries), GFP_ATOMIC);
		s->uc_capacity = s->uc_entries ? n : 0;
	}
	if (!s || !s->uc_entries)
		panic("porter: no memory to copy the unicast list of %s\n", dev->name);
	list_for_each_entry(ha, &dev->uc.list, list) {
		struct dev_addr_list *da;

		if (i == n)
			break;
		da = &s->uc_entries[i++];
		memset(da, 0, sizeof(*da));
		memcpy(da->da_addr, ha->addr, MAX_ADDR_LEN);
		da->da_addrlen = dev->addr_len;
		da->da_users = ha->refcount;
		da->next = &s->uc_entries[i];
	}
	if (i == 0)
		return NULL;
	s->uc_entries[i - 1].next = NULL;
	return s->uc_entries;
}
