/* protocol.h - the driver host's wire protocol with porter's harness (version 1). */
#ifndef PORTER_HOST_PROTOCOL_H
#define PORTER_HOST_PROTOCOL_H

/*
 * Two SOCK_SEQPACKET channels (one message per packet; fds ride as SCM_RIGHTS):
 *
 *   ctl: the harness asks, the host answers (REPLY with the request's seq);
 *        the host also sends READY, RX, LOG, ERROR and BYE unasked.
 *   io:  the host asks (PCI config, port I/O, from any thread, even inside
 *        the port-I/O trap), the harness answers with REPLY.
 *
 * Every message: struct porter_msg_hdr, then `len` payload bytes. All fields
 * little endian, structures packed. A message with a bad magic, version,
 * type or length is answered with ERROR (its text says why) and dropped; the
 * channel stays up. The Python side's constants and layouts are generated
 * from this file into porter/harness/contract.py (make contract).
 */

#include <stdint.h>

#define PORTER_MSG_MAGIC	0x52545250u	/* "PRTR" */
#define PORTER_PROTO_VERSION	1
#define PORTER_MSG_MAX		65536		/* whole message, header included */
#define PORTER_IFNAMSIZ		16
#define PORTER_MAX_DEVICES	8		/* PCI devices (irqs) and device names a host serves */
#define PORTER_MSG_MAX_FDS	(1 + 2 * PORTER_MAX_DEVICES)	/* SETUP's: the memfd, two eventfds per irq */

struct porter_msg_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t seq;
	uint32_t len;		/* payload bytes after the header */
} __attribute__((packed));

/*
 * Message types: the core's (host_main.c) and each bundle's service
 * (host_<name>.c) keep to their own ranges, so services never collide:
 *   1, 7, 8        core requests          64-69    core, host -> harness
 *   2-6, 9-15      virtio-net requests    70-79    virtio-net, host -> harness
 *   16-31          virtio-rng requests    80-89    virtio-rng, host -> harness
 *   32-47          virtio-blk requests    90-99    virtio-blk, host -> harness
 *   128-           io channel (host -> harness requests)
 * RX (66) is virtio-net's from before the ranges, and stays.
 */
enum porter_msg_type {
	/* ctl, harness -> host */
	PORTER_SETUP = 1,	/* setup_req; fds: memfd, then one eventfd and one resample eventfd per irq */
	PORTER_OPEN = 2,	/* ifname_req -> reply(status) */
	PORTER_CLOSE = 3,	/* ifname_req -> reply(status) */
	PORTER_XMIT = 4,	/* ifname_req + frame -> reply(status) */
	PORTER_INFO = 5,	/* ifname_req -> reply(status) + info_reply */
	PORTER_RX_MODE = 6,	/* rx_mode_req + n * 6-byte multicast addresses -> reply(status) */
	PORTER_SHUTDOWN = 7,	/* -> BYE, then the host exits 0 */
	PORTER_STATS = 8,	/* -> reply(status) + stats_reply */
	PORTER_NET_RINGS = 9,	/* net_rings_req; fds: memfd, tx ready, tx space, rx ready, rx space -> reply(status) */
	/* virtio-rng (host_rng.c) */
	PORTER_RNG_READ = 16,	/* rng_read_req -> RNG_DATA messages, then reply(bytes read or -errno) */
	PORTER_RNG_INFO = 17,	/* -> reply(status) + rng_info_reply */

	/* host -> harness (ctl) */
	PORTER_REPLY = 64,	/* reply_hdr [+ data]; seq = the request's seq; on io: io_reply */
	PORTER_READY = 65,	/* ready_msg: the DDE is up, initcalls ran */
	PORTER_RX = 66,		/* ifname_req + frame, from the DDE's RX callback */
	PORTER_LOG = 67,	/* text */
	PORTER_ERROR = 68,	/* text: why a message was rejected (seq = its seq) */
	PORTER_BYE = 69,	/* the host is exiting cleanly */
	/* virtio-rng (host_rng.c) */
	PORTER_RNG_DATA = 80,	/* bytes an RNG_READ read, in order, before its reply (seq = the request's) */

	/* ctl, harness -> host: virtio-blk (host_blk.c), the disk as libmachdev drives it */
	PORTER_BLK_OPEN = 32,	/* blk_open_req -> reply(status) + blk_open_reply */
	PORTER_BLK_CLOSE = 33,	/* blk_handle_req -> reply(status); frees the handle's window */
	PORTER_BLK_READ = 34,	/* blk_rw_req -> reply(status: 0 submitted, or -errno), then BLK_DONE */
	PORTER_BLK_WRITE = 35,	/* blk_rw_req -> reply(status), then BLK_DONE */
	PORTER_BLK_FLUSH = 36,	/* blk_rw_req (sector, bytes, offset unused) -> reply(status), then BLK_DONE */
	PORTER_BLK_STATS = 37,	/* -> reply(status) + blk_stats_reply */

