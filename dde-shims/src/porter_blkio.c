/* porter_blkio.c - the Linux side of porter/blkio.h: Mach disk names, DOS partitions, bios through DDE pages. */
#include <linux/kernel.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/completion.h>
#include <linux/ctype.h>
#include <linux/fs.h>
#include <linux/genhd.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <asm/system.h>
#include <porter/blkdev.h>
#include <porter/blkio.h>

struct porter_blkio {
	struct gendisk *disk;
	struct block_device *bdev;	/* the whole disk's (porter_add_disk) */
	sector_t start;			/* first sector of the partition; 0 for the whole disk */
	sector_t sectors;		/* its length; 0: the whole disk, as large as it is now */
	int writable;
};

/* One request in flight: its bounce pages and the bios still out. */
struct porter_blkio_req {
	atomic_t pending;		/* bios in flight, plus one while submitting */
	int error;			/* the first error a bio reported */
	int write;
	void *buf;			/* the caller's */
	unsigned int bytes;
	int npages;
	struct page *pages;		/* page i is pages[2 * i] (see porter_blkio_req_new) */
	porter_blkio_done_t done;
	void *ctx;
};

int porter_blkio_disks(void)
{
	int i, n = 0;

	/* the numbers porter/blkio.h gives callers with another errno.h */
	BUILD_BUG_ON(PORTER_BLKIO_EIO != EIO || PORTER_BLKIO_ENXIO != ENXIO || PORTER_BLKIO_EBADF != EBADF);
	BUILD_BUG_ON(PORTER_BLKIO_ENOMEM != ENOMEM || PORTER_BLKIO_EINVAL != EINVAL);
	BUILD_BUG_ON(PORTER_BLKIO_EROFS != EROFS || PORTER_BLKIO_EOPNOTSUPP != EOPNOTSUPP);
	for (i = 0; i < PORTER_MAX_DISKS; i++)
		if (porter_blkdev_disk(i, NULL))
			n++;
	return n;
}

static sector_t porter_blkio_length(const struct porter_blkio *dev)
{
	return dev->sectors ? dev->sectors : get_capacity(dev->disk);
}

static unsigned int porter_blkio_block_size(const struct porter_blkio *dev)
{
	return queue_hardsect_size(dev->disk->queue);
}

void porter_blkio_get_info(struct porter_blkio *dev, struct porter_blkio_info *info)
{
	memset(info, 0, sizeof(*info));
	info->sectors = porter_blkio_length(dev);
	info->start = dev->start;
	info->block_size = porter_blkio_block_size(dev);
	info->read_only = get_disk_ro(dev->disk);
	strlcpy(info->name, dev->disk->disk_name, sizeof(info->name));
}

/* ---------------------------------------------------------------- requests */

static struct page *porter_blkio_page(struct porter_blkio_req *r, int i)
{
	return &r->pages[2 * i];
}

/* The caller's bytes to the bounce pages (to_pages), or back. */
static void porter_blkio_copy(struct porter_blkio_req *r, int to_pages)
{
	unsigned int done = 0;
	int i;

	for (i = 0; done < r->bytes; i++) {
		unsigned int n = min_t(unsigned int, r->bytes - done, PAGE_SIZE);
		void *page = page_address(porter_blkio_page(r, i));

		if (to_pages)
			memcpy(page, (char *)r->buf + done, n);
		else
			memcpy((char *)r->buf + done, page, n);
		done += n;
	}
}

static void porter_blkio_req_free(struct porter_blkio_req *r)
{
	int i;

	for (i = 0; i < r->npages; i++)
		if (page_address(porter_blkio_page(r, i)))
			free_page((unsigned long)page_address(porter_blkio_page(r, i)));
	kfree(r->pages);
	kfree(r);
}

