/* porter_hw_random.c - the hw_random core the DDE lacks: the registered rng, a thread pulling from it, timed reads (see porter/hw_random.h). */
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/err.h>
#include <linux/kthread.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/wait.h>
#include <porter/hw_random.h>

/*
 * Why a thread: a virtio-rng driver waits for its device uninterruptibly
 * and without a limit (wait_for_completion), so a reader that called it
 * directly could never time out.  One kernel thread ("hwrng") does the
 * driver's waiting and puts what it gets into a FIFO; readers wait on the
 * FIFO with a timeout.  A device that stops producing leaves only that
 * thread asleep, and nothing spins: both sides sleep on wait queues.
 *
 * Bytes leave the FIFO in the order the driver handed them out; none is
 * dropped or repeated.  The thread pulls ahead of the readers by at most
 * the FIFO's size, then waits for room.
 */
#define FIFO_SIZE	(16 * PORTER_HWRNG_PULL_SIZE)

static DEFINE_MUTEX(register_lock);		/* registration */
static DEFINE_MUTEX(read_lock);			/* one reader at a time: bytes go out in order */
static DEFINE_SPINLOCK(fifo_lock);		/* the FIFO's indices and the counters */
static DECLARE_WAIT_QUEUE_HEAD(data_wait);	/* readers: bytes arrived, or the rng went */
static DECLARE_WAIT_QUEUE_HEAD(room_wait);	/* the thread: room in the FIFO */

static struct hwrng *current_rng;
static struct task_struct *puller;
static u8 *pull_buf;				/* kmalloc'd: a read() driver gives it to the device */
static int pull_error;				/* the driver's error, once it failed */
static u8 fifo[FIFO_SIZE];			/* never DMA memory: a plain array */
static size_t fifo_head, fifo_count;
static struct porter_hwrng_stats stats;

static size_t fifo_used(void)
{
	unsigned long flags;
	size_t n;

	spin_lock_irqsave(&fifo_lock, flags);
	n = fifo_count;
	spin_unlock_irqrestore(&fifo_lock, flags);
	return n;
}

static void fifo_put(const u8 *data, size_t len)
{
	unsigned long flags;
	size_t tail, first;

	spin_lock_irqsave(&fifo_lock, flags);
	tail = (fifo_head + fifo_count) % FIFO_SIZE;
	first = min(len, FIFO_SIZE - tail);
	memcpy(fifo + tail, data, first);
	memcpy(fifo, data + first, len - first);
	fifo_count += len;
	spin_unlock_irqrestore(&fifo_lock, flags);
}

static size_t fifo_get(u8 *out, size_t len)
{
	unsigned long flags;
	size_t first;

	spin_lock_irqsave(&fifo_lock, flags);
	len = min(len, fifo_count);
	first = min(len, FIFO_SIZE - fifo_head);
	memcpy(out, fifo + fifo_head, first);
	memcpy(out + first, fifo, len - first);
	fifo_head = (fifo_head + len) % FIFO_SIZE;
	fifo_count -= len;
	stats.bytes_read += len;
	spin_unlock_irqrestore(&fifo_lock, flags);
	return len;
}

static int rng_gone(void)
{
	return current_rng == NULL || pull_error != 0;
}

static int puller_thread(void *arg)
{
	struct hwrng *rng = arg;
	long n;

	while (!kthread_should_stop()) {
		wait_event(room_wait, FIFO_SIZE - fifo_used() >= PORTER_HWRNG_PULL_SIZE
			   || kthread_should_stop());
		if (kthread_should_stop())
			break;
		n = porter_hwrng_pull(rng, pull_buf, PORTER_HWRNG_PULL_SIZE);
		stats.pulls++;
		if (n < 0) {
			printk(KERN_ERR "porter: hwrng %s: the driver failed (%ld); no more reads\n",
			       rng->name, n);
			pull_error = n;
			wake_up(&data_wait);
			break;
		}
		if (n > PORTER_HWRNG_PULL_SIZE) {
			/* a device reported more than the buffer holds: only the buffer is real */
			printk(KERN_WARNING "porter: hwrng %s: %ld bytes claimed for a %d-byte buffer; "
			       "the excess is dropped\n", rng->name, n, PORTER_HWRNG_PULL_SIZE);
			stats.overruns++;
			n = PORTER_HWRNG_PULL_SIZE;
		}
		if (n == 0)
			stats.empty_pulls++;
		stats.bytes_pulled += n;
		fifo_put(pull_buf, n);
		wake_up(&data_wait);
	}
	/* kthread_stop() must find us here, not exited on our own */
	while (!kthread_should_stop()) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (!kthread_should_stop())
			schedule();
		__set_current_state(TASK_RUNNING);
	}
	return 0;
}

