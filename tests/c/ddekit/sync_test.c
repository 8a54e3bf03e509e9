/* sync_test.c -- DDEKit threads, locks, condvars and semaphores on pthreads */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <ddekit/condvar.h>
#include <ddekit/lock.h>
#include <ddekit/semaphore.h>
#include <ddekit/thread.h>

#include "ddekit_linux.h"
#include "check.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- threads ---- */
static ddekit_sem_t *thread_done;
static ddekit_thread_t *seen_self;
static void *seen_data;
static char seen_comm[16];

static void thread_body(void *arg)
{
	seen_self = ddekit_thread_myself();
	ddekit_thread_set_my_data(arg);
	seen_data = ddekit_thread_get_my_data();
	pthread_getname_np(pthread_self(), seen_comm, sizeof(seen_comm));
	ddekit_sem_up(thread_done);
	ddekit_thread_exit();
}

static void test_threads(void)
{
	int token;
	ddekit_thread_t *t, *me = ddekit_thread_myself();
	double t0;

	CHECK(me != NULL);
	CHECK(strcmp(ddekit_thread_get_name(me), "main") == 0);
	thread_done = ddekit_sem_init(0);
	t = ddekit_thread_create(thread_body, &token, ".dde26_worker");
	CHECK(t != NULL && t != me);
	ddekit_sem_down(thread_done);
	CHECK(seen_self == t);
	CHECK(seen_data == &token);
	CHECK(ddekit_thread_get_data(t) == &token);
	CHECK(strcmp(ddekit_thread_get_name(t), ".dde26_worker") == 0);
	CHECK(strcmp(seen_comm, "dde26_worker") == 0);       /* leading '.' dropped for Linux */
	ddekit_thread_set_data(me, &token);
	CHECK(ddekit_thread_get_my_data() == &token);

	t0 = now_ms();
	ddekit_thread_msleep(100);
	CHECK(now_ms() - t0 >= 100);
	t0 = now_ms();
	ddekit_thread_usleep(20000);
	CHECK(now_ms() - t0 >= 20);
	t0 = now_ms();
	ddekit_thread_nsleep(5000000);
	CHECK(now_ms() - t0 >= 5);
	ddekit_yield();
	ddekit_thread_schedule();
	PASS("threads");
}

/* A thread DDEKit did not create is adopted, so it never sees NULL. */
static void *foreign_body(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "harness");
	return ddekit_thread_myself();
}

static void test_foreign_thread(void)
{
	pthread_t p;
	void *self;

	CHECK_EQ(pthread_create(&p, NULL, foreign_body, NULL), 0);
	pthread_join(p, &self);
	CHECK(self != NULL && self != ddekit_thread_myself());
	CHECK(strcmp(ddekit_thread_get_name(self), "harness") == 0);
	PASS("foreign_thread");
}

/* ---- locks ---- */
static ddekit_lock_t handed_over;
static ddekit_sem_t *unlocked;

static void unlock_elsewhere(void *arg)
{
	(void)arg;
	ddekit_lock_unlock(&handed_over);   /* the DDE's kernel_thread() does this */
	ddekit_sem_up(unlocked);
}

/* Mutual exclusion: a read-modify-write with a yield in the middle loses
 * updates unless the lock really excludes. */
static ddekit_lock_t counter_lock;
static int counter;
static ddekit_sem_t *workers_done;
static volatile int blocked_passed;

static void increment(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 2000; i++) {
		int seen;

		ddekit_lock_lock(&counter_lock);
		seen = counter;
		if (i % 16 == 0)
			ddekit_yield();
		counter = seen + 1;
		ddekit_lock_unlock(&counter_lock);
	}
	ddekit_sem_up(workers_done);
}

static void take_blocked(void *arg)
{
	(void)arg;
	ddekit_lock_lock(&counter_lock);
	blocked_passed = 1;
	ddekit_lock_unlock(&counter_lock);
	ddekit_sem_up(workers_done);
}

static void test_lock_contention(void)
{
	int i;

	ddekit_lock_init(&counter_lock);
	workers_done = ddekit_sem_init(0);
	for (i = 0; i < 4; i++)
		ddekit_thread_create(increment, NULL, "increment");
	for (i = 0; i < 4; i++)
		ddekit_sem_down(workers_done);
	CHECK_EQ(counter, 4 * 2000);

	ddekit_lock_lock(&counter_lock);
	ddekit_thread_create(take_blocked, NULL, "blocked");
	ddekit_thread_msleep(100);
	CHECK(!blocked_passed);                     /* still waiting for us */
	ddekit_lock_unlock(&counter_lock);
	ddekit_sem_down(workers_done);
	CHECK(blocked_passed);
	PASS("lock_contention");
}

