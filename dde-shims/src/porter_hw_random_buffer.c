/* porter_hw_random_buffer.c - porter_hwrng_pull() for drivers that fill a buffer through read() (see porter/hw_random_buffer.h). */
#include <linux/kernel.h>
#include <porter/hw_random_buffer.h>

/*
 * buf is the core's kmalloc'd pull buffer: virtio-rng gives it to the
 * device as it is (sg_init_one), and on the DDE only kmalloc'd memory has
 * a physical address.  Waiting (wait = true) keeps the buffer the
 * driver's until the device has filled it, so the core never reuses it
 * early; the driver returns how many bytes the device said it wrote.
 */
long porter_hwrng_pull(struct hwrng *rng, u8 *buf, size_t max)
{
	return rng->read(rng, buf, max, true);
}
