/* host_net.c - the driver host's virtio-net service (libc side): open, close, transmit, info, RX mode;
 * frames to and from the harness, through frame rings once it hands them over. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame_ring.h"
#include "host.h"
#include "host_bridge.h"

#define TX_BURST 256		/* frames from the TX ring per turn, before the control channel's */
#define TX_RETRY_US 100		/* the driver stopped its queue: try the ring's next frame this soon */

static volatile uint32_t rx_frames, tx_frames, tx_dropped, rx_dropped;

/* the frame rings, once NET_RINGS handed them over */
static struct {
	int attached;
	void *map;
	size_t map_bytes;
	struct frame_ring tx, rx;
	int fds[5];
	char names[PORTER_MAX_DEVICES][PORTER_IFNAMSIZ];
	int ndevs;
	int tx_blocked;		/* the driver stopped its queue with frames left */
} rings;

static int dev_index(const char *ifname)
{
	int i;

	for (i = 0; i < rings.ndevs; i++)
		if (!strcmp(rings.names[i], ifname))
			return i;
	return -1;
}

void host_net_deliver_rx(const char *ifname, const void *frame, int len)
{
	struct porter_ifname_req r;
	int dev;

	if (rings.attached && (dev = dev_index(ifname)) >= 0) {
		/* counted before it is published: a STATS the harness sends once it has the
		 * frame must count it. Blocks while the ring is full: the softirq waits, as
		 * on a full socket. */
		rx_frames++;
		if (frame_ring_push(&rings.rx, (uint32_t)dev, frame, (uint32_t)len) != 0) {
			rx_frames--;
			rx_dropped++;
		}
		return;
	}
	memset(&r, 0, sizeof(r));
	strncpy(r.ifname, ifname, sizeof(r.ifname) - 1);
	rx_frames++;
	host_send(PORTER_RX, 0, &r, sizeof(r), frame, len);
}

void bundle_stats(struct porter_stats_reply *s)
{
	s->rx_frames = rx_frames;
	s->tx_frames = tx_frames;
	s->tx_dropped = tx_dropped;
	s->rx_dropped = rx_dropped;
}

static void detach_rings(void)
{
	int i;

	if (!rings.attached)
		return;
	rings.attached = 0;
	munmap(rings.map, rings.map_bytes);
	for (i = 0; i < 5; i++)
		close(rings.fds[i]);
}