int porter_hwrng_register(struct hwrng *rng)
{
	int err = 0;

	if (!rng->name)
		return -EINVAL;
	mutex_lock(&register_lock);
	if (current_rng) {
		printk(KERN_ERR "porter: hwrng %s: %s is registered; porter's core serves one rng\n",
		       rng->name, current_rng->name);
		err = -EBUSY;
		goto out;
	}
	pull_buf = kmalloc(PORTER_HWRNG_PULL_SIZE, GFP_KERNEL);
	if (!pull_buf) {
		err = -ENOMEM;
		goto out;
	}
	if (rng->init) {
		err = rng->init(rng);
		if (err)
			goto free;
	}
	pull_error = 0;
	fifo_head = fifo_count = 0;
	current_rng = rng;
	printk(KERN_INFO "porter: hwrng %s registered\n", rng->name);
	goto out;
free:
	kfree(pull_buf);
	pull_buf = NULL;
out:
	mutex_unlock(&register_lock);
	return err;
}

void porter_hwrng_unregister(struct hwrng *rng)
{
	mutex_lock(&register_lock);
	if (rng != current_rng) {
		mutex_unlock(&register_lock);
		return;
	}
	current_rng = NULL;
	wake_up(&data_wait);
	/* waits for a pull in progress, as Linux's core waits for a reader holding its mutex */
	if (puller)
		kthread_stop(puller);
	puller = NULL;
	if (rng->cleanup)
		rng->cleanup(rng);
	kfree(pull_buf);
	pull_buf = NULL;
	mutex_unlock(&register_lock);
}

/*
 * Why the thread starts at the first read, not at registration: as in
 * Linux's core, the driver is first asked for bytes by a reader, after its
 * probe returned.  A driver registers its rng in probe, before the virtio
 * core sets DRIVER_OK; a pull from there races with DRIVER_OK, and a device
 * may take the kick and DRIVER_OK as two requests for the one buffer (QEMU's
 * virtio-rng does, and drops the second answer's bytes).
 */
static int start_puller(void)
{
	struct task_struct *t;
	int err = 0;

	mutex_lock(&register_lock);
	if (current_rng && !puller) {
		t = kthread_run(puller_thread, current_rng, "hwrng");
		if (IS_ERR(t))
			err = PTR_ERR(t);
		else
			puller = t;
	}
	mutex_unlock(&register_lock);
	return err;
}

long porter_hwrng_read(void *buf, size_t len, size_t min, long timeout_ms)
{
	long left = timeout_ms < 0 ? MAX_SCHEDULE_TIMEOUT : (long)msecs_to_jiffies(timeout_ms);
	size_t done = 0, n;
	long ret;

	if (len == 0)
		return 0;
	min = clamp_t(size_t, min, 1, len);
	if (!puller && (ret = start_puller()) < 0)
		return ret;
	mutex_lock(&read_lock);
	for (;;) {
		n = fifo_get((u8 *)buf + done, len - done);
		done += n;
		if (n)
			wake_up(&room_wait);
		if (done >= min || rng_gone() || left == 0)
			break;
		left = wait_event_timeout(data_wait, fifo_used() > 0 || rng_gone(), left);
	}
	if (done)
		ret = done;
	else if (current_rng == NULL)
		ret = -ENODEV;
	else if (pull_error)
		ret = pull_error;
	else
		ret = timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
	if (!done && ret == -ETIMEDOUT)
		stats.timeouts++;
	mutex_unlock(&read_lock);
	return ret;
}

const char *porter_hwrng_name(void)
{
	struct hwrng *rng = current_rng;

	return rng ? rng->name : NULL;
}

void porter_hwrng_get_stats(struct porter_hwrng_stats *out)
{
	unsigned long flags;

	spin_lock_irqsave(&fifo_lock, flags);
	*out = stats;
	out->buffered = fifo_count;
	spin_unlock_irqrestore(&fifo_lock, flags);
}
