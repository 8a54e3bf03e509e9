/* interrupt.c -- DDEKit interrupts: one thread per line waits on the line's eventfd and runs its handlers */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <ddekit/interrupt.h>
#include <ddekit/panic.h>
#include <ddekit/thread.h>

#include "ddekit_linux.h"
#include "internal.h"

#define NR_LINES   256
#define MAX_SHARERS 8

/*
 * On the Hurd an interrupt thread receives Mach notifications from the
 * kernel; here the device (QEMU or the harness's model) writes the line's
 * eventfd.  Several writes before the thread reads count as one interrupt,
 * which is what a level-triggered INTx line looks like to its handler.
 *
 * DDEKit attaches one handler per line and the DDE multiplexes its
 * request_irq() actions on top.  Attaching again to an attached line works
 * only when both attachments said shared; all handlers of a line run on its
 * one thread, in attach order, and ddekit_interrupt_detach (which has no
 * handle to tell sharers apart) releases the whole line.
 */
struct sharer {
	void (*thread_init)(void *);
	void (*handler)(void *);
	void *priv;
	int initialised;               /* thread_init has run on the line's thread */
};

static struct line {
	pthread_mutex_t lock;
	pthread_cond_t changed;        /* enable, handler finished, init done, exit */
	int eventfd;                   /* from ddekit_linux_irq_bind, -1 unbound */
	int resamplefd;                /* written after the handlers ran (end of interrupt), -1 none */
	int wakefd;                    /* our eventfd to wake the thread out of poll */
	int attached, shared, exiting;
	int alive;                     /* a line thread exists (it may outlive a detach) */
	int depth;                     /* ddekit_interrupt_disable nesting */
	int running;                   /* handlers are executing right now */
	int nsharers;
	struct sharer sharers[MAX_SHARERS];
	ddekit_thread_t *thread;
} lines[NR_LINES] = {
	[0 ... NR_LINES - 1] = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.changed = PTHREAD_COND_INITIALIZER,
		.eventfd = -1,
		.resamplefd = -1,
		.wakefd = -1,
	},
};

static struct line *line_of(int irq, const char *who)
{
	if (irq < 0 || irq >= NR_LINES) {
		dkl_warn("%s: irq %d out of range 0..%d", who, irq, NR_LINES - 1);
		return NULL;
	}
	return &lines[irq];
}

int ddekit_linux_irq_bind(int irq, int eventfd)
{
	struct line *line = line_of(irq, __func__);
	int ret = 0;

	if (!line)
		return -EINVAL;
	if (eventfd >= 0 && fcntl(eventfd, F_GETFD) < 0)
		return -EBADF;
	pthread_mutex_lock(&line->lock);
	if (line->attached)
		ret = -EBUSY;
	else
		line->eventfd = eventfd < 0 ? -1 : eventfd;
	pthread_mutex_unlock(&line->lock);
	return ret;
}

int ddekit_linux_irq_set_resample(int irq, int resamplefd)
{
	struct line *line = line_of(irq, __func__);

	if (!line)
		return -EINVAL;
	if (resamplefd >= 0 && fcntl(resamplefd, F_GETFD) < 0)
		return -EBADF;
	pthread_mutex_lock(&line->lock);
	line->resamplefd = resamplefd < 0 ? -1 : resamplefd;
	pthread_mutex_unlock(&line->lock);
	return 0;
}

/*
 * End of interrupt for a level-triggered line: the handlers have run (and,
 * for virtio, read the ISR, lowering the line); the device side checks the
 * level again and raises the eventfd anew if it is still high.
 */
static void end_of_interrupt(struct line *line)
{
	uint64_t one = 1;

	if (line->resamplefd >= 0 && write(line->resamplefd, &one, sizeof(one)) < 0) {
		/* counter saturated: a resample is pending anyway */
	}
}

/* Run thread_init of sharers that have not had it, on this (the line's)
 * thread.  Called and returns with the lock held. */
static void init_sharers(struct line *line)
{
	int i;

	for (i = 0; i < line->nsharers; i++) {
		struct sharer *s = &line->sharers[i];

		if (s->initialised)
			continue;
		if (s->thread_init) {
			pthread_mutex_unlock(&line->lock);
			s->thread_init(s->priv);
			pthread_mutex_lock(&line->lock);
		}
		s->initialised = 1;
		pthread_cond_broadcast(&line->changed);
	}
}

/* Consume the pending count (any number of writes: one interrupt).  A
 * failing read is left to the next poll, which reports a broken fd. */
static void drain(int fd)
{
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0) {
		/* EAGAIN/EINTR: nothing to consume now */
	}
}

/* Runs the handlers once the line is enabled.  Lock held on entry and exit. */
static void deliver(struct line *line)
{
	struct sharer run[MAX_SHARERS];
	int i, n;

	while (line->depth > 0 && !line->exiting) {
		pthread_cond_wait(&line->changed, &line->lock);
		init_sharers(line);
	}
	if (line->exiting)
		return;
	n = line->nsharers;
	memcpy(run, line->sharers, sizeof(run[0]) * (size_t)n);
	line->running = 1;
	pthread_mutex_unlock(&line->lock);
	for (i = 0; i < n; i++)
		run[i].handler(run[i].priv);
	pthread_mutex_lock(&line->lock);
	line->running = 0;
	pthread_cond_broadcast(&line->changed);
}

