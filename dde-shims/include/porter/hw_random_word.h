/* porter/hw_random_word.h - the driver hands out data_read() words (the 2.6.29 hw_random API). */
#ifndef PORTER_HW_RANDOM_WORD_H
#define PORTER_HW_RANDOM_WORD_H

#include <porter/hw_random.h>

/*
 * Why: this tree's driver fills struct hwrng's data_present()/data_read(),
 * so porter_hw_random_word.c is the porter_hwrng_pull() the core calls.
 * Nothing here for the driver itself: its including this header is how the
 * plan chose that source (rule hwrng-word-read).
 */

#endif /* PORTER_HW_RANDOM_WORD_H */
