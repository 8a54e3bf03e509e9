/* ddekit_linux_unsupported.h -- the DDEKit functions the Linux host cannot honour (they trace and stop) */
#ifndef DDEKIT_LINUX_UNSUPPORTED_H
#define DDEKIT_LINUX_UNSUPPORTED_H

/*
 * One X(name) per function.  Each of them calls
 * ddekit_linux_trace_and_stop(__func__), never returns, and exits the process
 * with DDEKIT_LINUX_EXIT_UNSUPPORTED.  porter counts this list; keep one
 * entry per line.  Why each one cannot be honoured:
 *   request_mem/release_mem: MMIO BARs are not emulated (only port I/O is
 *     trapped; legacy virtio-pci needs nothing else).
 *   request_dma/release_dma: ISA DMA channels do not exist on the harness bus.
 */
#define DDEKIT_LINUX_UNSUPPORTED_LIST(X) \
	X(ddekit_request_dma) \
	X(ddekit_release_dma) \
	X(ddekit_request_mem) \
	X(ddekit_release_mem)

#endif /* DDEKIT_LINUX_UNSUPPORTED_H */
