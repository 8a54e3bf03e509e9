/* lock.c -- DDEKit locks: a held flag under a pthread mutex, releasable from any thread */
#include <stdlib.h>

#include <ddekit/lock.h>
#include <ddekit/panic.h>
#include <ddekit/thread.h>

#include "internal.h"

void _ddekit_lock_init(struct ddekit_lock **mtx)
{
	struct ddekit_lock *lock = malloc(sizeof(*lock));

	if (!lock)
		ddekit_panic("ddekit-linux: no memory for a lock");
	pthread_mutex_init(&lock->mutex, NULL);
	pthread_cond_init(&lock->released, NULL);
	lock->held = 0;
	lock->owner = NULL;
	*mtx = lock;
}

void _ddekit_lock_deinit(struct ddekit_lock **mtx)
{
	struct ddekit_lock *lock = *mtx;

	pthread_cond_destroy(&lock->released);
	pthread_mutex_destroy(&lock->mutex);
	free(lock);
	*mtx = NULL;
}

void dkl_lock_take_mutex_held(struct ddekit_lock *lock)
{
	while (lock->held)
		pthread_cond_wait(&lock->released, &lock->mutex);
	lock->held = 1;
	lock->owner = ddekit_thread_myself();
}

void dkl_lock_release_mutex_held(struct ddekit_lock *lock)
{
	lock->held = 0;
	lock->owner = NULL;
	pthread_cond_signal(&lock->released);
}

void _ddekit_lock_lock(struct ddekit_lock **mtx)
{
	struct ddekit_lock *lock = *mtx;

	pthread_mutex_lock(&lock->mutex);
	dkl_lock_take_mutex_held(lock);
	pthread_mutex_unlock(&lock->mutex);
}

/* 0 when taken, -1 when it would block (the DDEKit convention). */
int _ddekit_lock_try_lock(struct ddekit_lock **mtx)
{
	struct ddekit_lock *lock = *mtx;
	int ret = -1;

	pthread_mutex_lock(&lock->mutex);
	if (!lock->held) {
		lock->held = 1;
		lock->owner = ddekit_thread_myself();
		ret = 0;
	}
	pthread_mutex_unlock(&lock->mutex);
	return ret;
}

void _ddekit_lock_unlock(struct ddekit_lock **mtx)
{
	struct ddekit_lock *lock = *mtx;

	pthread_mutex_lock(&lock->mutex);
	if (!lock->held) {
		pthread_mutex_unlock(&lock->mutex);
		ddekit_panic("ddekit-linux: unlock of a DDEKit lock that is not held (%p)", (void *)lock);
	}
	dkl_lock_release_mutex_held(lock);
	pthread_mutex_unlock(&lock->mutex);
}

/*
 * The DDE's spin_is_locked() tests this for != 0, so it is the holder's
 * ddekit_thread_t (a pointer fits an int on i386, as on the Hurd) and 0
 * when free.
 */
int _ddekit_lock_owner(struct ddekit_lock **mtx)
{
	struct ddekit_lock *lock = *mtx;
	ddekit_thread_t *owner;

	pthread_mutex_lock(&lock->mutex);
	owner = lock->held ? lock->owner : NULL;
	pthread_mutex_unlock(&lock->mutex);
	return (int)(intptr_t)owner;
}
