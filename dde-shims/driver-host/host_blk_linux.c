/* host_blk_linux.c - the driver host's Linux side for virtio-blk: the tree's porter/blkio.h, by handle. */
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/string.h>
#include <porter/blkio.h>

#include "host_bridge.h"

/*
 * The same calls the tree's Hurd glue makes (machdev_glue.c): open by the
 * Mach name, rw with a completion callback, flush.  Only the main thread
 * (the DDE process the initcalls ran in) opens and closes; completions come
 * from the disk's interrupt thread and only read the table.
 */
static struct porter_blkio *handles[HOST_BLK_HANDLES];

void bundle_linux_init(void)
{
}

int bundle_list_devices(char names[][16], int max)
{
	int i, n = porter_blkio_disks();

	for (i = 0; i < n && i < max; i++)
		snprintf(names[i], 16, "hd%d", i);
	return i;
}

static void fill_info(struct porter_blkio *io, struct host_blk_info *info)
{
	struct porter_blkio_info i;

	porter_blkio_get_info(io, &i);
	info->sectors = i.sectors;
	info->start = i.start;
	info->block_size = i.block_size;
	info->read_only = i.read_only;
	strlcpy(info->disk, i.name, sizeof(info->disk));
}

int host_blk_open(const char *name, int writable, struct host_blk_info *info)
{
	struct porter_blkio *io;
	int h, err;

	for (h = 0; h < HOST_BLK_HANDLES && handles[h]; h++)
		;
	if (h == HOST_BLK_HANDLES)
		return -EMFILE;
	err = porter_blkio_open(name, writable, &io);
	if (err)
		return err;
	fill_info(io, info);
	handles[h] = io;
	return h;
}

static struct porter_blkio *handle_io(int handle)
{
	return handle >= 0 && handle < HOST_BLK_HANDLES ? handles[handle] : NULL;
}

int host_blk_close(int handle)
{
	struct porter_blkio *io = handle_io(handle);

	if (!io)
		return -EBADF;
	handles[handle] = NULL;
	porter_blkio_close(io);
	return 0;
}

/* The request's handle and tag ride in the callback's context pointer: no allocation. */
static void *tag_ctx(int handle, unsigned int tag)
{
	return (void *)(unsigned long)((unsigned long)handle << 24 | (tag & 0xffffff));
}

static void rw_done(void *ctx, int error)
{
	unsigned long v = (unsigned long)ctx;

	host_blk_complete((int)(v >> 24), v & 0xffffff, error);
}

int host_blk_rw(int handle, unsigned long long sector, void *buf, unsigned int bytes, int write,
		unsigned int tag)
{
	struct porter_blkio *io = handle_io(handle);

	if (!io)
		return -EBADF;
	return porter_blkio_rw(io, sector, buf, bytes, write, rw_done, tag_ctx(handle, tag));
}

int host_blk_flush(int handle, unsigned int tag)
{
	struct porter_blkio *io = handle_io(handle);

	if (!io)
		return -EBADF;
	return porter_blkio_flush(io, rw_done, tag_ctx(handle, tag));
}
