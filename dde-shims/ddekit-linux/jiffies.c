/* jiffies.c -- the DDE's clock: jiffies and HZ (declared extern by the DDE, defined here) and fetch_jiffies */
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <ddekit/timer.h>

#include "ddekit_linux.h"
#include "internal.h"

/* <ddekit/timer.h> turns both into expressions; here they are the objects. */
#undef jiffies
#undef HZ

/*
 * Files compiled without <ddekit/timer.h> (net/core/link_watch.c,
 * neighbour.c, ... in libdde_linux26) read the variables themselves:
 * asm-x86/param.h declares "extern unsigned long HZ" and linux/jiffies.h
 * "extern unsigned long volatile jiffies".  Nothing in the DDE defines them.
 * jiffies is kept current by fetch_jiffies() and by the timer thread, which
 * wakes every tick.
 */
unsigned long HZ = DDEKIT_LINUX_HZ;
volatile unsigned long jiffies;

static struct timespec boot;   /* jiffies 0, as the Hurd counts from ddekit start */
static pthread_once_t boot_once = PTHREAD_ONCE_INIT;

static void take_boot_time(void)
{
	clock_gettime(CLOCK_MONOTONIC, &boot);
}

static uint64_t ns_since_boot(void)
{
	struct timespec now;

	pthread_once(&boot_once, take_boot_time);
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - boot.tv_sec) * 1000000000u
	       + (uint64_t)now.tv_nsec - (uint64_t)boot.tv_nsec;
}

#define NS_PER_JIFFY (1000000000u / DDEKIT_LINUX_HZ)

unsigned long fetch_jiffies(void)
{
	unsigned long now = (unsigned long)(ns_since_boot() / NS_PER_JIFFY);
	unsigned long seen = __atomic_load_n(&jiffies, __ATOMIC_RELAXED);

	/* Publish without ever moving the variable backwards when two threads
	 * race (wrap-safe comparison, as time_after()). */
	while ((long)(now - seen) > 0
	       && !__atomic_compare_exchange_n(&jiffies, &seen, now, 0,
	                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return now;
}

void dkl_jiffy_start(struct timespec *ts, unsigned long j)
{
	uint64_t ns;

	pthread_once(&boot_once, take_boot_time);
	ns = (uint64_t)j * NS_PER_JIFFY + (uint64_t)boot.tv_nsec;
	ts->tv_sec = boot.tv_sec + (time_t)(ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

void dkl_cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

void dkl_deadline_after_ms(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}
