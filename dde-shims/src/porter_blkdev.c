/* porter_blkdev.c - disks brought up without the DDE's missing add_disk(), and the partition-code symbols its block layer calls. */
#include <linux/kernel.h>
#include <linux/ctype.h>
#include <linux/init.h>
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/genhd.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <porter/blkdev.h>

/* One registered disk: the gendisk and the whole-disk block device bios name. */
struct porter_disk {
	struct gendisk *disk;
	struct block_device *bdev;
};

static struct porter_disk porter_disks[PORTER_MAX_DISKS];
static DEFINE_SPINLOCK(porter_disks_lock);

/*
 * A block device as do_open() would leave it for the whole disk, without the
 * bdev pseudo-filesystem the DDE never mounts: what generic_make_request()
 * reads is the queue (bd_disk), the partition (none: bd_contains is itself)
 * and the size for its end-of-device check (bd_inode->i_size).
 */
static struct block_device *porter_whole_disk_bdev(struct gendisk *disk)
{
	struct block_device *bdev = kzalloc(sizeof(*bdev), GFP_KERNEL);
	struct inode *inode = kzalloc(sizeof(*inode), GFP_KERNEL);

	if (!bdev || !inode) {
		kfree(bdev);
		kfree(inode);
		return NULL;
	}
	bdev->bd_dev = disk_devt(disk);
	bdev->bd_inode = inode;
	bdev->bd_disk = disk;
	bdev->bd_contains = bdev;
	bdev->bd_part = &disk->part0;
	bdev->bd_block_size = queue_hardsect_size(disk->queue);
	mutex_init(&bdev->bd_mutex);
	INIT_LIST_HEAD(&bdev->bd_inodes);
	INIT_LIST_HEAD(&bdev->bd_list);
	inode->i_mode = S_IFBLK;
	inode->i_rdev = bdev->bd_dev;
	inode->i_bdev = bdev;
	inode->i_size = (loff_t)get_capacity(disk) << 9;
	return bdev;
}

/* 2.6.29's add_disk() without sysfs, the bdi and the partition scan (porter/blkio.h reads
 * DOS partitions itself). */
void porter_add_disk(struct gendisk *disk)
{
	struct block_device *bdev;
	unsigned long flags;
	int i;

	disk->flags |= GENHD_FL_UP;
	disk_to_dev(disk)->devt = MKDEV(disk->major, disk->first_minor);
	bdev = porter_whole_disk_bdev(disk);
	if (!bdev) {
		printk(KERN_ERR "porter: no memory to register disk %s\n", disk->disk_name);
		return;
	}
	spin_lock_irqsave(&porter_disks_lock, flags);
	for (i = 0; i < PORTER_MAX_DISKS && porter_disks[i].disk; i++)
		;
	if (i < PORTER_MAX_DISKS) {
		porter_disks[i].disk = disk;
		porter_disks[i].bdev = bdev;
	}
	spin_unlock_irqrestore(&porter_disks_lock, flags);
	if (i == PORTER_MAX_DISKS) {
		printk(KERN_ERR "porter: disk %s not registered: %d disks already\n",
		       disk->disk_name, PORTER_MAX_DISKS);
		kfree(bdev->bd_inode);
		kfree(bdev);
		return;
	}
	printk(KERN_INFO "porter: disk %s is hd%d: %llu sectors, %d-byte blocks%s\n",
	       disk->disk_name, i, (unsigned long long)get_capacity(disk),
	       queue_hardsect_size(disk->queue), get_disk_ro(disk) ? ", read-only" : "");
}

/* Unregister a disk; porter/blkio.h handles on it must be closed first. */
void porter_del_gendisk(struct gendisk *disk)
{
	struct block_device *bdev = NULL;
	unsigned long flags;
	int i;

	spin_lock_irqsave(&porter_disks_lock, flags);
	for (i = 0; i < PORTER_MAX_DISKS; i++) {
		if (porter_disks[i].disk == disk) {
			bdev = porter_disks[i].bdev;
			porter_disks[i].disk = NULL;
			porter_disks[i].bdev = NULL;
		}
	}
	spin_unlock_irqrestore(&porter_disks_lock, flags);
	disk->flags &= ~GENHD_FL_UP;
	if (bdev) {
		kfree(bdev->bd_inode);
		kfree(bdev);
	}
}

struct gendisk *porter_blkdev_disk(int index, struct block_device **bdev)
{
	struct gendisk *disk = NULL;
	unsigned long flags;

	if (index < 0 || index >= PORTER_MAX_DISKS)
		return NULL;
	spin_lock_irqsave(&porter_disks_lock, flags);
	disk = porter_disks[index].disk;
	if (bdev)
		*bdev = porter_disks[index].bdev;
	spin_unlock_irqrestore(&porter_disks_lock, flags);
	return disk;
}

/*
 * The DDE's block layer calls these two from fs/partitions/check.c, which it
 * does not carry (generic_make_request() names the device in its error
 * messages): the linked program would have them undefined.  As 2.6.29 spells
 * them.
 */
char *disk_name(struct gendisk *hd, int partno, char *buf)
{
	if (!partno)
		snprintf(buf, BDEVNAME_SIZE, "%.20s", hd->disk_name);
	else if (isdigit(hd->disk_name[strlen(hd->disk_name) - 1]))
		snprintf(buf, BDEVNAME_SIZE, "%.20sp%d", hd->disk_name, partno & 0xffff);
	else
		snprintf(buf, BDEVNAME_SIZE, "%.20s%d", hd->disk_name, partno & 0xffff);
	return buf;
}

const char *bdevname(struct block_device *bdev, char *buf)
{
	return disk_name(bdev->bd_disk, bdev->bd_part ? bdev->bd_part->partno : 0, buf);
}

/* The sysfs attributes of genhd.c's disk type name these two (fs/partitions/check.c
 * again); the DDE has no sysfs to read them through. */
ssize_t part_size_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sprintf(buf, "%llu\n", (unsigned long long)dev_to_part(dev)->nr_sects);
}

ssize_t part_stat_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	printk(KERN_WARNING "porter: disk statistics are not kept in sysfs on the DDE\n");
	return -EOPNOTSUPP;
}

/*
 * The DDE's elevator_init() falls back on "noop" when its default (cfq) is
 * not registered, and noop's object is pulled into a link only by a
 * reference: its initcall is all it exports.  (cfq needs per-task I/O
 * contexts and the kblockd timers; a virtio disk needs no scheduling.)
 */
extern l4ddekit_initcall_t __l4ddekit_initcall_noop_init;
l4ddekit_initcall_t *porter_blkdev_noop_iosched __attribute__((used)) = &__l4ddekit_initcall_noop_init;