	/* host -> harness (ctl): virtio-blk */
	PORTER_BLK_DONE = 90,	/* blk_done_msg: a submitted request finished (its completion callback) */

	/* io, host -> harness */
	PORTER_PCI_GET_DEVICE = 128,	/* get_device_req -> reply(status) + pci_addr */
	PORTER_PCI_READ = 129,		/* pci_cfg_req -> reply(status) + u32 value */
	PORTER_PCI_WRITE = 130,		/* pci_cfg_req -> reply(status) */
	PORTER_PCI_IRQ = 131,		/* pci_cfg_req (pos = pin) -> reply(status) + u32 irq */
	PORTER_PIO_READ = 132,		/* pio_req -> reply(status) + u32 value */
	PORTER_PIO_WRITE = 133,		/* pio_req -> reply(status) */
	PORTER_PIO_WRITE_POSTED = 134,	/* pio_req, no reply: the host goes on at once (a queue notify) */
	PORTER_IO_SYNC = 135,		/* -> reply(status) once every io message before it was served */
};

/* The driver host's own exit statuses (ddekit-linux adds enum ddekit_linux_exit). */
enum porter_host_exit {
	PORTER_EXIT_OK = 0,		/**< exited: SHUTDOWN was served */
	PORTER_EXIT_HARNESS_GONE = 3,	/**< exited: the harness closed a channel */
	PORTER_EXIT_BAD_SETUP = 4,	/**< exited: setup was refused */
};

struct porter_setup_req {
	uint32_t mem_size;	/* bytes of the memfd that are DMA memory */
	uint32_t nirqs;
	uint32_t irq_lines[PORTER_MAX_DEVICES];	/* the first nirqs are used */
} __attribute__((packed));

struct porter_ifname_req {
	char ifname[PORTER_IFNAMSIZ];	/* NUL-padded */
} __attribute__((packed));

struct porter_rx_mode_req {
	char ifname[PORTER_IFNAMSIZ];
	uint32_t promisc;
	uint32_t allmulti;
	uint32_t nmc;
} __attribute__((packed));

struct porter_reply_hdr {
	int32_t status;		/* 0 or a negative Linux errno */
} __attribute__((packed));

struct porter_io_reply {
	int32_t status;		/* 0 or a negative Linux errno */
	uint32_t value;		/* what a read returned */
} __attribute__((packed));

struct porter_info_reply {
	uint8_t mac[6];
	uint16_t flags;		/* IFF_* of the net_device */
	uint32_t mtu;
	uint32_t link_up;	/* netif_carrier_ok() */
	uint32_t running;	/* netif_running() */
} __attribute__((packed));

struct porter_stats_reply {
	uint32_t arena_in_use;	/* bytes of DMA memory allocated */
	uint32_t portio_traps;
	uint32_t rx_frames;	/* delivered through the RX callback */
	uint32_t tx_frames;	/* taken by the driver */
	uint32_t tx_dropped;	/* refused by it (interface down, bad frame): from a frame ring, counted */
	uint32_t rx_dropped;	/* too big for a frame ring's slot */
	uint32_t arena_spare;	/* of arena_in_use: empty slab chunks kept for reuse (one per slab at most) */
} __attribute__((packed));

/*
 * Frame rings (virtio-net): frames between the harness and the host without
 * a message each.  NET_RINGS hands over a memfd with two rings, TX (the
 * harness produces, the host consumes) at offset 0 and RX (the host
 * produces) at ring_bytes = sizeof(ring) + slots * slot_size, rounded up to
 * PORTER_FRAME_RING_ALIGN,
 * and per ring two eventfds: "ready" (producer to consumer: frames published)
 * and "space" (consumer to producer: slots freed).  One producer, one
 * consumer; indices run free (u32), slot i is at i % slots.  The producer
 * stores a slot's bytes, then head; the consumer reads them, then stores tail.
 * A side about to sleep sets its *_waiting flag and looks again; the other
 * side writes the eventfd when it finds the flag set, and clears it.  Python
 * cannot fence a store from a later load, so the harness also wakes every
 * millisecond while it waits: a lost wake-up costs at most that.
 */
#define PORTER_FRAME_RING_ALIGN	4096	/* each ring's bytes in the memfd round up to this */

struct porter_frame_ring {
	uint32_t head;			/* next slot the producer fills */
	uint32_t tail;			/* next slot the consumer takes */
	uint32_t consumer_waiting;	/* the consumer sleeps on "ready" */
	uint32_t producer_waiting;	/* the producer sleeps on "space" */
	uint32_t slots;			/* a power of two */
	uint32_t slot_size;		/* bytes per slot, its header included */
	uint32_t pad[10];		/* the slots start 64 bytes in */
} __attribute__((packed));

