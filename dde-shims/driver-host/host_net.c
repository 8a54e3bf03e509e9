/* host_net.c - the driver host's virtio-net service (libc side): open, close, transmit, info, RX mode; RX frames to the harness. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "host.h"
#include "host_bridge.h"

static volatile uint32_t rx_frames, tx_frames;

void host_net_deliver_rx(const char *ifname, const void *frame, int len)
{
	struct porter_ifname_req r;

	memset(&r, 0, sizeof(r));
	strncpy(r.ifname, ifname, sizeof(r.ifname) - 1);
	rx_frames++;
	host_send(PORTER_RX, 0, &r, sizeof(r), frame, len);
}

void bundle_stats(struct porter_stats_reply *s)
{
	s->rx_frames = rx_frames;
	s->tx_frames = tx_frames;
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
