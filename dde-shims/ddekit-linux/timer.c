/* timer.c -- DDEKit timers: one timer thread runs expired callbacks in expiry order */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

#include <ddekit/panic.h>
#include <ddekit/timer.h>

#include "internal.h"

struct timer {
	struct timer *next;
	void (*fn)(void *);
	void *args;
	unsigned long expires;   /* in jiffies */
	int id;
};

static pthread_mutex_t timer_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t timer_wakeup;   /* a timer now expires earlier than the thread waits */
static struct timer *pending;         /* by expiry, FIFO among equal expiries */
static int next_id;
static ddekit_thread_t *timer_thread;
static pthread_once_t timers_once = PTHREAD_ONCE_INIT;

/* Wrap-safe, as Linux's time_after_eq(). */
static int expired(unsigned long expires, unsigned long now)
{
	return (long)(now - expires) >= 0;
}

/*
 * The thread also wakes at every tick even with nothing due, because that
 * keeps the jiffies variable current for the DDE files that read it
 * directly instead of calling fetch_jiffies().
 */
static void timer_loop(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&timer_mutex);
	for (;;) {
		unsigned long now = fetch_jiffies();
		struct timespec next_tick;

		while (pending && expired(pending->expires, now)) {
			struct timer *t = pending;

			pending = t->next;
			/* Unlocked: callbacks add and delete timers themselves. */
			pthread_mutex_unlock(&timer_mutex);
			t->fn(t->args);
			free(t);
			pthread_mutex_lock(&timer_mutex);
			now = fetch_jiffies();
		}
		dkl_jiffy_start(&next_tick, now + 1);
		pthread_cond_timedwait(&timer_wakeup, &timer_mutex, &next_tick);
	}
}

static void start_timer_thread(void)
{
	dkl_cond_init_monotonic(&timer_wakeup);
	fetch_jiffies();
	timer_thread = ddekit_thread_create(timer_loop, NULL, "ddekit_timer");
	if (!timer_thread)
		ddekit_panic("ddekit-linux: cannot start the timer thread");
}

void ddekit_init_timers(void)
{
	pthread_once(&timers_once, start_timer_thread);
}

ddekit_thread_t *ddekit_get_timer_thread(void)
{
	ddekit_init_timers();
	return timer_thread;
}

/* timeout is absolute, in jiffies.  Returns the timer's id (>= 0). */
int ddekit_add_timer(void (*fn)(void *), void *args, unsigned long timeout)
{
	struct timer *t = malloc(sizeof(*t));
	struct timer **link;

	if (!t)
		return -1;
	t->fn = fn;
	t->args = args;
	t->expires = timeout;
	ddekit_init_timers();

	pthread_mutex_lock(&timer_mutex);
	t->id = next_id;
	next_id = next_id == INT_MAX ? 0 : next_id + 1;
	for (link = &pending; *link && (long)((*link)->expires - timeout) <= 0; link = &(*link)->next)
		;
	t->next = *link;
	*link = t;
	if (link == &pending)
		pthread_cond_signal(&timer_wakeup);
	pthread_mutex_unlock(&timer_mutex);
	return t->id;
}

/* Returns the id when the timer was pending (and is now cancelled), -1 when
 * it had already fired or never existed; the DDE's del_timer() tests >= 0. */
int ddekit_del_timer(int timer)
{
	struct timer **link, *t = NULL;

	pthread_mutex_lock(&timer_mutex);
	for (link = &pending; *link; link = &(*link)->next) {
		if ((*link)->id == timer) {
			t = *link;
			*link = t->next;
			break;
		}
	}
	pthread_mutex_unlock(&timer_mutex);
	if (!t)
		return -1;
	free(t);
	return timer;
}

/* 1 while the timer waits to fire; 0 once it runs, ran, or was deleted. */
int ddekit_timer_pending(int timer)
{
	struct timer *t;
	int found = 0;

	pthread_mutex_lock(&timer_mutex);
	for (t = pending; t && !found; t = t->next)
		found = t->id == timer;
	pthread_mutex_unlock(&timer_mutex);
	return found;
}
