/* internal.h -- what the ddekit-linux sources share among themselves (not seen by the DDE or the host) */
#ifndef DDEKIT_LINUX_INTERNAL_H
#define DDEKIT_LINUX_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <ddekit/thread.h>
#include <ddekit/types.h>

#include "ddekit_linux.h"

#define DKL_PAGE_SIZE  DDEKIT_LINUX_PAGE_SIZE
#define DKL_PAGE_SHIFT 12

#define DKL_HIDDEN __attribute__((visibility("hidden")))

/*
 * Formatting.  libdde_linux26 defines snprintf, vsnprintf, sprintf, sscanf,
 * ... itself, with kernel semantics, and is linked into the same executable:
 * host code that called them would bind to the kernel's.  So everything here
 * formats through vasprintf (libc only) and prints with fputs/write.
 */
char *dkl_format(const char *fmt, ...) DKL_HIDDEN __attribute__((format(printf, 1, 2)));
void dkl_warn(const char *fmt, ...) DKL_HIDDEN __attribute__((format(printf, 1, 2)));
/* The driver host did not set something up: say what, exit with
 * DDEKIT_LINUX_EXIT_HOST_SETUP. */
void dkl_host_setup_error(const char *fmt, ...) DKL_HIDDEN
	__attribute__((format(printf, 1, 2), noreturn));

/* Time: CLOCK_MONOTONIC everywhere, so that wall-clock steps never fire or
 * stall a timeout. */
void dkl_cond_init_monotonic(pthread_cond_t *cond) DKL_HIDDEN;
void dkl_deadline_after_ms(struct timespec *ts, long ms) DKL_HIDDEN;
/* When tick j begins, as an absolute CLOCK_MONOTONIC time (jiffies.c). */
void dkl_jiffy_start(struct timespec *ts, unsigned long j) DKL_HIDDEN;

/*
 * DDEKit locks (lock.c).  A lock is a "held" flag under a mutex rather than
 * a bare pthread mutex: the DDE releases some locks from a thread other than
 * the one that took them (kernel_thread() hands a locked lock to the new
 * thread), which POSIX leaves undefined for mutexes.
 */
struct ddekit_lock {
	pthread_mutex_t mutex;     /* protects held/owner, never held for long */
	pthread_cond_t released;   /* signalled when held drops to 0 */
	int held;
	ddekit_thread_t *owner;
};
/* For condvar.c: drop / retake a lock whose mutex the caller holds. */
void dkl_lock_release_mutex_held(struct ddekit_lock *lock) DKL_HIDDEN;
void dkl_lock_take_mutex_held(struct ddekit_lock *lock) DKL_HIDDEN;

/*
 * The DMA arena (arena.c): a page allocator over the attached memfd.
 * Sizes are rounded up to pages; align and boundary are powers of two in
 * bytes (0 = none), [low, high] bounds the physical range (inclusive).
 * tag is any pointer the caller wants back from dkl_arena_tag() for
 * addresses inside the allocation (slab chunks use it).
 * Returns NULL when no range fits.  Not attached: host setup error.
 */
void *dkl_arena_alloc(size_t size, size_t align, size_t boundary,
                      ddekit_addr_t low, ddekit_addr_t high,
                      void *tag, ddekit_addr_t *phys) DKL_HIDDEN;
/* virt must be what dkl_arena_alloc returned; returns the bytes released. */
size_t dkl_arena_free(void *virt) DKL_HIDDEN;
/* Is virt the start of an arena allocation? */
int dkl_arena_is_allocation(const void *virt) DKL_HIDDEN;
/* The tag of the allocation holding virt, NULL when virt is not allocated arena memory. */
void *dkl_arena_tag(const void *virt) DKL_HIDDEN;

#endif /* DDEKIT_LINUX_INTERNAL_H */
