/* host_main.c - the driver host's core: runs a ported tree on the real libdde_linux26 and serves porter's harness. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ddekit_linux.h"
#include "portio_trap.h"
#include "host.h"
#include "host_bridge.h"

/*
 * libdde_linux26 is linked into this executable and defines snprintf,
 * sprintf, vsnprintf, sscanf and more under their libc names (kernel
 * semantics).  This file therefore formats only with fprintf/fputs.
 */

static int ctl_fd = 3, io_fd = 4;
static pthread_mutex_t ctl_send_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int io_busy;		/* spin lock: io_call may run inside the SIGSEGV trap */
static uint32_t io_seq;
static uint32_t irq_lines[PORTER_MAX_DEVICES];
static int nirqs;

static void die_harness_gone(const char *channel)
{
	fprintf(stderr, "driver-host: the harness closed the %s channel; exiting\n", channel);
	_exit(PORTER_EXIT_HARNESS_GONE);
}

/* ---------------------------------------------------------------- sending */

static int send_msg(int fd, uint16_t type, uint32_t seq, const void *a, size_t alen,
		    const void *b, size_t blen)
{
	struct porter_msg_hdr h = { PORTER_MSG_MAGIC, PORTER_PROTO_VERSION, type, seq,
				    (uint32_t)(alen + blen) };
	struct iovec iov[3] = { { &h, sizeof(h) }, { (void *)a, alen }, { (void *)b, blen } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 3 };
	ssize_t n;

	do
		n = sendmsg(fd, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

void host_send(uint16_t type, uint32_t seq, const void *a, size_t alen, const void *b, size_t blen)
{
	int err;

	pthread_mutex_lock(&ctl_send_lock);
	err = send_msg(ctl_fd, type, seq, a, alen, b, blen);
	pthread_mutex_unlock(&ctl_send_lock);
	if (err == -EPIPE || err == -ECONNRESET)
		die_harness_gone("control");
}

void host_error(uint32_t seq, const char *text)
{
	host_send(PORTER_ERROR, seq, text, strlen(text), NULL, 0);
}

static void io_sync(void);

/* A reply (and READY) follows every port write the request made: the harness
 * reads what the device saw once it has the answer. */
void host_reply(uint32_t seq, int32_t status, const void *data, size_t len)
{
	struct porter_reply_hdr r = { status };

	io_sync();
	host_send(PORTER_REPLY, seq, &r, sizeof(r), data, len);
}

/* ---------------------------------------------------------------- receiving */

/* One message: 1, 0 on EOF, or -errno. Checks the header; *why explains a reject. */
static int recv_msg(int fd, struct porter_msg_hdr *h, uint8_t *buf, size_t cap,
		    int *fds, int maxfds, int *nfds, const char **why)
{
	uint8_t raw[PORTER_MSG_MAX];
	char cbuf[CMSG_SPACE(sizeof(int) * PORTER_MSG_MAX_FDS)];
	struct iovec iov = { raw, sizeof(raw) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n;

	*why = NULL;
	if (nfds)
		*nfds = 0;
	do
		n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return 0;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k, got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int *in = (int *)CMSG_DATA(c);

			for (k = 0; k < got; k++) {
				if (nfds && *nfds < maxfds)
					fds[(*nfds)++] = in[k];
				else
					close(in[k]);	/* more than expected: do not leak */
			}
		}
	}
	memset(h, 0, sizeof(*h));
	if ((size_t)n < sizeof(*h)) {
		*why = "message shorter than its header";
		return 1;
	}
	memcpy(h, raw, sizeof(*h));
	if (h->magic != PORTER_MSG_MAGIC)
		*why = "bad magic (not a porter message)";
	else if (h->version != PORTER_PROTO_VERSION)
		*why = "unsupported protocol version (this host speaks version 1)";
	else if (h->len != (size_t)n - sizeof(*h))
		*why = "payload length does not match the header";
	else if (h->len > cap)
		*why = "payload too large";
	else if (m.msg_flags & MSG_TRUNC)
		*why = "message truncated";
	if (!*why)
		memcpy(buf, raw + sizeof(*h), h->len);
	return 1;
}

/* ---------------------------------------------------------------- io channel */

/*
 * A synchronous request to the harness.  It runs on DDE threads and inside
 * the port-I/O trap's signal handler, so no pthread locks: a spin lock, and
 * only async-signal-safe calls.  The trap is synchronous (the thread's own
 * in/out), so a thread never re-enters here while it holds the lock.
 */
static void io_lock(void)
{
	while (__atomic_test_and_set(&io_busy, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void io_unlock(void)
{
	__atomic_clear(&io_busy, __ATOMIC_RELEASE);
}

static int io_call(uint16_t type, const void *req, size_t len, uint32_t *value)
{
	struct porter_msg_hdr h;
	struct porter_io_reply rep;
	uint8_t buf[64];
	const char *why;
	uint32_t seq;
	int r;

	io_lock();
	seq = ++io_seq;
	if (send_msg(io_fd, type, seq, req, len, NULL, 0) < 0)
		die_harness_gone("io");
	for (;;) {
		r = recv_msg(io_fd, &h, buf, sizeof(buf), NULL, 0, NULL, &why);
		if (r <= 0)
			die_harness_gone("io");
		if (!why && h.type == PORTER_REPLY && h.seq == seq && h.len == sizeof(rep))
			break;
		/* not our answer: report it and keep waiting for the right one */
		send_msg(io_fd, PORTER_ERROR, h.seq, why ? why : "unexpected message on the io channel",
			 strlen(why ? why : "unexpected message on the io channel"), NULL, 0);
	}
	memcpy(&rep, buf, sizeof(rep));
	if (value)
		*value = rep.value;
	io_unlock();
	return rep.status;
}

static int pci_get_device(int nr, int *bus, int *slot, int *func)
{
	struct porter_get_device_req req = { (uint32_t)nr };
	uint32_t v;
	int st = io_call(PORTER_PCI_GET_DEVICE, &req, sizeof(req), &v);

	if (st)
		return -1;
	*bus = v & 0xff;
	*slot = (v >> 8) & 0xff;
	*func = (v >> 16) & 0xff;
	return 0;
}

static int pci_read(int bus, int slot, int func, int pos, int len, uint32_t *val)
{
	struct porter_pci_cfg_req req = { bus, slot, func, 0, pos, len, 0 };

	return io_call(PORTER_PCI_READ, &req, sizeof(req), val) ? -1 : 0;
}

static int pci_write(int bus, int slot, int func, int pos, int len, uint32_t val)
{
	struct porter_pci_cfg_req req = { bus, slot, func, 0, pos, len, val };

	return io_call(PORTER_PCI_WRITE, &req, sizeof(req), NULL) ? -1 : 0;
}

static int pci_irq_enable(int bus, int slot, int func, int pin, int *irq)
{
	struct porter_pci_cfg_req req = { bus, slot, func, 0, pin, 0, 0 };
	uint32_t v;

	if (io_call(PORTER_PCI_IRQ, &req, sizeof(req), &v))
		return -1;
	*irq = (int)v;
	return 0;
}

static uint32_t pio_read(uint16_t port, int size)
{
	struct porter_pio_req req = { port, (uint16_t)size, 0 };
	uint32_t v = 0xffffffff;

	io_call(PORTER_PIO_READ, &req, sizeof(req), &v);
	return v;
}

/*
 * Port writes are posted: nothing the driver does waits on their outcome
 * (a queue notify, above all), and the harness serves the io channel in
 * order, so a later read still sees every earlier write done, and the DMA
 * guard still checks the chains before the device hears of them.
 */
static int io_posted;	/* posted writes sent since the last synchronous io call */

static void send_posted(const struct porter_pio_req *req)
{
	io_lock();
	if (send_msg(io_fd, PORTER_PIO_WRITE_POSTED, ++io_seq, req, sizeof(*req), NULL, 0) < 0)
		die_harness_gone("io");
	io_posted = 1;
	io_unlock();
}

/* the batch host_io_batch_begin() opened: its thread, and the writes it holds */
#define HELD_MAX 16
static int batching;
static pthread_t batch_thread;
static struct porter_pio_req held[HELD_MAX];
static int nheld;

static void send_held(void)
{
	int i;

	for (i = 0; i < nheld; i++)
		send_posted(&held[i]);
	nheld = 0;
}

void host_io_batch_begin(void)
{
	batch_thread = pthread_self();
	batching = 1;
}

void host_io_batch_end(void)
{
	batching = 0;
	send_held();
}

static void pio_write(uint16_t port, int size, uint32_t val)
{
	struct porter_pio_req req = { port, (uint16_t)size, val };

	if (batching && pthread_equal(pthread_self(), batch_thread)) {
		if (nheld && !memcmp(&held[nheld - 1], &req, sizeof(req)))
			return;		/* the same register, the same value: one write does */
		if (nheld == HELD_MAX)
			send_held();
		held[nheld++] = req;
		return;
	}
	send_posted(&req);
}

/* Wait until the harness has served every posted write (it serves io in order). */
static void io_sync(void)
{
	if (__atomic_exchange_n(&io_posted, 0, __ATOMIC_ACQ_REL))
		io_call(PORTER_IO_SYNC, NULL, 0, NULL);
}

static const struct ddekit_linux_pci_ops harness_pci = {
	pci_get_device, pci_read, pci_write, pci_irq_enable,
};

/* ---------------------------------------------------------------- setup */

static int setup(const struct porter_setup_req *req, size_t len, int *fds, int nfds,
		 const char **why)
{
	int i, err;

	if (len != sizeof(*req) || req->nirqs > PORTER_MAX_DEVICES) {
		*why = "SETUP payload malformed";
		return -EINVAL;
	}
	if (nfds != 1 + 2 * (int)req->nirqs) {
		*why = "SETUP needs the memfd and an eventfd and a resample eventfd per irq";
		return -EINVAL;
	}
	err = ddekit_linux_arena_attach(fds[0], req->mem_size);
	if (err) {
		*why = "the DMA arena could not be attached (size, or mmap of the memfd)";
		return err;
	}
	nirqs = req->nirqs;
	for (i = 0; i < nirqs; i++) {
		irq_lines[i] = req->irq_lines[i];
		err = ddekit_linux_irq_bind(irq_lines[i], fds[1 + 2 * i]);
		if (!err)
			err = ddekit_linux_irq_set_resample(irq_lines[i], fds[2 + 2 * i]);
		if (err) {
			*why = "an interrupt eventfd could not be bound";
			return err;
		}
	}
	ddekit_linux_set_pci_ops(&harness_pci);
	err = portio_trap_install(pio_read, pio_write);
	if (err) {
		*why = "the port-I/O trap could not be installed";
		return err;
	}
	return 0;
}

/* ---------------------------------------------------------------- commands */

/* the fds of the request being served, until the service takes them */
static int msg_fds[PORTER_MSG_MAX_FDS], msg_nfds;

int host_take_fds(int *out, int max)
{
	int n = msg_nfds < max ? msg_nfds : max;

	memcpy(out, msg_fds, n * sizeof(int));
	memmove(msg_fds, msg_fds + n, (msg_nfds - n) * sizeof(int));
	msg_nfds -= n;
	return n;
}

static void close_msg_fds(void)
{
	while (msg_nfds > 0)
		close(msg_fds[--msg_nfds]);
}

/* a service with nothing of its own to wait on */
__attribute__((weak)) int bundle_poll_fds(struct pollfd *fds, int max, long *timeout_us)
{
	(void)fds, (void)max;
	*timeout_us = -1;
	return 0;
}

__attribute__((weak)) void bundle_poll_work(const struct pollfd *fds, int n)
{
	(void)fds, (void)n;
}

/* Wait for the control channel or the service's fds; run the service's work. 1: a control message is there. */
static int wait_for_work(void)
{
	struct pollfd fds[1 + 8];
	struct timespec ts, *tp = NULL;
	long timeout_us;
	int n, r;

	for (;;) {
		fds[0] = (struct pollfd){ .fd = ctl_fd, .events = POLLIN };
		n = bundle_poll_fds(fds + 1, 8, &timeout_us);
		if (timeout_us >= 0) {
			ts.tv_sec = timeout_us / 1000000;
			ts.tv_nsec = (timeout_us % 1000000) * 1000;
			tp = &ts;
		} else
			tp = NULL;
		r = ppoll(fds, 1 + n, tp, NULL);
		if (r < 0 && errno != EINTR)
			return 1;		/* let recv_msg report it */
		bundle_poll_work(fds + 1, n);
		if (r > 0 && fds[0].revents)
			return 1;
	}
}

/* The core's own requests; the bundle's service gets every other type. 1: stop. */
static int serve_one(const struct porter_msg_hdr *h, const uint8_t *buf)
{
	switch (h->type) {
	case PORTER_STATS: {
		struct porter_stats_reply s;

		memset(&s, 0, sizeof(s));
		bundle_stats(&s);
		s.arena_in_use = (uint32_t)ddekit_linux_arena_in_use();
		s.arena_spare = (uint32_t)ddekit_linux_slab_spare_bytes();
		s.portio_traps = (uint32_t)portio_trap_count();
		host_reply(h->seq, 0, &s, sizeof(s));
		return 0;
	}
	case PORTER_SHUTDOWN:
		host_send(PORTER_BYE, h->seq, NULL, 0, NULL, 0);
		return 1;
	default:
		if (!bundle_serve(h, buf))
			host_error(h->seq, "unknown message type on the control channel");
		return 0;
	}
}

static int arg_fd(int argc, char **argv, const char *name, int dflt)
{
	int i;

	for (i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return atoi(argv[i + 1]);
	return dflt;
}

int main(int argc, char **argv)
{
	static uint8_t buf[PORTER_MSG_MAX];
	struct porter_msg_hdr h;
	struct porter_ready_msg ready;
	const char *why;
	int fds[PORTER_MSG_MAX_FDS], nfds, r, err, i;

	ctl_fd = arg_fd(argc, argv, "--ctl-fd", 3);
	io_fd = arg_fd(argc, argv, "--io-fd", 4);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* SETUP first: nothing of the DDE may run before its memory exists */
	for (;;) {
		r = recv_msg(ctl_fd, &h, buf, sizeof(buf), fds, PORTER_MSG_MAX_FDS, &nfds, &why);
		if (r <= 0)
			die_harness_gone("control");
		if (!why && h.type == PORTER_SETUP)
			break;
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		host_error(h.seq, why ? why : "expected SETUP first");
	}
	err = setup((const struct porter_setup_req *)buf, h.len, fds, nfds, &why);
	if (err) {
		host_error(h.seq, why);
		fprintf(stderr, "driver-host: setup failed: %s\n", why);
		return PORTER_EXIT_BAD_SETUP;
	}
	host_reply(h.seq, 0, NULL, 0);

	host_dde_start(getenv("PORTER_NO_CPUMASK_FIX") == NULL);

	memset(&ready, 0, sizeof(ready));
	ready.ndevs = bundle_list_devices(ready.ifnames, PORTER_MAX_DEVICES);
	io_sync();
	host_send(PORTER_READY, 0, &ready, sizeof(ready), NULL, 0);

	/* The main thread is the DDE process the initcalls ran in: commands, and the
	 * service's own work (frames from a ring), run here. */
	for (;;) {
		wait_for_work();
		r = recv_msg(ctl_fd, &h, buf, sizeof(buf), msg_fds, PORTER_MSG_MAX_FDS, &msg_nfds, &why);
		if (r == 0)
			die_harness_gone("control");
		if (r < 0) {
			fprintf(stderr, "driver-host: control channel: %s\n", strerror(-r));
			return PORTER_EXIT_HARNESS_GONE;
		}
		if (why) {
			close_msg_fds();
			host_error(h.seq, why);
			continue;
		}
		r = serve_one(&h, buf);
		close_msg_fds();
		if (r)
			break;
	}
	fflush(stdout);
	return 0;
}
