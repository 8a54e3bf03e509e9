/* host.h - what the driver host's core (host_main.c) offers a bundle's service, and what a service provides. */
#ifndef PORTER_HOST_H
#define PORTER_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

/*
 * libc side only.  A bundle (virtio-net, ...) brings two files:
 * host_<name>.c (libc side: its messages) and host_<name>_linux.c (Linux
 * side, built with the DDE's flags: its driver calls); host_bridge.h has
 * the calls between them.
 */

/* offered by host_main.c; safe from any thread */
void host_reply(uint32_t seq, int32_t status, const void *data, size_t len);
void host_send(uint16_t type, uint32_t seq, const void *a, size_t alen, const void *b, size_t blen);
void host_error(uint32_t seq, const char *text);	/* an ERROR message: why a request was refused */
/* the fds that came with the request being served: the service takes them (it closes them) */
int host_take_fds(int *out, int max);

/* provided by the bundle's host_<name>.c */
int bundle_serve(const struct porter_msg_hdr *h, const uint8_t *buf);	/* 1: served, 0: not its type */
void bundle_stats(struct porter_stats_reply *s);	/* fill the bundle's counters */

/*
 * Optional (the core has empty defaults): fds of the service's own that the
 * main thread, the DDE process commands run in, waits on beside the control
 * channel; then the service's work for them.  *timeout_us: how soon it wants
 * to run again without an event (-1: no need).
 */
struct pollfd;
int bundle_poll_fds(struct pollfd *fds, int max, long *timeout_us);
void bundle_poll_work(const struct pollfd *fds, int n);

/*
 * A batch of driver calls on this thread (a burst of frames from a ring):
 * the port writes they make are held until the batch ends, and a write equal
 * to the one held last is merged with it. A virtio driver's transmit path
 * writes nothing but its queue's notify register, and a notified device reads
 * the whole avail ring, so one notify after the burst does what one per frame
 * did, at a fraction of the trips. Nothing inside a batch may wait on the
 * device.
 */
void host_io_batch_begin(void);
void host_io_batch_end(void);

#endif /* PORTER_HOST_H */
