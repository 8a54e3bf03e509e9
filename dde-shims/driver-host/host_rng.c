/* host_rng.c - the driver host's virtio-rng service (libc side): read N bytes from the registered hwrng, its counters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "host_bridge.h"

void bundle_stats(struct porter_stats_reply *s)
{
	(void) s;		/* no frames here: RNG_INFO has the rng's counters */
}

/*
 * As the Hurd translator's io_read does: the bytes land in ordinary memory
 * (porter's core copies them out of its DMA buffer), then go to the
 * harness as RNG_DATA messages and a reply with the count.
 */
static void serve_read(const struct porter_msg_hdr *h, const uint8_t *buf)
{
	struct porter_rng_read_req r;
	uint8_t *data;
	long n, off, chunk;

	if (h->len != sizeof(r)) {
		host_error(h->seq, "RNG_READ payload malformed");
		return;
	}
	memcpy(&r, buf, sizeof(r));
	if (r.len == 0 || r.len > PORTER_RNG_READ_MAX || r.min == 0 || r.min > r.len) {
		host_error(h->seq, "RNG_READ wants 1 <= min <= len <= PORTER_RNG_READ_MAX");
		return;
	}
	data = malloc(r.len);
	if (!data) {
		host_error(h->seq, "RNG_READ: no memory for the buffer");
		return;
	}
	n = host_rng_read(data, r.len, r.min, r.timeout_ms);
	for (off = 0; off < n; off += chunk) {
		chunk = n - off < PORTER_RNG_DATA_MAX ? n - off : PORTER_RNG_DATA_MAX;
		host_send(PORTER_RNG_DATA, h->seq, data + off, chunk, NULL, 0);
	}
	free(data);
	host_reply(h->seq, (int32_t)n, NULL, 0);
}

static void serve_info(uint32_t seq)
{
	struct host_rng_info i;
	struct porter_rng_info_reply r;

	memset(&i, 0, sizeof(i));
	host_rng_info(&i);
	memset(&r, 0, sizeof(r));
	memcpy(r.name, i.name, sizeof(r.name) - 1);
	r.pull_size = i.pull_size;
	r.pulls = i.pulls;
	r.bytes_pulled = i.bytes_pulled;
	r.bytes_read = i.bytes_read;
	r.empty_pulls = i.empty_pulls;
	r.overruns = i.overruns;
	r.timeouts = i.timeouts;
	r.buffered = i.buffered;
	host_reply(seq, 0, &r, sizeof(r));
}

int bundle_serve(const struct porter_msg_hdr *h, const uint8_t *buf)
{
	switch (h->type) {
	case PORTER_RNG_READ:
		serve_read(h, buf);
		return 1;
	case PORTER_RNG_INFO:
		serve_info(h->seq);
		return 1;
	default:
		return 0;
	}
}