/* fds: memfd, tx ready, tx space, rx ready, rx space */
static int attach_rings(const struct porter_net_rings_req *req, const int *fds)
{
	size_t bytes = frame_ring_bytes(req->slots, req->slot_size);
	struct stat st;
	void *map;
	int err;

	if (!bytes || fstat(fds[0], &st) || (size_t)st.st_size < 2 * bytes)
		return -EINVAL;
	map = mmap(NULL, 2 * bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	if (map == MAP_FAILED)
		return -errno;
	detach_rings();
	err = frame_ring_attach(&rings.tx, map, req->slots, req->slot_size, fds[1], fds[2]);
	if (!err)
		err = frame_ring_attach(&rings.rx, (uint8_t *)map + bytes, req->slots, req->slot_size,
					fds[3], fds[4]);
	if (err) {
		munmap(map, 2 * bytes);
		return err;
	}
	rings.map = map;
	rings.map_bytes = 2 * bytes;
	memcpy(rings.fds, fds, sizeof(rings.fds));
	memset(rings.names, 0, sizeof(rings.names));
	rings.ndevs = bundle_list_devices(rings.names, PORTER_MAX_DEVICES);
	rings.tx_blocked = 0;
	rings.attached = 1;
	return 0;
}

static void serve_rings(const struct porter_msg_hdr *h, const uint8_t *buf)
{
	int fds[5], n = host_take_fds(fds, 5), st, i;

	if (h->len != sizeof(struct porter_net_rings_req) || n != 5) {
		for (i = 0; i < n; i++)
			close(fds[i]);
		host_error(h->seq, "NET_RINGS needs a net_rings_req and 5 fds (memfd, then tx ready/space, rx ready/space)");
		return;
	}
	st = attach_rings((const struct porter_net_rings_req *)buf, fds);
	if (st)
		for (i = 0; i < 5; i++)
			close(fds[i]);
	host_reply(h->seq, st, NULL, 0);
}

/* TX frames from the ring into the driver, in order; a stopped queue keeps the rest there. */
static void serve_tx_ring(void)
{
	struct porter_frame_slot *slot;
	int n, st;

	rings.tx_blocked = 0;
	host_io_batch_begin();
	for (n = 0; n < TX_BURST && (slot = frame_ring_peek(&rings.tx)); n++) {
		if (slot->dev >= (uint32_t)rings.ndevs || slot->len > frame_ring_capacity(&rings.tx) || !slot->len) {
			tx_dropped++;
			frame_ring_pop(&rings.tx);
			continue;
		}
		st = host_net_xmit(rings.names[slot->dev], slot + 1, (int)slot->len);
		if (st == -EAGAIN) {
			rings.tx_blocked = 1;
			break;
		}
		if (st == 0)
			tx_frames++;
		else
			tx_dropped++;
		frame_ring_pop(&rings.tx);
	}
	host_io_batch_end();
}

int bundle_poll_fds(struct pollfd *fds, int max, long *timeout_us)
{
	*timeout_us = -1;
	if (!rings.attached || max < 1)
		return 0;
	fds[0] = (struct pollfd){ .fd = rings.tx.ready_fd, .events = POLLIN };
	if (frame_ring_peek(&rings.tx))
		*timeout_us = rings.tx_blocked ? TX_RETRY_US : 0;
	return 1;
}

void bundle_poll_work(const struct pollfd *fds, int n)
{
	uint64_t count;

	if (!rings.attached || n < 1)
		return;
	if (fds[0].revents & POLLIN && read(rings.tx.ready_fd, &count, sizeof(count)) < 0) {
		/* drained already */
	}
	serve_tx_ring();
}

static int ifname_of(const uint8_t *buf, size_t len, char *out)
{
	if (len < PORTER_IFNAMSIZ || memchr(buf, 0, PORTER_IFNAMSIZ) == NULL)
		return -1;
	memcpy(out, buf, PORTER_IFNAMSIZ);
	return 0;
}

static void serve_info(uint32_t seq, const char *ifname)
{
	struct host_netdev_info i;
	struct porter_info_reply r;
	int st = host_net_info(ifname, &i);

	memset(&r, 0, sizeof(r));
	if (!st) {
		memcpy(r.mac, i.mac, 6);
		r.flags = i.flags;
		r.mtu = i.mtu;
		r.link_up = i.link_up;
		r.running = i.running;
	}
	host_reply(seq, st, &r, sizeof(r));
}

static void serve_rx_mode(const struct porter_msg_hdr *h, const uint8_t *buf)
{
	struct porter_rx_mode_req r;

	if (h->len < sizeof(r)) {
		host_error(h->seq, "RX_MODE payload too short");
		return;
	}
	memcpy(&r, buf, sizeof(r));
	if (memchr(r.ifname, 0, sizeof(r.ifname)) == NULL || r.nmc > 64 ||
	    h->len != sizeof(r) + 6 * r.nmc) {
		host_error(h->seq, "RX_MODE payload malformed");
		return;
	}
	host_reply(h->seq, host_net_rx_mode(r.ifname, r.promisc, r.allmulti, buf + sizeof(r), r.nmc),
		   NULL, 0);
}

int bundle_serve(const struct porter_msg_hdr *h, const uint8_t *buf)
{
	char ifname[PORTER_IFNAMSIZ];
	const uint8_t *rest = buf + PORTER_IFNAMSIZ;
	size_t restlen = h->len >= PORTER_IFNAMSIZ ? h->len - PORTER_IFNAMSIZ : 0;
	int st;

	switch (h->type) {
	case PORTER_RX_MODE:
		serve_rx_mode(h, buf);
		return 1;
	case PORTER_NET_RINGS:
		serve_rings(h, buf);
		return 1;
	case PORTER_OPEN:
	case PORTER_CLOSE:
	case PORTER_XMIT:
	case PORTER_INFO:
		break;
	default:
		return 0;
	}
	if (ifname_of(buf, h->len, ifname)) {
		host_error(h->seq, "missing or unterminated interface name");
		return 1;
	}
	switch (h->type) {
	case PORTER_OPEN:
		host_reply(h->seq, host_net_open(ifname), NULL, 0);
		break;
	case PORTER_CLOSE:
		host_reply(h->seq, host_net_close(ifname), NULL, 0);
		break;
	case PORTER_XMIT:
		st = restlen ? host_net_xmit(ifname, rest, restlen) : -EINVAL;
		if (st == 0)
			tx_frames++;
		host_reply(h->seq, st, NULL, 0);
		break;
	default:
		serve_info(h->seq, ifname);
	}
	return 1;
}