static void porter_blkio_req_put(struct porter_blkio_req *r)
{
	porter_blkio_done_t done = r->done;
	void *ctx = r->ctx;
	int error = r->error;

	if (!atomic_dec_and_test(&r->pending))
		return;
	if (!r->write && !error && r->bytes)
		porter_blkio_copy(r, 0);
	porter_blkio_req_free(r);
	done(ctx, error);
}

/*
 * Bounce pages one by one: no contiguous run of memory is needed (the Hurd's
 * contiguous allocations are the ones that fail), and each page is one
 * segment for the device, as the DDE's own block glue builds its bios.  Their
 * struct pages sit at every other entry of one array.  Why: the block layer
 * merges two bio_vecs into one scatterlist entry when page_to_phys() of the
 * second follows the first, and the DDE computes page_to_phys() from a struct
 * page's place in an array (its mem_map is NULL): neighbours in an array would
 * pass for neighbours in memory, which separately allocated pages are not.
 */
static struct porter_blkio_req *porter_blkio_req_new(unsigned int bytes, int write,
						     void *buf, porter_blkio_done_t done, void *ctx)
{
	struct porter_blkio_req *r = kzalloc(sizeof(*r), GFP_NOIO);
	int i;

	if (!r)
		return NULL;
	atomic_set(&r->pending, 1);
	r->write = write;
	r->buf = buf;
	r->bytes = bytes;
	r->done = done;
	r->ctx = ctx;
	r->npages = (bytes + PAGE_SIZE - 1) >> PAGE_SHIFT;
	if (!bytes)
		return r;
	r->pages = kcalloc(2 * r->npages, sizeof(struct page), GFP_NOIO);
	if (!r->pages) {
		kfree(r);
		return NULL;
	}
	for (i = 0; i < r->npages; i++) {
		struct page *page = porter_blkio_page(r, i);

		page->virtual = (void *)__get_free_page(GFP_NOIO);
		if (!page->virtual) {
			porter_blkio_req_free(r);
			return NULL;
		}
		atomic_set(&page->_count, 1);
	}
	return r;
}

static void porter_blkio_end_bio(struct bio *bio, int error)
{
	struct porter_blkio_req *r = bio->bi_private;

	if (!error && !test_bit(BIO_UPTODATE, &bio->bi_flags))
		error = -EIO;
	if (error)
		cmpxchg(&r->error, 0, error);
	bio_put(bio);
	porter_blkio_req_put(r);
}

static struct bio *porter_blkio_bio(struct porter_blkio *dev, struct porter_blkio_req *r,
				    sector_t sector, int nr_pages)
{
	struct bio *bio = bio_alloc(GFP_NOIO, nr_pages);

	if (bio) {
		bio->bi_sector = sector;
		bio->bi_bdev = dev->bdev;
		bio->bi_end_io = porter_blkio_end_bio;
		bio->bi_private = r;
	}
	return bio;
}

/*
 * As many bios as the queue's limits need: the 2.6.29 block layer never
 * splits a bio, bio_add_page() refuses a page that would exceed the queue's
 * segment count or size (the device's seg_max and size_max), and a refused page
 * starts the next bio.  One unplug at the end sends them to the driver.
 */
static void porter_blkio_submit(struct porter_blkio *dev, struct porter_blkio_req *r,
				sector_t sector)
{
	struct request_queue *q = bdev_get_queue(dev->bdev);
	unsigned int left = r->bytes;
	int i = 0;

	while (left) {
		struct bio *bio = porter_blkio_bio(dev, r, sector, min(r->npages - i, BIO_MAX_PAGES));

		if (!bio) {
			cmpxchg(&r->error, 0, -ENOMEM);
			break;
		}
		while (left) {
			unsigned int len = min_t(unsigned int, left, PAGE_SIZE);

			if (bio_add_page(bio, porter_blkio_page(r, i), len, 0) < len)
				break;
			i++;
			left -= len;
			sector += len >> 9;
		}
		if (!bio->bi_size) {	/* the queue took not even one page */
			bio_put(bio);
			cmpxchg(&r->error, 0, -EIO);
			break;
		}
		atomic_inc(&r->pending);
		submit_bio(r->write ? WRITE : READ, bio);
	}
	blk_unplug(q);
	porter_blkio_req_put(r);
}

