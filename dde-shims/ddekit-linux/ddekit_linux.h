/* ddekit_linux.h -- host extras of ddekit-linux: what the driver host sets up before the DDE runs */
#ifndef DDEKIT_LINUX_H
#define DDEKIT_LINUX_H

/*
 * ddekit-linux implements the DDEKit API (<ddekit/...h> of the Hurd's
 * libddekit) for an ordinary 32-bit Linux process.  The DDE itself only sees
 * that API; the functions below are for the driver host that owns the
 * process: they hand over the resources the Hurd would get from Mach (DMA
 * memory, interrupt lines, the PCI bus).
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* DDEKit's tick rate; <ddekit/timer.h> hard-codes the same value as HZ. */
#define DDEKIT_LINUX_HZ 100

/* How ddekit-linux stops the process; the harness names these statuses
 * (porter/harness/contract.py is generated from here: keep the comments). */
enum ddekit_linux_exit {
	DDEKIT_LINUX_EXIT_UNSUPPORTED = 97,	/**< stopped: a DDEKit function the Linux host cannot honour was called */
	DDEKIT_LINUX_EXIT_HOST_SETUP = 98,	/**< stopped: the driver host set DDEKit up wrongly (no arena, PCI callbacks, interrupt fd) */
};

/* The arena's page size, and how many pages page 0's allocation map covers
 * (bit p, byte p / 8, bit p % 8, is set while physical page p is allocated;
 * the harness's DMA guard reads it straight from the memfd). */
#define DDEKIT_LINUX_PAGE_SIZE 4096u
#define DDEKIT_LINUX_ARENA_MAP_PAGES (DDEKIT_LINUX_PAGE_SIZE * 8)

/*
 * DMA arena.  The harness creates a memfd, gives it to the device and to
 * this process; "physical address" = offset in the memfd.  Every DMA-able
 * allocation (ddekit_large_malloc, ddekit_contig_malloc, contiguous slabs)
 * comes from it.  Physical page 0 is never handed out, so a physical address
 * computed from a NULL or unmapped pointer never names a real buffer.
 *
 * size must be a multiple of 4096 and at least two pages; the memfd must be
 * at least that long.  Attach once, before the DDE allocates.
 * Returns 0, or -EINVAL (bad size, memfd too short), -EBUSY (already
 * attached), -EBADF, -ENOMEM, or -errno of mmap.
 */
int ddekit_linux_arena_attach(int memfd, size_t size);

/* Bytes of the arena currently allocated (slab chunks included). */
size_t ddekit_linux_arena_in_use(void);

/* Of those, the bytes slabs keep as spare chunks (at most one empty chunk each). */
size_t ddekit_linux_slab_spare_bytes(void);

/*
 * Interrupts.  The device signals interrupt line irq by writing to an
 * eventfd; bind it before the DDE requests the line.  ddekit_interrupt_attach
 * then starts the line's interrupt thread, which waits on the eventfd.
 * Returns 0, -EINVAL (irq out of 0..255), -EBADF, or -EBUSY (line attached).
 * eventfd < 0 unbinds.  The caller keeps ownership of the fd.
 */
int ddekit_linux_irq_bind(int irq, int eventfd);

/*
 * Level-triggered lines (PCI INTx through QEMU's irqfd): after the line's
 * handlers ran, the interrupt thread writes 1 to resamplefd, so the device
 * side re-checks the level (QEMU's resample eventfd). Returns 0, -EINVAL or
 * -EBADF; resamplefd < 0 turns it off. The caller keeps ownership of the fd.
 */
int ddekit_linux_irq_set_resample(int irq, int resamplefd);

/*
 * PCI.  Config space and enumeration belong to the harness; ddekit_pci_*
 * forward to these callbacks.  Every member is required.  Return 0 on
 * success, non-zero on failure (as the DDEKit functions they back).
 *   get_device: the nr-th device (0, 1, ...); non-zero past the last one.
 *   read/write: config space access of len 1, 2 or 4 bytes at pos.
 *   irq_enable: route interrupt pin (0 = INTA) and report its irq line.
 * The table is copied; NULL uninstalls it (an empty bus).
 */
struct ddekit_linux_pci_ops {
	int (*get_device)(int nr, int *bus, int *slot, int *func);
	int (*read)(int bus, int slot, int func, int pos, int len, uint32_t *val);
	int (*write)(int bus, int slot, int func, int pos, int len, uint32_t val);
	int (*irq_enable)(int bus, int slot, int func, int pin, int *irq);
};
void ddekit_linux_set_pci_ops(const struct ddekit_linux_pci_ops *ops);

/*
 * Functions the Linux host cannot honour call this: it prints
 * "ddekit-linux: <name> is not implemented on the Linux host; stopping"
 * to stderr and exits with DDEKIT_LINUX_EXIT_UNSUPPORTED.  Their names are
 * listed in ddekit_linux_unsupported.h and, at run time, here:
 */
void ddekit_linux_trace_and_stop(const char *name) __attribute__((noreturn));
extern const char *const ddekit_linux_unsupported[];  /* NULL-terminated */

/* <dde.h> of libddekit, not among the installed <ddekit/...h>. */
void ddekit_init(void);

#ifdef __cplusplus
}
#endif

#endif /* DDEKIT_LINUX_H */
