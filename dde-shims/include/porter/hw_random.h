/* porter/hw_random.h - hwrng_register()/hwrng_unregister() and a read path: the hw_random core the DDE lacks. */
#ifndef PORTER_HW_RANDOM_H
#define PORTER_HW_RANDOM_H

#include <linux/types.h>
#include <linux/hw_random.h>

/*
 * Why: the DDE has hw_random.h but not drivers/char/hw_random/core.c, so
 * nothing defines hwrng_register() and nothing would read a registered rng.
 * Linux's core serves /dev/hwrng (a misc device); a DDE program (the Hurd
 * translator, porter's driver host) calls porter_hwrng_read() instead.
 *
 * One rng at a time (virtio-rng keeps its queue in static variables, so
 * a second device could not work anyway); a second registration fails.
 */
int porter_hwrng_register(struct hwrng *rng);
void porter_hwrng_unregister(struct hwrng *rng);

/*
 * Read up to len bytes into buf (any memory: porter copies), in the order
 * the driver handed them out.  Returns once at least min bytes (1 <= min
 * <= len) arrived or timeout_ms passed (< 0: no limit; 0: only what is
 * there): the bytes read, or -ETIMEDOUT / -EAGAIN (timeout 0) when none
 * came, -ENODEV without an rng, or the driver's error.  Call it from a
 * DDE process (a thread the DDE knows); readers are served one at a time.
 * The first read starts the core's pulling: nothing asks the driver before.
 */
long porter_hwrng_read(void *buf, size_t len, size_t min, long timeout_ms);

/* The registered rng's name, or NULL. */
const char *porter_hwrng_name(void);

struct porter_hwrng_stats {
	unsigned long pulls;		/* calls into the driver */
	unsigned long bytes_pulled;	/* bytes the driver handed out */
	unsigned long bytes_read;	/* bytes porter_hwrng_read() returned */
	unsigned long empty_pulls;	/* the driver handed out nothing */
	unsigned long overruns;		/* the driver claimed more bytes than the buffer holds */
	unsigned long timeouts;		/* reads that ended with nothing */
	unsigned long buffered;		/* bytes pulled, not yet read */
};

void porter_hwrng_get_stats(struct porter_hwrng_stats *stats);

/*
 * Bytes the core asks the driver for at a time (the buffer it lends a
 * read() driver); one page, kmalloc'd.
 */
#define PORTER_HWRNG_PULL_SIZE	4096

/*
 * Defined by porter_hw_random_word.c or porter_hw_random_buffer.c, chosen
 * by the rule that matches the API the driver fills (hwrng-word-read,
 * hwrng-buffer-read): wait for the driver's next bytes and put up to max
 * of them into buf (kmalloc'd).  The bytes it has, or -errno.
 */
long porter_hwrng_pull(struct hwrng *rng, u8 *buf, size_t max);

#endif /* PORTER_HW_RANDOM_H */