int porter_blkio_rw(struct porter_blkio *dev, unsigned long long sector, void *buf,
		    unsigned int bytes, int write, porter_blkio_done_t done, void *ctx)
{
	unsigned int bs = porter_blkio_block_size(dev);
	unsigned long long length = porter_blkio_length(dev);
	struct porter_blkio_req *r;

	if (!bytes || bytes % bs || sector % (bs >> 9) || bytes > PORTER_BLKIO_MAX_BYTES)
		return -EINVAL;
	if (write && !dev->writable)
		return -EBADF;
	if (write && get_disk_ro(dev->disk))
		return -EROFS;
	if (sector >= length || bytes / PORTER_BLKIO_SECTOR > length - sector)
		return -ENXIO;
	r = porter_blkio_req_new(bytes, write, buf, done, ctx);
	if (!r)
		return -ENOMEM;
	if (write)
		porter_blkio_copy(r, 1);
	porter_blkio_submit(dev, r, dev->start + (sector_t)sector);
	return 0;
}

/* An empty barrier, as blkdev_issue_flush() makes one: the queue's ordered
 * sequence turns it into the driver's flush request. */
int porter_blkio_flush(struct porter_blkio *dev, porter_blkio_done_t done, void *ctx)
{
	struct porter_blkio_req *r = porter_blkio_req_new(0, 1, NULL, done, ctx);
	struct bio *bio;

	if (!r)
		return -ENOMEM;
	bio = porter_blkio_bio(dev, r, 0, 0);
	if (!bio) {
		kfree(r);
		return -ENOMEM;
	}
	atomic_inc(&r->pending);
	submit_bio(WRITE_BARRIER, bio);
	blk_unplug(bdev_get_queue(dev->bdev));
	porter_blkio_req_put(r);
	return 0;
}

/* ---------------------------------------------------------------- opening */

struct porter_blkio_wait {
	struct completion done;
	int error;
};

static void porter_blkio_wake(void *ctx, int error)
{
	struct porter_blkio_wait *w = ctx;

	w->error = error;
	complete(&w->done);
}

static int porter_blkio_read_block(struct porter_blkio *whole, sector_t block, void *buf)
{
	unsigned int bs = porter_blkio_block_size(whole);
	struct porter_blkio_wait w;
	int err;

	init_completion(&w.done);
	err = porter_blkio_rw(whole, (unsigned long long)block * (bs >> 9), buf, bs, 0,
			      porter_blkio_wake, &w);
	if (err)
		return err;
	wait_for_completion(&w.done);
	return w.error;
}

#define MBR_ENTRIES	446		/* four 16-byte entries, then the 0x55 0xaa signature */

struct porter_mbr_entry {
	u8 type;
	u32 start;			/* in the disk's logical blocks, from the table's own origin */
	u32 count;
};

static int porter_mbr_extended(u8 type)
{
	return type == 0x05 || type == 0x0f || type == 0x85;	/* DOS, Win95 LBA, Linux */
}

/* Block `block`'s partition table: 0, or -ENXIO when it carries no DOS signature. */
static int porter_mbr_read(struct porter_blkio *whole, sector_t block, u8 *buf,
			   struct porter_mbr_entry e[4])
{
	int i, err = porter_blkio_read_block(whole, block, buf);

	if (err)
		return err;
	if (buf[510] != 0x55 || buf[511] != 0xaa)
		return -ENXIO;
	for (i = 0; i < 4; i++) {
		const u8 *p = buf + MBR_ENTRIES + 16 * i;

		e[i].type = p[4];
		e[i].start = p[8] | p[9] << 8 | p[10] << 16 | (u32)p[11] << 24;
		e[i].count = p[12] | p[13] << 8 | p[14] << 16 | (u32)p[15] << 24;
	}
	return 0;
}

