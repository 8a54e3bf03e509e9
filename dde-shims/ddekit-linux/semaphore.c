/* semaphore.c -- DDEKit counting semaphores (down, down_try, down_timed, up) */
#include <errno.h>
#include <stdlib.h>

#include <ddekit/semaphore.h>

#include "internal.h"

struct ddekit_sem {
	pthread_mutex_t mutex;
	pthread_cond_t available;
	int value;
};

ddekit_sem_t *ddekit_sem_init(int value)
{
	ddekit_sem_t *sem = malloc(sizeof(*sem));

	if (!sem)
		return NULL;
	pthread_mutex_init(&sem->mutex, NULL);
	dkl_cond_init_monotonic(&sem->available);
	sem->value = value;
	return sem;
}

void ddekit_sem_deinit(ddekit_sem_t *sem)
{
	pthread_cond_destroy(&sem->available);
	pthread_mutex_destroy(&sem->mutex);
	free(sem);
}

void ddekit_sem_down(ddekit_sem_t *sem)
{
	pthread_mutex_lock(&sem->mutex);
	while (sem->value <= 0)
		pthread_cond_wait(&sem->available, &sem->mutex);
	sem->value--;
	pthread_mutex_unlock(&sem->mutex);
}

/* 0 when taken, -1 when it would block. */
int ddekit_sem_down_try(ddekit_sem_t *sem)
{
	int ret = -1;

	pthread_mutex_lock(&sem->mutex);
	if (sem->value > 0) {
		sem->value--;
		ret = 0;
	}
	pthread_mutex_unlock(&sem->mutex);
	return ret;
}

/*
 * 0 when taken, -1 after timo milliseconds.  As in the Hurd's libddekit,
 * timo == 0 waits without a time limit and timo < 0 fails unless the
 * semaphore can be taken at once.
 */
int ddekit_sem_down_timed(ddekit_sem_t *sem, int timo)
{
	struct timespec deadline;
	int err = 0;

	if (timo == 0) {
		ddekit_sem_down(sem);
		return 0;
	}
	dkl_deadline_after_ms(&deadline, timo < 0 ? 0 : timo);
	pthread_mutex_lock(&sem->mutex);
	while (sem->value <= 0 && err != ETIMEDOUT)
		err = pthread_cond_timedwait(&sem->available, &sem->mutex, &deadline);
	if (sem->value > 0) {
		sem->value--;
		err = 0;
	}
	pthread_mutex_unlock(&sem->mutex);
	return err ? -1 : 0;
}

void ddekit_sem_up(ddekit_sem_t *sem)
{
	pthread_mutex_lock(&sem->mutex);
	sem->value++;
	pthread_cond_signal(&sem->available);
	pthread_mutex_unlock(&sem->mutex);
}
