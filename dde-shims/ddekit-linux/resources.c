/* resources.c -- DDEKit I/O resources: port ranges granted without ioperm, MMIO and ISA DMA unsupported */
#include <stdlib.h>

#include <ddekit/resources.h>

#include "ddekit_linux.h"

/*
 * The Hurd calls ioperm() here.  This process has no I/O privilege and
 * needs none: every in/out faults and the port-I/O trap (portio-trap/)
 * forwards it to the harness, which knows which ports belong to a device.
 * So a request only has to be a valid port range.
 */
int ddekit_request_io(ddekit_addr_t start, ddekit_addr_t count)
{
	return count == 0 || start > 0xffff || count > 0x10000 - start ? -1 : 0;
}

int ddekit_release_io(ddekit_addr_t start, ddekit_addr_t count)
{
	return ddekit_request_io(start, count);
}

int ddekit_request_mem(ddekit_addr_t start, ddekit_addr_t count, ddekit_addr_t *vaddr)
{
	(void)start, (void)count, (void)vaddr;
	ddekit_linux_trace_and_stop(__func__);
}

int ddekit_release_mem(ddekit_addr_t start, ddekit_addr_t count)
{
	(void)start, (void)count;
	ddekit_linux_trace_and_stop(__func__);
}

int ddekit_request_dma(int nr)
{
	(void)nr;
	ddekit_linux_trace_and_stop(__func__);
}

int ddekit_release_dma(int nr)
{
	(void)nr;
	ddekit_linux_trace_and_stop(__func__);
}

long ddekit_random(void)
{
	return random();
}
