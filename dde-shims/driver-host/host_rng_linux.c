/* host_rng_linux.c - the driver host's Linux side for virtio-rng: porter's hw_random core (porter/hw_random.h). */
#include <linux/kernel.h>
#include <linux/string.h>
#include <porter/hw_random.h>

#include "host_bridge.h"

void bundle_linux_init(void)
{
}

/* READY names the registered rng (the translator's one device) */
int bundle_list_devices(char names[][16], int max)
{
	const char *name = porter_hwrng_name();

	if (!name || max < 1)
		return 0;
	strlcpy(names[0], name, 16);
	return 1;
}

/* The ctl loop runs in the DDE's first process: porter_hwrng_read() may sleep here. */
long host_rng_read(void *buf, unsigned long len, unsigned long min, long timeout_ms)
{
	return porter_hwrng_read(buf, len, min, timeout_ms);
}

void host_rng_info(struct host_rng_info *info)
{
	struct porter_hwrng_stats s;
	const char *name = porter_hwrng_name();

	porter_hwrng_get_stats(&s);
	memset(info, 0, sizeof(*info));
	if (name)
		strlcpy(info->name, name, sizeof(info->name));
	info->pull_size = PORTER_HWRNG_PULL_SIZE;
	info->pulls = s.pulls;
	info->bytes_pulled = s.bytes_pulled;
	info->bytes_read = s.bytes_read;
	info->empty_pulls = s.empty_pulls;
	info->overruns = s.overruns;
	info->timeouts = s.timeouts;
	info->buffered = s.buffered;
}
