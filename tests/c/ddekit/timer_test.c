/* timer_test.c -- jiffies at HZ 100, timers in expiry order, del_timer, re-arming from a callback */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <ddekit/thread.h>
#include <ddekit/timer.h>

#include "ddekit_linux.h"
#include "check.h"

/* <ddekit/timer.h> makes these expressions; the DDE's other files use the
 * variables, which ddekit-linux defines. */
#undef jiffies
#undef HZ
extern volatile unsigned long jiffies;
extern unsigned long HZ;

static pthread_mutex_t fired_lock = PTHREAD_MUTEX_INITIALIZER;
static int fired_tag[16];
static unsigned long fired_at[16];
static ddekit_thread_t *fired_on[16];
static int nfired;

static void record(void *arg)
{
	pthread_mutex_lock(&fired_lock);
	fired_tag[nfired] = (int)(intptr_t)arg;
	fired_at[nfired] = fetch_jiffies();
	fired_on[nfired] = ddekit_thread_myself();
	nfired++;
	pthread_mutex_unlock(&fired_lock);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_expiry_order(void)
{
	unsigned long j0 = fetch_jiffies();
	/* tag = expiry offset; 11 expires with 10 and was added after it */
	int id30 = ddekit_add_timer(record, (void *)30, j0 + 30);
	int id10 = ddekit_add_timer(record, (void *)10, j0 + 10);
	int id20 = ddekit_add_timer(record, (void *)20, j0 + 20);
	int id15 = ddekit_add_timer(record, (void *)15, j0 + 15);
	int id11 = ddekit_add_timer(record, (void *)11, j0 + 10);
	int idpast = ddekit_add_timer(record, (void *)-5, j0 - 5);
	const int expect[] = { -5, 10, 11, 20, 30 };
	int i;

	CHECK(id30 >= 0 && id10 >= 0 && id20 >= 0 && id15 >= 0 && id11 >= 0 && idpast >= 0);
	CHECK(ddekit_timer_pending(id15));
	CHECK_EQ(ddekit_del_timer(id15), id15);           /* cancelled: never fires */
	CHECK(!ddekit_timer_pending(id15));
	CHECK_EQ(ddekit_del_timer(id15), -1);
	CHECK(ddekit_timer_pending(id30));

	ddekit_thread_msleep(600);
	pthread_mutex_lock(&fired_lock);
	CHECK_EQ(nfired, 5);
	for (i = 0; i < 5; i++) {
		CHECK_EQ(fired_tag[i], expect[i]);
		/* never early */
		CHECK((long)(fired_at[i] - (j0 + (unsigned long)(expect[i] == 11 ? 10 : expect[i]))) >= 0);
		CHECK(fired_on[i] == ddekit_get_timer_thread());
	}
	pthread_mutex_unlock(&fired_lock);
	CHECK(!ddekit_timer_pending(id30));
	CHECK_EQ(ddekit_del_timer(id30), -1);                 /* already fired */
	CHECK(strcmp(ddekit_thread_get_name(ddekit_get_timer_thread()), "ddekit_timer") == 0);
	PASS("expiry_order");
}

static int rearmed;

/* Adds its own next expiry from inside the timer thread, as mod_timer in a
 * Linux timer function does: the timer lock must not be held here. */
static void rearm(void *arg)
{
	(void)arg;
	if (++rearmed < 3)
		ddekit_add_timer(rearm, NULL, fetch_jiffies() + 2);
}

static void test_rearm_from_callback(void)
{
	ddekit_add_timer(rearm, NULL, fetch_jiffies() + 1);
	ddekit_thread_msleep(300);
	CHECK_EQ(rearmed, 3);
	PASS("rearm_from_callback");
}

/* ~100 jiffies per second, measured against CLOCK_MONOTONIC. */
static void test_rate(void)
{
	double t0 = now_ms(), t1;
	unsigned long j0 = fetch_jiffies(), j1, var0, var1;
	double rate;

	ddekit_thread_msleep(1000);
	j1 = fetch_jiffies();
	t1 = now_ms();
	rate = (double)(j1 - j0) * 1000.0 / (t1 - t0);
	printf("jiffies per second: %.1f\n", rate);
	CHECK(rate >= 90.0 && rate <= 110.0);
	CHECK_EQ(HZ, 100);

	/* Nobody calls fetch_jiffies() while we sleep: the timer thread alone
	 * must move the variable. */
	t0 = now_ms();
	var0 = jiffies;
	ddekit_thread_msleep(300);
	var1 = jiffies;
	t1 = now_ms();
	printf("jiffies variable advanced by %lu in %.0f ms\n", var1 - var0, t1 - t0);
	CHECK(var1 - var0 >= 20);
	CHECK((double)(var1 - var0) >= (t1 - t0) / 10.0 - 3.0);
	CHECK((double)(var1 - var0) <= (t1 - t0) / 10.0 + 3.0);
	PASS("rate");
}

int main(void)
{
	ddekit_init();
	ddekit_init_timers();
	CHECK(ddekit_get_timer_thread() != NULL);
	test_expiry_order();
	test_rearm_from_callback();
	test_rate();
	return 0;
}
