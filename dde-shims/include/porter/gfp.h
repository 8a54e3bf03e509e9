/* porter/gfp.h - alloc_pages_exact()/free_pages_exact(), which the DDE lacks. */
#ifndef PORTER_GFP_H
#define PORTER_GFP_H

#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/string.h>

/*
 * The DDE's __get_free_pages() takes whole blocks from ddekit_large_malloc
 * (physically contiguous, registered in the pgtab), so the exact size needs no
 * splitting.  It ignores __GFP_ZERO, and virtio_pci relies on a zeroed ring.
 */
static inline void *porter_alloc_pages_exact(size_t size, gfp_t gfp_mask)
{
	void *virt = (void *)__get_free_pages(gfp_mask & ~__GFP_ZERO, get_order(size));

	if (virt && (gfp_mask & __GFP_ZERO))
		memset(virt, 0, size);
	return virt;
}

static inline void porter_free_pages_exact(void *virt, size_t size)
{
	free_pages((unsigned long)virt, get_order(size));
}

#endif /* PORTER_GFP_H */
