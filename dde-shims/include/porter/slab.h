/* porter/slab.h - kmalloc of whole pages, page-aligned as Linux's slab gives it. */
#ifndef PORTER_SLAB_H
#define PORTER_SLAB_H

#include <linux/slab.h>
#include <porter/gfp.h>

/*
 * Why: the DDE's kmalloc() keeps a back-pointer in the word before every
 * object (lib/src/arch/l4/kmalloc.c), so no kmalloc'd block starts on a page.
 * Linux's slab gives a request of whole pages page-aligned memory, and code
 * that asks for PAGE_ALIGN(size) and hands the device a page frame number
 * (virtio_pci's ring up to 2.6.28) relies on it.  porter takes such blocks
 * from the page allocator and remembers them, so porter_kfree() can tell
 * them from kmalloc'd objects.
 */
void *porter_kzalloc_pages(size_t size, gfp_t gfp_mask);

/* kfree() for memory from kmalloc() or porter_kzalloc_pages(). */
void porter_kfree(const void *ptr);

#endif /* PORTER_SLAB_H */
