/* frame_ring.h - the driver host's end of a shared-memory frame ring (layout and protocol: protocol.h). */
#ifndef PORTER_FRAME_RING_H
#define PORTER_FRAME_RING_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct frame_ring {
	struct porter_frame_ring *hdr;
	uint8_t *slots;
	uint32_t nslots, slot_size;
	int ready_fd, space_fd;		/* eventfds: frames published, slots freed */
};

/* Bytes one ring of this geometry takes in the memfd (4096-aligned); 0 if the geometry is invalid. */
size_t frame_ring_bytes(uint32_t slots, uint32_t slot_size);
/* Use the ring the harness laid out at base; -EINVAL if its header disagrees with the geometry. */
int frame_ring_attach(struct frame_ring *r, void *base, uint32_t slots, uint32_t slot_size,
		      int ready_fd, int space_fd);
static inline uint32_t frame_ring_capacity(const struct frame_ring *r)
{
	return r->slot_size - (uint32_t)sizeof(struct porter_frame_slot);
}

/* consumer: the next published slot (its frame follows the header), or NULL; then pop it */
struct porter_frame_slot *frame_ring_peek(struct frame_ring *r);
void frame_ring_pop(struct frame_ring *r);

/* producer: publish a frame, waiting while the ring is full; -EMSGSIZE if it does not fit a slot */
int frame_ring_push(struct frame_ring *r, uint32_t dev, const void *frame, uint32_t len);

#endif /* PORTER_FRAME_RING_H */