/* Where DOS partition `slice` lies, in logical blocks: 1-4 the primary entries, 5 on the
 * logical partitions of the first extended one, numbered as Linux numbers them. */
static int porter_blkio_find_slice(struct porter_blkio *whole, int slice, u8 *buf,
				   sector_t *start, sector_t *count)
{
	struct porter_mbr_entry e[4];
	sector_t ext = 0, ebr;
	int i, n, err = porter_mbr_read(whole, 0, buf, e);

	if (err)
		return err;
	if (slice <= 4) {
		struct porter_mbr_entry *p = &e[slice - 1];

		if (!p->type || !p->count || porter_mbr_extended(p->type) || p->type == 0xee)
			return -ENXIO;		/* empty, a container, or GPT's protective entry */
		*start = p->start;
		*count = p->count;
		return 0;
	}
	for (i = 0; i < 4 && !ext; i++)
		if (porter_mbr_extended(e[i].type))
			ext = e[i].start;
	if (!ext)
		return -ENXIO;
	/* each EBR: entry 0 a logical partition (from the EBR), entry 1 the next EBR (from ext) */
	for (ebr = ext, n = 5; n < 5 + 128; ) {
		err = porter_mbr_read(whole, ebr, buf, e);
		if (err)
			return err;
		if (e[0].type && e[0].count) {
			if (n == slice) {
				*start = ebr + e[0].start;
				*count = e[0].count;
				return 0;
			}
			n++;
		}
		if (!porter_mbr_extended(e[1].type) || !e[1].start)
			return -ENXIO;
		ebr = ext + e[1].start;
	}
	return -ENXIO;
}

/* "hd<unit>[s<slice>]": libmachdev's grammar, without its BSD partition letters (refused:
 * opening the whole disk or slice in their place would be wrong). */
static int porter_blkio_parse(const char *name, int *unit, int *slice)
{
	const char *p = name;

	if (p[0] != 'h' || p[1] != 'd' || !isdigit(p[2]))
		return -ENXIO;
	for (p += 2, *unit = 0; isdigit(*p); p++) {
		*unit = *unit * 10 + (*p - '0');
		if (*unit >= PORTER_MAX_DISKS)
			return -ENXIO;
	}
	*slice = 0;
	if (*p == 's') {
		if (!isdigit(*++p))
			return -ENXIO;
		for (; isdigit(*p); p++) {
			*slice = *slice * 10 + (*p - '0');
			if (*slice > 5 + 128)
				return -ENXIO;
		}
	}
	return *p ? -ENXIO : 0;
}

int porter_blkio_open(const char *name, int writable, struct porter_blkio **out)
{
	struct porter_blkio *dev;
	int unit, slice, err = porter_blkio_parse(name, &unit, &slice);

	if (err)
		return err;
	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;
	dev->disk = porter_blkdev_disk(unit, &dev->bdev);
	if (!dev->disk) {
		kfree(dev);
		return -ENXIO;
	}
	if (writable && get_disk_ro(dev->disk)) {
		kfree(dev);
		return -EROFS;
	}
	dev->bdev->bd_inode->i_size = (loff_t)get_capacity(dev->disk) << 9;
	if (slice) {
		unsigned int scale = porter_blkio_block_size(dev) >> 9;
		u8 *buf = kmalloc(porter_blkio_block_size(dev), GFP_KERNEL);
		sector_t start, count;

		err = buf ? porter_blkio_find_slice(dev, slice, buf, &start, &count) : -ENOMEM;
		kfree(buf);
		if (!err && ((u64)start + count) * scale > get_capacity(dev->disk))
			err = -ENXIO;		/* a table entry beyond the disk */
		if (err) {
			kfree(dev);
			return err;
		}
		dev->start = start * scale;
		dev->sectors = count * scale;
	}
	dev->writable = writable;
	*out = dev;
	return 0;
}

void porter_blkio_close(struct porter_blkio *dev)
{
	kfree(dev);
}
