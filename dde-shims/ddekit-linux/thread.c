/* thread.c -- DDEKit threads on pthreads: names, per-thread data, sleeps, sleep/wakeup */
#define _GNU_SOURCE 1
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ddekit/condvar.h>
#include <ddekit/panic.h>
#include <ddekit/thread.h>

#include "internal.h"

/* Linux kernel code is frugal with stack, but the host side (vasprintf,
 * backtrace, the port-I/O trap's callbacks) runs on these stacks too. */
#define DKL_THREAD_STACK_SIZE (1024 * 1024)

/*
 * Records are never freed, not even when their thread exits: the DDE keeps
 * ddekit_thread_t pointers in its task structures (and may wake them) after
 * the thread is gone.  A few dozen bytes per exited thread is the price.
 */
struct ddekit_thread {
	char *name;
	void *data;
	ddekit_condvar_t *sleep_cond;   /* ddekit_thread_sleep / _wakeup */
	void (*fun)(void *);
	void *arg;
};

static __thread struct ddekit_thread *self;

/* The kernel keeps 15 characters; a leading '.' (DDE's ".dde26_thread",
 * ".softirqd") hides nothing on Linux, so drop it. */
static void name_pthread(const char *name)
{
	char comm[16];

	if (name[0] == '.' && name[1])
		name++;
	strncpy(comm, name, sizeof(comm) - 1);
	comm[sizeof(comm) - 1] = '\0';
	pthread_setname_np(pthread_self(), comm);
}

static struct ddekit_thread *thread_new(const char *name)
{
	struct ddekit_thread *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->name = strdup(name ? name : "?");
	t->sleep_cond = ddekit_condvar_init();
	if (!t->name || !t->sleep_cond) {
		if (t->sleep_cond)
			ddekit_condvar_deinit(t->sleep_cond);
		free(t->name);
		free(t);
		return NULL;
	}
	return t;
}

ddekit_thread_t *ddekit_thread_setup_myself(const char *name)
{
	struct ddekit_thread *t = thread_new(name);

	if (!t)
		ddekit_panic("ddekit-linux: no memory for thread '%s'", name ? name : "?");
	self = t;
	name_pthread(t->name);
	return t;
}

static void *trampoline(void *arg)
{
	struct ddekit_thread *t = arg;

	self = t;
	name_pthread(t->name);
	t->fun(t->arg);
	return NULL;
}

ddekit_thread_t *ddekit_thread_create(void (*fun)(void *), void *arg, const char *name)
{
	struct ddekit_thread *t = thread_new(name);
	pthread_attr_t attr;
	pthread_t pthread;
	int err;

	if (!t)
		return NULL;
	t->fun = fun;
	t->arg = arg;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, DKL_THREAD_STACK_SIZE);
	err = pthread_create(&pthread, &attr, trampoline, t);
	pthread_attr_destroy(&attr);
	if (err) {
		dkl_warn("cannot create thread '%s': %s", t->name, strerror(err));
		ddekit_condvar_deinit(t->sleep_cond);
		free(t->name);
		free(t);
		return NULL;
	}
	return t;
}

/*
 * A thread DDEKit did not create (the harness's own, say) is adopted on
 * first use, so that lock owners and the DDE's current() never see NULL.
 */
ddekit_thread_t *ddekit_thread_myself(void)
{
	if (!self) {
		char comm[16] = "foreign";

		pthread_getname_np(pthread_self(), comm, sizeof(comm));
		self = thread_new(comm);
		if (!self)
			ddekit_panic("ddekit-linux: no memory to adopt thread '%s'", comm);
	}
	return self;
}

void *ddekit_thread_get_data(ddekit_thread_t *thread)
{
	return thread->data;
}

void *ddekit_thread_get_my_data(void)
{
	return ddekit_thread_myself()->data;
}

void ddekit_thread_set_data(ddekit_thread_t *thread, void *data)
{
	thread->data = data;
}

void ddekit_thread_set_my_data(void *data)
{
	ddekit_thread_myself()->data = data;
}

/* Absolute monotonic deadline, so that signals (the port-I/O trap is one)
 * interrupting the sleep do not stretch it. */
static void sleep_ns(uint64_t ns)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	ns += (uint64_t)deadline.tv_nsec;
	deadline.tv_sec += (time_t)(ns / 1000000000u);
	deadline.tv_nsec = (long)(ns % 1000000000u);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR)
		;
}

void ddekit_thread_msleep(unsigned long msecs)
{
	sleep_ns((uint64_t)msecs * 1000000u);
}

void ddekit_thread_usleep(unsigned long usecs)
{
	sleep_ns((uint64_t)usecs * 1000u);
}

void ddekit_thread_nsleep(unsigned long nsecs)
{
	sleep_ns(nsecs);
}

/* As on the Hurd: a wake-up sent while nobody sleeps is lost; the DDE's
 * scheduler re-checks its state under the lock. */
void ddekit_thread_sleep(ddekit_lock_t *lock)
{
	ddekit_condvar_wait(ddekit_thread_myself()->sleep_cond, lock);
}

void ddekit_thread_wakeup(ddekit_thread_t *thread)
{
	ddekit_condvar_signal(thread->sleep_cond);
}

void ddekit_thread_exit(void)
{
	pthread_exit(NULL);
}

const char *ddekit_thread_get_name(ddekit_thread_t *thread)
{
	return thread ? thread->name : NULL;
}

void ddekit_thread_schedule(void)
{
	sched_yield();
}

void ddekit_yield(void)
{
	sched_yield();
}

void ddekit_init_threads(void)
{
	ddekit_thread_setup_myself("main");
}
