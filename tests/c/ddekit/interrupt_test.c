/* interrupt_test.c -- eventfd interrupts: handler on the irq thread, disable/enable, detach, sharing */
#define _GNU_SOURCE 1
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <ddekit/interrupt.h>
#include <ddekit/thread.h>

#include "ddekit_linux.h"
#include "check.h"

struct line_state {
	sem_t handled;             /* posted at the end of every handler run */
	sem_t started;             /* posted when a slow handler begins */
	int init_ran;
	pthread_t init_thread, handler_thread;
	ddekit_thread_t *init_self, *handler_self;
	char handler_comm[16];
	int count;
	int slow;                  /* handler sleeps 200 ms */
	volatile int slow_done;
	int eoi_seen_in_handler;   /* the resample fd was written before the handler ended */
};

static int resample_fd = -1;

static int wait_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static void line_init(void *priv)
{
	struct line_state *st = priv;

	st->init_thread = pthread_self();
	st->init_self = ddekit_thread_myself();
	st->init_ran = 1;
}

static void line_handler(void *priv)
{
	struct line_state *st = priv;

	st->handler_thread = pthread_self();
	st->handler_self = ddekit_thread_myself();
	pthread_getname_np(pthread_self(), st->handler_comm, sizeof(st->handler_comm));
	if (st->slow) {
		sem_post(&st->started);
		usleep(200000);
		st->slow_done = 1;
	}
	if (resample_fd >= 0 && wait_readable(resample_fd, 0))
		st->eoi_seen_in_handler = 1;
	__atomic_add_fetch(&st->count, 1, __ATOMIC_SEQ_CST);
	sem_post(&st->handled);
}

static void state_init(struct line_state *st)
{
	memset(st, 0, sizeof(*st));
	sem_init(&st->handled, 0, 0);
	sem_init(&st->started, 0, 0);
}

static int wait_sem(sem_t *sem, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (sem_timedwait(sem, &ts) < 0)
		if (errno != EINTR)
			return 0;
	return 1;
}

static void raise_line(int efd)
{
	uint64_t one = 1;

	CHECK_EQ(write(efd, &one, sizeof(one)), sizeof(one));
}

static int count_of(struct line_state *st)
{
	return __atomic_load_n(&st->count, __ATOMIC_SEQ_CST);
}

