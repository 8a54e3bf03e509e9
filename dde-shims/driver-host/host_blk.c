/* host_blk.c - the driver host's virtio-blk service (libc side): open disks by name, read, write and flush through a DMA window, completions to the harness. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <ddekit/memory.h>
#include <ddekit/pgtab.h>

#include "host.h"
#include "host_bridge.h"

#define WINDOW_MAX (64u << 20)

/* A handle's data window: DMA memory, so the harness sees it in guest memory. */
struct window {
	void *virt;
	uint32_t bytes;
	uint64_t phys;
};

static struct window windows[HOST_BLK_HANDLES];
static volatile uint32_t reads, writes, flushes, errors, completed;
static volatile uint64_t bytes_read, bytes_written;

void bundle_stats(struct porter_stats_reply *s)
{
	(void)s;	/* frames: none; a disk's figures come with BLK_STATS */
}

/* The completion callback (porter/blkio.h's done), from the disk's interrupt thread. */
void host_blk_complete(int handle, unsigned int tag, int status)
{
	struct porter_blk_done_msg m = { (uint32_t)handle, tag, status };

	if (status)
		__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&completed, 1, __ATOMIC_RELAXED);
	host_send(PORTER_BLK_DONE, 0, &m, sizeof(m), NULL, 0);
}

static void serve_open(const struct porter_msg_hdr *h, const uint8_t *buf)
{
	struct porter_blk_open_req r;
	struct porter_blk_open_reply out;
	struct host_blk_info info;
	struct window *w;
	int handle;

	if (h->len != sizeof(r)) {
		host_error(h->seq, "BLK_OPEN payload malformed");
		return;
	}
	memcpy(&r, buf, sizeof(r));
	memset(&out, 0, sizeof(out));
	memset(&info, 0, sizeof(info));
	if (memchr(r.name, 0, sizeof(r.name)) == NULL) {
		host_error(h->seq, "BLK_OPEN: unterminated disk name");
		return;
	}
	if (r.window_bytes > WINDOW_MAX) {
		host_reply(h->seq, -EINVAL, &out, sizeof(out));
		return;
	}
	handle = host_blk_open(r.name, r.writable != 0, &info);
	if (handle < 0) {
		host_reply(h->seq, handle, &out, sizeof(out));
		return;
	}
	w = &windows[handle];
	memset(w, 0, sizeof(*w));
	if (r.window_bytes) {
		w->virt = ddekit_large_malloc((int)r.window_bytes);
		if (!w->virt) {
			host_blk_close(handle);
			host_reply(h->seq, -ENOMEM, &out, sizeof(out));
			return;
		}
		w->bytes = r.window_bytes;
		w->phys = ddekit_pgtab_get_physaddr(w->virt);
	}
	out.handle = handle;
	out.block_size = info.block_size;
	out.sectors = info.sectors;
	out.start = info.start;
	out.read_only = info.read_only;
	out.window_bytes = w->bytes;
	out.window_phys = w->phys;
	memcpy(out.disk, info.disk, sizeof(out.disk));
	out.disk[sizeof(out.disk) - 1] = 0;
	host_reply(h->seq, 0, &out, sizeof(out));
}

static void serve_close(const struct porter_msg_hdr *h, const uint8_t *buf)
{
	struct porter_blk_handle_req r;
	int st;

	if (h->len != sizeof(r)) {
		host_error(h->seq, "BLK_CLOSE payload malformed");
		return;
	}
	memcpy(&r, buf, sizeof(r));
	st = host_blk_close((int)r.handle);
	if (!st && windows[r.handle].virt) {
		ddekit_large_free(windows[r.handle].virt);
		memset(&windows[r.handle], 0, sizeof(windows[r.handle]));
	}
	host_reply(h->seq, st, NULL, 0);
}

static void serve_rw(const struct porter_msg_hdr *h, const uint8_t *buf)
{
	struct porter_blk_rw_req r;
	struct window *w;
	int st;

	if (h->len != sizeof(r)) {
		host_error(h->seq, "BLK_READ/WRITE/FLUSH payload malformed");
		return;
	}
	memcpy(&r, buf, sizeof(r));
	if (r.tag > PORTER_BLK_TAG_MAX) {
		host_reply(h->seq, -EINVAL, NULL, 0);
		return;
	}
	if (h->type == PORTER_BLK_FLUSH) {
		st = host_blk_flush((int)r.handle, r.tag);
		if (!st)
			__atomic_add_fetch(&flushes, 1, __ATOMIC_RELAXED);
		host_reply(h->seq, st, NULL, 0);
		return;
	}
	w = r.handle < HOST_BLK_HANDLES ? &windows[r.handle] : NULL;
	if (w && (r.offset > w->bytes || r.bytes > w->bytes - r.offset)) {
		host_reply(h->seq, -EFAULT, NULL, 0);	/* outside the window: never touched */
		return;
	}
	st = host_blk_rw((int)r.handle, r.sector, w ? (char *)w->virt + r.offset : NULL, r.bytes,
			 h->type == PORTER_BLK_WRITE, r.tag);
	if (!st && h->type == PORTER_BLK_WRITE) {
		__atomic_add_fetch(&writes, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&bytes_written, r.bytes, __ATOMIC_RELAXED);
	} else if (!st) {
		__atomic_add_fetch(&reads, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&bytes_read, r.bytes, __ATOMIC_RELAXED);
	}
	host_reply(h->seq, st, NULL, 0);
}

static void serve_stats(const struct porter_msg_hdr *h)
{
	struct porter_blk_stats_reply s;

	memset(&s, 0, sizeof(s));
	s.reads = reads;
	s.writes = writes;
	s.flushes = flushes;
	s.errors = errors;
	s.in_flight = reads + writes + flushes - completed;
	s.bytes_read = bytes_read;
	s.bytes_written = bytes_written;
	host_reply(h->seq, 0, &s, sizeof(s));
}

int bundle_serve(const struct porter_msg_hdr *h, const uint8_t *buf)
{
	switch (h->type) {
	case PORTER_BLK_OPEN:
		serve_open(h, buf);
		return 1;
	case PORTER_BLK_CLOSE:
		serve_close(h, buf);
		return 1;
	case PORTER_BLK_READ:
	case PORTER_BLK_WRITE:
	case PORTER_BLK_FLUSH:
		serve_rw(h, buf);
		return 1;
	case PORTER_BLK_STATS:
		serve_stats(h);
		return 1;
	default:
		return 0;
	}
}