static void line_thread(void *arg)
{
	struct line *line = arg;
	int irq = (int)(line - lines);
	int wakefd;

	pthread_mutex_lock(&line->lock);
	/* The wake fd is this thread's: after a detach from a handler a new
	 * attach may create the next one while this thread is still leaving. */
	wakefd = line->wakefd;
	init_sharers(line);
	while (!line->exiting) {
		struct pollfd fds[2] = {
			{ .fd = line->eventfd, .events = POLLIN },
			{ .fd = wakefd, .events = POLLIN },
		};

		pthread_mutex_unlock(&line->lock);
		if (poll(fds, 2, -1) < 0) {
			if (errno != EINTR)
				dkl_host_setup_error("irq %d: poll failed: %s", irq, strerror(errno));
			pthread_mutex_lock(&line->lock);
			continue;
		}
		if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			dkl_host_setup_error("irq %d: its eventfd %d is no longer usable "
			                     "(closed by the driver host?)", irq, fds[0].fd);
		if (fds[1].revents & POLLIN)
			drain(wakefd);
		if (fds[0].revents & POLLIN)
			drain(line->eventfd);
		pthread_mutex_lock(&line->lock);
		init_sharers(line);
		if ((fds[0].revents & POLLIN) && !line->exiting) {
			deliver(line);
			end_of_interrupt(line);
		}
	}
	line->alive = 0;
	pthread_cond_broadcast(&line->changed);
	pthread_mutex_unlock(&line->lock);
	close(wakefd);
}

static void wake(struct line *line)
{
	uint64_t one = 1;

	if (write(line->wakefd, &one, sizeof(one)) < 0) {
		/* counter saturated: the thread is awake anyway */
	}
	pthread_cond_broadcast(&line->changed);
}

/* Named as by the Hurd's libddekit: "irq" and two hex digits (irq0B). */
static char *line_name(int irq)
{
	return dkl_format("irq%02X", (unsigned)irq);
}

ddekit_thread_t *ddekit_interrupt_attach(int irq, int shared,
                                         void (*thread_init)(void *),
                                         void (*handler)(void *), void *priv)
{
	struct line *line = line_of(irq, __func__);
	struct sharer *s;
	ddekit_thread_t *thread = NULL;
	char *name;

	if (!line || !handler)
		return NULL;
	pthread_mutex_lock(&line->lock);
	if (line->eventfd < 0) {
		dkl_warn("irq %d has no eventfd: the driver host must call "
		         "ddekit_linux_irq_bind() before the driver requests it", irq);
		goto out;
	}
	if (line->attached && !(shared && line->shared && line->nsharers < MAX_SHARERS))
		goto out;    /* busy, as on the Hurd */

	s = &line->sharers[line->nsharers];
	*s = (struct sharer){ thread_init, handler, priv, 0 };
	if (line->attached) {
		line->nsharers++;
		wake(line);
	} else {
		/* the thread of a line detached from its own handler may still be leaving */
		while (line->alive)
			pthread_cond_wait(&line->changed, &line->lock);
		line->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (line->wakefd < 0) {
			dkl_warn("irq %d: eventfd: %s", irq, strerror(errno));
			goto out;
		}
		line->nsharers = 1;
		line->shared = shared;
		line->depth = 0;
		line->running = line->exiting = 0;
		name = line_name(irq);
		line->thread = ddekit_thread_create(line_thread, line, name);
		free(name);
		if (!line->thread) {
			close(line->wakefd);
			line->wakefd = -1;
			line->nsharers = 0;
			goto out;
		}
		line->attached = 1;
		line->alive = 1;
	}
	/* thread_init runs on the line's thread before attach returns, as on the Hurd */
	while (!s->initialised)
		pthread_cond_wait(&line->changed, &line->lock);
	thread = line->thread;
out:
	pthread_mutex_unlock(&line->lock);
	return thread;
}

void ddekit_interrupt_detach(int irq)
{
	struct line *line = line_of(irq, __func__);
	int from_handler;

	if (!line)
		return;
	pthread_mutex_lock(&line->lock);
	if (!line->attached) {
		pthread_mutex_unlock(&line->lock);
		return;
	}
	if (line->nsharers > 1)
		dkl_warn("ddekit_interrupt_detach(%d) releases all %d shared handlers", irq, line->nsharers);
	line->exiting = 1;
	wake(line);
	/* A handler detaching its own line cannot wait for its thread to end;
	 * the thread leaves as soon as the handler returns. */
	from_handler = ddekit_thread_myself() == line->thread;
	while (!from_handler && line->alive)
		pthread_cond_wait(&line->changed, &line->lock);
	line->wakefd = -1;    /* the thread closes it */
	line->attached = 0;
	line->nsharers = 0;
	line->thread = NULL;
	pthread_mutex_unlock(&line->lock);
}

/*
 * The DDE's disable_irq relies on DDEKit waiting for a handler that is
 * running right now (lib/src/arch/l4/irq.c says so); from the handler
 * itself that wait would never end, so there it only counts.
 */
void ddekit_interrupt_disable(int irq)
{
	struct line *line = line_of(irq, __func__);

	if (!line)
		return;
	pthread_mutex_lock(&line->lock);
	line->depth++;
	if (line->attached && ddekit_thread_myself() != line->thread)
		while (line->running)
			pthread_cond_wait(&line->changed, &line->lock);
	pthread_mutex_unlock(&line->lock);
}

void ddekit_interrupt_enable(int irq)
{
	struct line *line = line_of(irq, __func__);

	if (!line)
		return;
	pthread_mutex_lock(&line->lock);
	if (line->depth > 0) {
		if (--line->depth == 0)
			pthread_cond_broadcast(&line->changed);
	} else {
		dkl_warn("unbalanced ddekit_interrupt_enable(%d)", irq);
	}
	pthread_mutex_unlock(&line->lock);
}
