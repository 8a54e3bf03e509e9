/* frame_ring.c - the driver host's end of a shared-memory frame ring: one producer, one consumer. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "frame_ring.h"

size_t frame_ring_bytes(uint32_t slots, uint32_t slot_size)
{
	size_t bytes;

	if (!slots || slots & (slots - 1) || slot_size < 64 || slot_size % 64 || slots > 65536 ||
	    slot_size > PORTER_MSG_MAX)
		return 0;
	bytes = sizeof(struct porter_frame_ring) + (size_t)slots * slot_size;
	return (bytes + PORTER_FRAME_RING_ALIGN - 1) / PORTER_FRAME_RING_ALIGN * PORTER_FRAME_RING_ALIGN;
}

int frame_ring_attach(struct frame_ring *r, void *base, uint32_t slots, uint32_t slot_size,
		      int ready_fd, int space_fd)
{
	struct porter_frame_ring *hdr = base;

	if (hdr->slots != slots || hdr->slot_size != slot_size || hdr->head != hdr->tail)
		return -EINVAL;
	r->hdr = hdr;
	r->slots = (uint8_t *)base + sizeof(*hdr);
	r->nslots = slots;
	r->slot_size = slot_size;
	r->ready_fd = ready_fd;
	r->space_fd = space_fd;
	return 0;
}

static struct porter_frame_slot *slot_at(struct frame_ring *r, uint32_t i)
{
	return (struct porter_frame_slot *)(r->slots + (size_t)(i & (r->nslots - 1)) * r->slot_size);
}

static void wake(int fd, uint32_t *waiting)
{
	uint64_t one = 1;

	/* our store (head or tail) before the other side's flag: a full fence */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(waiting, __ATOMIC_RELAXED)) {
		__atomic_store_n(waiting, 0, __ATOMIC_RELAXED);
		if (write(fd, &one, sizeof(one)) < 0) {
			/* counter saturated: the other side has a wake-up pending anyway */
		}
	}
}

struct porter_frame_slot *frame_ring_peek(struct frame_ring *r)
{
	uint32_t tail = r->hdr->tail;

	if (__atomic_load_n(&r->hdr->head, __ATOMIC_ACQUIRE) == tail)
		return NULL;
	return slot_at(r, tail);
}

void frame_ring_pop(struct frame_ring *r)
{
	__atomic_store_n(&r->hdr->tail, r->hdr->tail + 1, __ATOMIC_RELEASE);
	wake(r->space_fd, &r->hdr->producer_waiting);
}

int frame_ring_push(struct frame_ring *r, uint32_t dev, const void *frame, uint32_t len)
{
	struct porter_frame_slot *slot;
	uint32_t head = r->hdr->head;
	struct pollfd pfd = { .fd = r->space_fd, .events = POLLIN };
	uint64_t n;

	if (len > frame_ring_capacity(r))
		return -EMSGSIZE;
	while (head - __atomic_load_n(&r->hdr->tail, __ATOMIC_ACQUIRE) >= r->nslots) {
		/* full: say so, look again, sleep (1 ms at most: the harness's wake-up may race) */
		__atomic_store_n(&r->hdr->producer_waiting, 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (head - __atomic_load_n(&r->hdr->tail, __ATOMIC_ACQUIRE) < r->nslots)
			break;
		if (poll(&pfd, 1, 1) > 0 && read(r->space_fd, &n, sizeof(n)) < 0) {
			/* drained by a racing read: nothing to do */
		}
	}
	slot = slot_at(r, head);
	slot->len = len;
	slot->dev = dev;
	memcpy(slot + 1, frame, len);
	__atomic_store_n(&r->hdr->head, head + 1, __ATOMIC_RELEASE);
	wake(r->ready_fd, &r->hdr->consumer_waiting);
	return 0;
}
