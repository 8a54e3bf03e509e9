/* host_bridge.h - the calls between the driver host's Linux side (host_linux.c, DDE flags) and its libc side. */
#ifndef PORTER_HOST_BRIDGE_H
#define PORTER_HOST_BRIDGE_H

/* Plain C types only: the two sides see different headers (Linux vs libc). */

struct host_netdev_info {
	unsigned char mac[6];
	unsigned short flags;
	unsigned int mtu;
	int link_up;
	int running;
};

/* Linux side (host_linux.c) */
void host_dde_start(int cpumask_fix);		/* as netdde's main(), up to the initcalls */
int host_list_netdevs(char names[][16], int max);
int host_net_open(const char *ifname);		/* 0 or -errno */
int host_net_close(const char *ifname);
int host_net_xmit(const char *ifname, const void *frame, int len);
int host_net_info(const char *ifname, struct host_netdev_info *info);
int host_net_rx_mode(const char *ifname, int promisc, int allmulti,
		     const unsigned char *mc, int nmc);

/* libc side (host_main.c): a frame the DDE's RX callback delivered */
void host_deliver_rx(const char *ifname, const void *frame, int len);

#endif /* PORTER_HOST_BRIDGE_H */
