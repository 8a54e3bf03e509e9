/* host_bridge.h - the calls between the driver host's Linux side (DDE flags) and its libc side. */
#ifndef PORTER_HOST_BRIDGE_H
#define PORTER_HOST_BRIDGE_H

/* Plain C types only: the two sides see different headers (Linux vs libc). */

/* Linux side, every bundle (host_dde.c) */
void host_dde_start(int cpumask_fix);		/* as netdde's main(), up to and with the initcalls */

/* Linux side, the bundle's host_<name>_linux.c */
void bundle_linux_init(void);			/* before the initcalls (e.g. skb_init) */
int bundle_list_devices(char names[][16], int max);	/* after them: the names READY carries */

/* virtio-net (host_net_linux.c, and host_net.c on the libc side) */
struct host_netdev_info {
	unsigned char mac[6];
	unsigned short flags;
	unsigned int mtu;
	int link_up;
	int running;
};

int host_net_open(const char *ifname);		/* 0 or -errno */
int host_net_close(const char *ifname);
/* 0; -EAGAIN while the driver has stopped its queue (keep the frame, come back); -ENETDOWN, ... */
int host_net_xmit(const char *ifname, const void *frame, int len);
int host_net_info(const char *ifname, struct host_netdev_info *info);
int host_net_rx_mode(const char *ifname, int promisc, int allmulti,
		     const unsigned char *mc, int nmc);
void host_net_deliver_rx(const char *ifname, const void *frame, int len);	/* libc side */

/* virtio-blk (host_blk_linux.c, and host_blk.c on the libc side): porter/blkio.h by handle */
struct host_blk_info {
	unsigned long long sectors;	/* 512-byte sectors of the disk or partition */
	unsigned long long start;
	unsigned int block_size;
	int read_only;
	char disk[16];
};

#define HOST_BLK_HANDLES 64

int host_blk_open(const char *name, int writable, struct host_blk_info *info);	/* handle, or -errno */
int host_blk_close(int handle);
int host_blk_rw(int handle, unsigned long long sector, void *buf, unsigned int bytes, int write,
		unsigned int tag);	/* 0: host_blk_complete() follows, once */
int host_blk_flush(int handle, unsigned int tag);
void host_blk_complete(int handle, unsigned int tag, int status);	/* libc side; any thread */

/* virtio-rng (host_rng_linux.c, and host_rng.c on the libc side) */
struct host_rng_info {
	char name[16];			/* "" when no rng is registered */
	unsigned int pull_size;
	unsigned long pulls, empty_pulls, overruns, timeouts, buffered;
	unsigned long long bytes_pulled, bytes_read;
};

long host_rng_read(void *buf, unsigned long len, unsigned long min, long timeout_ms);	/* bytes or -errno */
void host_rng_info(struct host_rng_info *info);

#endif /* PORTER_HOST_BRIDGE_H */