int main(void)
{
	static struct line_state st, sa, sb, sc;
	pthread_t main_thread = pthread_self();
	int efd = eventfd(0, EFD_CLOEXEC), efd12 = eventfd(0, EFD_CLOEXEC), efd13 = eventfd(0, EFD_CLOEXEC);
	ddekit_thread_t *t, *t2, *a, *b;

	ddekit_init();
	CHECK(efd >= 0 && efd12 >= 0 && efd13 >= 0);
	state_init(&st);
	state_init(&sa);
	state_init(&sb);
	state_init(&sc);

	/* binding */
	CHECK(ddekit_interrupt_attach(11, 0, line_init, line_handler, &st) == NULL);   /* no eventfd yet */
	CHECK_EQ(ddekit_linux_irq_bind(256, efd), -EINVAL);
	CHECK_EQ(ddekit_linux_irq_bind(-1, efd), -EINVAL);
	CHECK_EQ(ddekit_linux_irq_bind(11, 1000), -EBADF);
	CHECK_EQ(ddekit_linux_irq_bind(11, efd), 0);
	PASS("bind");

	/* attach: thread_init has run, on the interrupt thread, before attach returns */
	t = ddekit_interrupt_attach(11, 0, line_init, line_handler, &st);
	CHECK(t != NULL);
	CHECK(st.init_ran);
	CHECK(!pthread_equal(st.init_thread, main_thread));
	CHECK(st.init_self == t);
	CHECK(strcmp(ddekit_thread_get_name(t), "irq0B") == 0);
	CHECK_EQ(ddekit_linux_irq_bind(11, efd), -EBUSY);
	CHECK(ddekit_interrupt_attach(11, 0, line_init, line_handler, &sc) == NULL);   /* busy */
	PASS("attach");

	/* an eventfd write runs the handler on the interrupt thread */
	raise_line(efd);
	CHECK(wait_sem(&st.handled, 2000));
	CHECK_EQ(count_of(&st), 1);
	CHECK(!pthread_equal(st.handler_thread, main_thread));
	CHECK(pthread_equal(st.handler_thread, st.init_thread));
	CHECK(st.handler_self == t);
	CHECK(strcmp(st.handler_comm, "irq0B") == 0);
	PASS("handler_on_irq_thread");

	/* disable holds the interrupt, enable releases it */
	ddekit_interrupt_disable(11);
	raise_line(efd);
	CHECK(!wait_sem(&st.handled, 300));
	CHECK_EQ(count_of(&st), 1);
	ddekit_interrupt_enable(11);
	CHECK(wait_sem(&st.handled, 2000));
	CHECK_EQ(count_of(&st), 2);

	ddekit_interrupt_disable(11);           /* nested: released by the last enable */
	ddekit_interrupt_disable(11);
	raise_line(efd);
	ddekit_interrupt_enable(11);
	CHECK(!wait_sem(&st.handled, 300));
	ddekit_interrupt_enable(11);
	CHECK(wait_sem(&st.handled, 2000));
	CHECK_EQ(count_of(&st), 3);
	PASS("disable_enable");

	/* disable waits for a handler that is running */
	st.slow = 1;
	raise_line(efd);
	CHECK(wait_sem(&st.started, 2000));
	ddekit_interrupt_disable(11);
	CHECK(st.slow_done);
	ddekit_interrupt_enable(11);
	CHECK(wait_sem(&st.handled, 2000));
	st.slow = 0;
	CHECK_EQ(count_of(&st), 4);
	PASS("disable_waits_for_handler");

	/* detach: no more handler runs; the line can be attached again, and an
	 * interrupt raised meanwhile is still pending (a level-triggered line) */
	ddekit_interrupt_detach(11);
	raise_line(efd);
	CHECK(!wait_sem(&st.handled, 300));
	CHECK_EQ(count_of(&st), 4);
	t2 = ddekit_interrupt_attach(11, 0, line_init, line_handler, &st);
	CHECK(t2 != NULL && t2 != t);
	CHECK(wait_sem(&st.handled, 2000));
	CHECK_EQ(count_of(&st), 5);
	raise_line(efd);
	CHECK(wait_sem(&st.handled, 2000));
	CHECK_EQ(count_of(&st), 6);
	CHECK(st.handler_self == t2);
	ddekit_interrupt_detach(11);
	PASS("detach");

	/* sharing: both attachments shared -> one thread, both handlers */
	CHECK_EQ(ddekit_linux_irq_bind(12, efd12), 0);
	a = ddekit_interrupt_attach(12, 1, line_init, line_handler, &sa);
	b = ddekit_interrupt_attach(12, 1, line_init, line_handler, &sb);
	CHECK(a != NULL && b == a);
	CHECK(sb.init_ran && pthread_equal(sa.init_thread, sb.init_thread));
	CHECK(ddekit_interrupt_attach(12, 0, line_init, line_handler, &sc) == NULL);
	raise_line(efd12);
	CHECK(wait_sem(&sa.handled, 2000));
	CHECK(wait_sem(&sb.handled, 2000));
	CHECK(pthread_equal(sa.handler_thread, sb.handler_thread));
	CHECK(strcmp(sb.handler_comm, "irq0C") == 0);
	ddekit_interrupt_detach(12);

	/* a line attached unshared refuses a shared newcomer */
	CHECK_EQ(ddekit_linux_irq_bind(13, efd13), 0);
	CHECK(ddekit_interrupt_attach(13, 0, line_init, line_handler, &sa) != NULL);
	CHECK(ddekit_interrupt_attach(13, 1, line_init, line_handler, &sb) == NULL);
	ddekit_interrupt_detach(13);
	PASS("shared");

	/* a level-triggered line: the end of interrupt goes to the resample fd,
	 * once per interrupt, after the handler has finished */
	{
		int efd14 = eventfd(0, EFD_CLOEXEC), rfd14 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		uint64_t eois;
		int i;

		CHECK(efd14 >= 0 && rfd14 >= 0);
		CHECK_EQ(ddekit_linux_irq_set_resample(14, 1000), -EBADF);
		CHECK_EQ(ddekit_linux_irq_set_resample(256, rfd14), -EINVAL);
		CHECK_EQ(ddekit_linux_irq_bind(14, efd14), 0);
		CHECK_EQ(ddekit_linux_irq_set_resample(14, rfd14), 0);
		resample_fd = rfd14;
		state_init(&sc);
		CHECK(ddekit_interrupt_attach(14, 0, line_init, line_handler, &sc) != NULL);
		for (i = 1; i <= 3; i++) {
			raise_line(efd14);
			CHECK(wait_sem(&sc.handled, 2000));
			CHECK(wait_readable(rfd14, 2000));
			CHECK_EQ(read(rfd14, &eois, sizeof(eois)), sizeof(eois));
			CHECK_EQ(eois, 1);
			CHECK(!sc.eoi_seen_in_handler);
		}
		ddekit_interrupt_detach(14);
		resample_fd = -1;
	}
	PASS("resample");
	return 0;
}
