/* porter/blkdev.h - the 2.6.31 request API on the DDE's 2.6.29 block layer, and the disk registration the DDE leaves out. */
#ifndef PORTER_BLKDEV_H
#define PORTER_BLKDEV_H

#include <linux/blkdev.h>
#include <linux/elevator.h>
#include <linux/genhd.h>
#include <linux/fs.h>

/*
 * Why: Linux 2.6.31 reworked the request API (commits "block: implement and
 * use blk_peek/fetch/start_request()", "block: convert to pos and
 * nr_sectors accessors"); drivers of 2.6.31 on call it, and the DDE carries
 * the block layer of 2.6.29.  Each backport below is the 2.6.29 call a
 * 2.6.29 driver makes for the same step (2.6.30's virtio_blk, side by side
 * with 2.6.31's, shows the pairs).
 */

/* The request at the head of the queue, prepared and marked started but not dequeued. */
static inline struct request *porter_blk_peek_request(struct request_queue *q)
{
	return elv_next_request(q);
}

/* Dequeue a peeked request: the driver owns it now (2.6.29 also starts its timeout here). */
static inline void porter_blk_start_request(struct request *req)
{
	blkdev_dequeue_request(req);
}

/* The request's current sector (2.6.31's __sector is 2.6.29's rq->sector). */
static inline sector_t porter_blk_rq_pos(const struct request *rq)
{
	return rq->sector;
}

/* Complete a whole request, queue lock held.  2.6.29 has no bidirectional variant
 * that takes the lock as held; no virtio driver makes bidi requests. */
static inline void porter___blk_end_request_all(struct request *rq, int error)
{
	BUG_ON(blk_bidi_rq(rq));
	if (__blk_end_request(rq, error, blk_rq_bytes(rq)))
		BUG();		/* 2.6.31: the request must be done after all its bytes */
}

static inline void porter_blk_queue_logical_block_size(struct request_queue *q, unsigned short size)
{
	blk_queue_hardsect_size(q, size);
}

/* 2.6.34: one segment limit; 2.6.29 has the physical one (after merging) and the hardware one. */
static inline void porter_blk_queue_max_segments(struct request_queue *q, unsigned short max_segments)
{
	blk_queue_max_phys_segments(q, max_segments);
	blk_queue_max_hw_segments(q, max_segments);
}

/* 2.6.34's blk_queue_max_hw_sectors() is 2.6.29's blk_queue_max_sectors(): both set max_hw_sectors
 * and cap max_sectors by BLK_DEF_MAX_SECTORS. */
static inline void porter_blk_queue_max_hw_sectors(struct request_queue *q, unsigned int max_hw_sectors)
{
	blk_queue_max_sectors(q, max_hw_sectors);
}

static inline unsigned short porter_queue_logical_block_size(struct request_queue *q)
{
	return queue_hardsect_size(q);
}

/*
 * Why: 2.6.31's I/O topology (physical block size, alignment, minimum and
 * optimal I/O) tells partitioners and filesystems how to align; the DDE's
 * 2.6.29 struct request_queue has no fields for it, its block layer never
 * looks, and libmachdev's device interface cannot pass it on.  A driver
 * that reports it loses nothing here.
 */
static inline void porter_blk_queue_physical_block_size(struct request_queue *q, unsigned int size) { }
static inline void porter_blk_queue_alignment_offset(struct request_queue *q, unsigned int offset) { }
static inline void porter_blk_queue_io_min(struct request_queue *q, unsigned int min) { }
static inline void porter_blk_queue_io_opt(struct request_queue *q, unsigned int opt) { }

/* SCSI passthrough ioctls: the DDE's scsi_cmd_ioctl() needs blk-map.c and cmd-filter.c,
 * which the DDE does not build.  -ENOTTY, what a driver answers when the host offers no SCSI. */
static inline int porter_scsi_cmd_ioctl(struct request_queue *q, struct gendisk *disk, fmode_t mode,
					unsigned int cmd, void __user *arg)
{
	return -ENOTTY;
}

/*
 * Why: the DDE compiles genhd.c without add_disk() and del_gendisk() (their
 * partition and sysfs halves live in fs/partitions/check.c, which the DDE
 * does not have), and without bdev_cache_init() nothing can bdget() a disk, so
 * the DDE's open_by_devnum() (libmachdev's way in) cannot work either.
 * porter_add_disk() brings a disk up for I/O and records it for
 * porter/blkio.h, which opens disks by the names libmachdev uses.
 */
void porter_add_disk(struct gendisk *disk);
void porter_del_gendisk(struct gendisk *disk);

#define PORTER_MAX_DISKS 26	/* hd0 .. hd25, as libmachdev names them */

/* The index-th disk added (hd<index>) and the block device porter made for it; NULL if none. */
struct gendisk *porter_blkdev_disk(int index, struct block_device **bdev);

#endif /* PORTER_BLKDEV_H */
