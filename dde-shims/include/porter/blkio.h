/* porter/blkio.h - disk I/O as libmachdev does it: open a disk by its Mach name, read and write sectors, a completion callback. */
#ifndef PORTER_BLKIO_H
#define PORTER_BLKIO_H

/*
 * Plain C types only: the Hurd side (machdev_glue.c, which includes no Linux
 * header) and the driver host's libc side call this; porter_blkio.c is the
 * Linux side.  Names are libmachdev's: "hd<N>" is the N-th disk the ported
 * driver added, "hd<N>s<M>" its DOS partition M (1-4 primary, 5 on logical).
 *
 * Buffers are the caller's, anywhere in memory: the data goes through DDE
 * pages (the only memory with a physical address for the device), copied in
 * before a write and out after a read.  Every call may sleep: call from a DDE
 * process (the Hurd's device server thread, the driver host's main thread).
 */

#define PORTER_BLKIO_SECTOR	512		/* the unit of every sector number here */
#define PORTER_BLKIO_MAX_BYTES	(1 << 20)	/* the most one request moves; callers split */

/* Errors are negative Linux errno values; their numbers, for a caller whose errno.h
 * numbers them otherwise (the Hurd's): */
#define PORTER_BLKIO_EIO	5
#define PORTER_BLKIO_ENXIO	6
#define PORTER_BLKIO_EBADF	9
#define PORTER_BLKIO_ENOMEM	12
#define PORTER_BLKIO_EINVAL	22
#define PORTER_BLKIO_EROFS	30
#define PORTER_BLKIO_EOPNOTSUPP	95

struct porter_blkio;				/* an open disk or partition */

struct porter_blkio_info {
	unsigned long long sectors;		/* PORTER_BLKIO_SECTOR-byte sectors of the disk or partition */
	unsigned long long start;		/* its first sector on the disk (0 for a whole disk) */
	unsigned int block_size;		/* the device's logical block size in bytes */
	int read_only;				/* the device is read-only (set_disk_ro by the driver) */
	char name[32];				/* the Linux name of the disk (vda) */
};

/* A request finished: 0 or a negative errno.  Runs in the completion path (the
 * disk's interrupt), or in the caller before porter_blkio_rw() returns. */
typedef void (*porter_blkio_done_t)(void *ctx, int error);

int porter_blkio_disks(void);			/* how many disks the drivers added */

/* Open "hd0", "hd0s1", ...: 0 and *out, -ENXIO (no such disk or partition, or a name
 * not of that form), -EROFS (writable on a read-only disk), -ENOMEM, -EIO. */
int porter_blkio_open(const char *name, int writable, struct porter_blkio **out);
void porter_blkio_close(struct porter_blkio *dev);
void porter_blkio_get_info(struct porter_blkio *dev, struct porter_blkio_info *info);

/* Read or write bytes at sector (of the disk or partition).  0: submitted, done() will
 * run once; else done() never runs: -EINVAL (not a whole number of blocks, or more than
 * PORTER_BLKIO_MAX_BYTES), -ENXIO (beyond the end), -EBADF (a write on a handle opened
 * read-only), -EROFS (a write on a read-only disk), -ENOMEM. */
int porter_blkio_rw(struct porter_blkio *dev, unsigned long long sector, void *buf,
		    unsigned int bytes, int write, porter_blkio_done_t done, void *ctx);

/* Everything written before is on stable storage when done() runs (0), or the device
 * cannot flush (-EOPNOTSUPP). */
int porter_blkio_flush(struct porter_blkio *dev, porter_blkio_done_t done, void *ctx);

#endif /* PORTER_BLKIO_H */