struct porter_frame_slot {
	uint32_t len;			/* frame bytes that follow */
	uint32_t dev;			/* the interface: its index in READY's list */
} __attribute__((packed));

struct porter_net_rings_req {
	uint32_t slots;			/* per ring, a power of two */
	uint32_t slot_size;		/* a multiple of 64, at least 64 */
} __attribute__((packed));

struct porter_ready_msg {
	uint32_t ndevs;
	char ifnames[PORTER_MAX_DEVICES][PORTER_IFNAMSIZ];
} __attribute__((packed));

struct porter_get_device_req {
	uint32_t nr;
} __attribute__((packed));

struct porter_pci_addr {
	uint8_t bus, slot, func, pad;
} __attribute__((packed));

struct porter_pci_cfg_req {
	uint8_t bus, slot, func, pad;
	uint16_t pos;
	uint16_t len;
	uint32_t value;		/* writes */
} __attribute__((packed));

struct porter_pio_req {
	uint16_t port;
	uint16_t size;
	uint32_t value;		/* writes */
} __attribute__((packed));

/* ---- virtio-blk (host_blk.c): a disk opened by its Mach name ("hd0", "hd0s1"); the data
 * moves through the handle's window, DMA memory the host allocates at open, which the
 * harness reads and writes at window_phys in guest memory. */
#define PORTER_BLK_NAMESIZ	16
#define PORTER_BLK_TAG_MAX	0x00ffffffu	/* tags a request carries back in BLK_DONE */

struct porter_blk_open_req {
	char name[PORTER_BLK_NAMESIZ];	/* NUL-padded */
	uint32_t writable;
	uint32_t window_bytes;		/* the data window to allocate */
} __attribute__((packed));

struct porter_blk_open_reply {
	uint32_t handle;
	uint32_t block_size;		/* the device's logical block size */
	uint64_t sectors;		/* 512-byte sectors of the disk or partition */
	uint64_t start;			/* its first sector on the disk */
	uint32_t read_only;
	uint32_t window_bytes;
	uint64_t window_phys;		/* guest-physical address of the window */
	char disk[PORTER_BLK_NAMESIZ];	/* the driver's name for the disk (vda) */
} __attribute__((packed));

struct porter_blk_handle_req {
	uint32_t handle;
} __attribute__((packed));

struct porter_blk_rw_req {
	uint32_t handle;
	uint32_t tag;			/* <= PORTER_BLK_TAG_MAX */
	uint64_t sector;		/* of the disk or partition, 512-byte units */
	uint32_t bytes;
	uint32_t offset;		/* of the data in the window */
} __attribute__((packed));

struct porter_blk_done_msg {
	uint32_t handle;
	uint32_t tag;
	int32_t status;			/* 0 or a negative Linux errno */
} __attribute__((packed));

struct porter_blk_stats_reply {
	uint32_t reads, writes, flushes;	/* accepted (submitted to the disk) */
	uint32_t errors;			/* completions with a non-zero status */
	uint32_t in_flight;			/* accepted, not completed */
	uint32_t pad;
	uint64_t bytes_read, bytes_written;	/* of the accepted reads and writes */
} __attribute__((packed));

/* ---- virtio-rng (host_rng.c, host_rng_linux.c) ---- */

#define PORTER_RNG_READ_MAX	(1 << 20)	/* bytes one RNG_READ may ask for */
#define PORTER_RNG_DATA_MAX	(PORTER_MSG_MAX - 16)	/* bytes per RNG_DATA: a whole message, less its header */

/* Read as the Hurd translator reads: up to len bytes, back once min came or timeout_ms passed. */
struct porter_rng_read_req {
	uint32_t len;		/* 1 .. PORTER_RNG_READ_MAX */
	uint32_t min;		/* 1 .. len */
	int32_t timeout_ms;	/* < 0: no limit; 0: only what is buffered */
} __attribute__((packed));

/* porter's hw_random core (porter/hw_random.h): the registered rng and its counters */
struct porter_rng_info_reply {
	char name[PORTER_IFNAMSIZ];	/* the hwrng's name, "" when none is registered */
	uint32_t pull_size;	/* bytes the core asks the driver for at a time */
	uint32_t pulls;		/* calls into the driver */
	uint64_t bytes_pulled;	/* bytes the driver handed out */
	uint64_t bytes_read;	/* bytes reads returned */
	uint32_t empty_pulls;	/* the driver handed out nothing */
	uint32_t overruns;	/* the driver claimed more than the buffer holds */
	uint32_t timeouts;	/* reads that ended with nothing */
	uint32_t buffered;	/* pulled, not yet read */
} __attribute__((packed));

#endif /* PORTER_HOST_PROTOCOL_H */
