/* porter/hw_random_buffer.h - the driver fills a buffer through read() (the 2.6.33 hw_random API). */
#ifndef PORTER_HW_RANDOM_BUFFER_H
#define PORTER_HW_RANDOM_BUFFER_H

#include <porter/hw_random.h>

/*
 * Why: this tree's driver fills struct hwrng's read(), handing the buffer
 * it is given to the device (sg_init_one), so porter_hw_random_buffer.c is
 * the porter_hwrng_pull() the core calls, with kmalloc'd memory.  Nothing
 * here for the driver itself: its including this header is how the plan
 * chose that source (rule hwrng-buffer-read).
 */

#endif /* PORTER_HW_RANDOM_BUFFER_H */
