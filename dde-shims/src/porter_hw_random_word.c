/* porter_hw_random_word.c - porter_hwrng_pull() for drivers that hand out data_read() words (see porter/hw_random_word.h). */
#include <linux/kernel.h>
#include <linux/string.h>
#include <porter/hw_random_word.h>

/*
 * As Linux 2.6.32's core does: wait on data_present(), then take words for
 * as long as the driver has them without waiting (one device buffer's
 * worth for virtio-rng), so one pull is one round trip to the device.
 * data_read() returns how many low bytes of the word are random.
 */
long porter_hwrng_pull(struct hwrng *rng, u8 *buf, size_t max)
{
	size_t got = 0;
	int wait = 1;
	u32 word;
	int n;

	while (got + sizeof(word) <= max) {
		if (rng->data_present && !rng->data_present(rng, wait))
			break;
		n = rng->data_read(rng, &word);
		if (n < 0)
			return got ? (long)got : n;
		n = min_t(int, n, sizeof(word));
		memcpy(buf + got, &word, n);	/* x86: the low bytes come first */
		got += n;
		wait = 0;
	}
	return got;
}