static void test_locks(void)
{
	ddekit_lock_t lock;

	ddekit_lock_init(&lock);
	CHECK_EQ(ddekit_lock_owner(&lock), 0);
	CHECK_EQ(ddekit_lock_try_lock(&lock), 0);
	CHECK_EQ(ddekit_lock_owner(&lock), (int)(intptr_t)ddekit_thread_myself());
	CHECK(ddekit_lock_try_lock(&lock) != 0);           /* not recursive */
	ddekit_lock_unlock(&lock);
	CHECK_EQ(ddekit_lock_owner(&lock), 0);
	ddekit_lock_lock(&lock);
	ddekit_lock_unlock(&lock);
	ddekit_lock_deinit(&lock);
	CHECK(lock == NULL);

	ddekit_lock_init_locked(&handed_over);
	unlocked = ddekit_sem_init(0);
	ddekit_thread_create(unlock_elsewhere, NULL, "unlocker");
	ddekit_sem_down(unlocked);
	CHECK_EQ(ddekit_lock_try_lock(&handed_over), 0);
	ddekit_lock_unlock(&handed_over);
	PASS("locks");
}

/* ---- condvars ---- */
static ddekit_lock_t cv_lock;
static ddekit_condvar_t *cv;
static int cv_flag;

static void signaller(void *arg)
{
	(void)arg;
	ddekit_thread_msleep(50);
	ddekit_lock_lock(&cv_lock);
	cv_flag = 1;
	ddekit_condvar_signal(cv);
	ddekit_lock_unlock(&cv_lock);
}

static void test_condvars(void)
{
	double t0;
	int timed_out;

	ddekit_lock_init(&cv_lock);
	cv = ddekit_condvar_init();
	CHECK(cv);
	ddekit_lock_lock(&cv_lock);
	ddekit_thread_create(signaller, NULL, "signaller");
	while (!cv_flag)
		ddekit_condvar_wait(cv, &cv_lock);
	/* the lock is held again after the wait */
	CHECK_EQ(ddekit_lock_owner(&cv_lock), (int)(intptr_t)ddekit_thread_myself());

	t0 = now_ms();
	timed_out = ddekit_condvar_wait_timed(cv, &cv_lock, 100);
	CHECK(timed_out != 0);
	CHECK(now_ms() - t0 >= 100);
	CHECK(now_ms() - t0 < 2000);
	CHECK_EQ(ddekit_lock_owner(&cv_lock), (int)(intptr_t)ddekit_thread_myself());

	cv_flag = 0;
	ddekit_thread_create(signaller, NULL, "signaller");
	timed_out = ddekit_condvar_wait_timed(cv, &cv_lock, 5000);
	CHECK(timed_out == 0 && cv_flag);
	ddekit_condvar_broadcast(cv);
	ddekit_lock_unlock(&cv_lock);
	ddekit_condvar_deinit(cv);
	PASS("condvars");
}

/* ---- semaphores ---- */
static ddekit_sem_t *later;

static void up_later(void *arg)
{
	(void)arg;
	ddekit_thread_msleep(50);
	ddekit_sem_up(later);
}

static void test_semaphores(void)
{
	ddekit_sem_t *sem = ddekit_sem_init(2);
	double t0;

	CHECK_EQ(ddekit_sem_down_try(sem), 0);
	ddekit_sem_down(sem);
	CHECK(ddekit_sem_down_try(sem) != 0);
	t0 = now_ms();
	CHECK(ddekit_sem_down_timed(sem, 100) != 0);
	CHECK(now_ms() - t0 >= 100);
	ddekit_sem_up(sem);
	CHECK_EQ(ddekit_sem_down_timed(sem, 100), 0);
	CHECK(ddekit_sem_down_timed(sem, -1) != 0);       /* negative: no waiting */
	ddekit_sem_deinit(sem);

	later = ddekit_sem_init(0);
	ddekit_thread_create(up_later, NULL, "up_later");
	CHECK_EQ(ddekit_sem_down_timed(later, 5000), 0);
	ddekit_thread_create(up_later, NULL, "up_later");
	CHECK_EQ(ddekit_sem_down_timed(later, 0), 0);     /* 0: no time limit, as on the Hurd */
	PASS("semaphores");
}

/* ---- sleep / wakeup ---- */
static ddekit_lock_t sleep_lock;
static ddekit_thread_t *sleeper;
static int woken;

static void wake_sleeper(void *arg)
{
	(void)arg;
	ddekit_thread_msleep(50);
	ddekit_lock_lock(&sleep_lock);
	woken = 1;
	ddekit_thread_wakeup(sleeper);
	ddekit_lock_unlock(&sleep_lock);
}

static void test_sleep_wakeup(void)
{
	ddekit_lock_init(&sleep_lock);
	sleeper = ddekit_thread_myself();
	ddekit_lock_lock(&sleep_lock);
	ddekit_thread_create(wake_sleeper, NULL, "waker");
	while (!woken)
		ddekit_thread_sleep(&sleep_lock);
	ddekit_lock_unlock(&sleep_lock);
	PASS("sleep_wakeup");
}

int main(void)
{
	ddekit_init();
	test_threads();
	test_foreign_thread();
	test_locks();
	test_lock_contention();
	test_condvars();
	test_semaphores();
	test_sleep_wakeup();
	return 0;
}
