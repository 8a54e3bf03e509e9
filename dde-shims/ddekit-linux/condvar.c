/* condvar.c -- DDEKit condition variables on pthread condvars, waiting with a DDEKit lock */
#include <errno.h>
#include <stdlib.h>

#include <ddekit/condvar.h>
#include <ddekit/panic.h>

#include "internal.h"

struct ddekit_condvar {
	pthread_cond_t cond;
};

ddekit_condvar_t *ddekit_condvar_init(void)
{
	ddekit_condvar_t *cv = malloc(sizeof(*cv));

	if (!cv)
		return NULL;
	dkl_cond_init_monotonic(&cv->cond);
	return cv;
}

void ddekit_condvar_deinit(ddekit_condvar_t *cv)
{
	pthread_cond_destroy(&cv->cond);
	free(cv);
}

/*
 * The lock's mutex is taken before its held flag is dropped and kept until
 * pthread_cond_wait releases it, so a signaller (who must first take the
 * DDEKit lock, and so that mutex) cannot slip in between: no lost wake-up.
 * One condvar must always be used with the same lock (POSIX's rule for the
 * mutex of a condvar, and the DDE's usage).
 */
static int wait_until(ddekit_condvar_t *cv, ddekit_lock_t *lockp, const struct timespec *deadline)
{
	struct ddekit_lock *lock = *lockp;
	int err = 0;

	pthread_mutex_lock(&lock->mutex);
	if (!lock->held) {
		pthread_mutex_unlock(&lock->mutex);
		ddekit_panic("ddekit-linux: condvar wait without holding its lock");
	}
	dkl_lock_release_mutex_held(lock);
	if (deadline)
		err = pthread_cond_timedwait(&cv->cond, &lock->mutex, deadline);
	else
		pthread_cond_wait(&cv->cond, &lock->mutex);
	dkl_lock_take_mutex_held(lock);
	pthread_mutex_unlock(&lock->mutex);
	return err == ETIMEDOUT;
}

void ddekit_condvar_wait(ddekit_condvar_t *cv, ddekit_lock_t *lockp)
{
	wait_until(cv, lockp, NULL);
}

/* 0 when signalled, 1 when timo milliseconds passed first. */
int ddekit_condvar_wait_timed(ddekit_condvar_t *cv, ddekit_lock_t *lockp, int timo)
{
	struct timespec deadline;

	dkl_deadline_after_ms(&deadline, timo < 0 ? 0 : timo);
	return wait_until(cv, lockp, &deadline);
}

void ddekit_condvar_signal(ddekit_condvar_t *cv)
{
	pthread_cond_signal(&cv->cond);
}

void ddekit_condvar_broadcast(ddekit_condvar_t *cv)
{
	pthread_cond_broadcast(&cv->cond);
}
