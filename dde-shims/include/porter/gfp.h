/* porter/gfp.h - alloc_pages_exact()/free_pages_exact(), which the DDE lacks. */
#ifndef PORTER_GFP_H
#define PORTER_GFP_H

#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/string.h>
#include <linux/slab.h>

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

/*
 * Why: the DDE's alloc_page() kmallocs a struct page and files it in a page
 * cache that __free_pages() never frees (neither the struct page nor the cache
 * entry) and may not even find (dde_page_cache_remove() stops at the first
 * entry of a bucket).  A driver that allocates and frees pages per frame
 * (virtio_net's RX pages) leaks and leaves stale entries for virt_to_page().
 * porter's pages are never looked up by address (porter's scatterlists and
 * page_address() use page->virtual), so they need no cache at all.  Their
 * mapping points at a porter marker, so code that frees an skb's fragments
 * (porter/skbuff.h) can tell them from pages of the DDE's own allocator.
 */
extern const char porter_page_mark[];
#define PORTER_PAGE_MAPPING ((struct address_space *)porter_page_mark)

static inline int porter_page_is_ours(const struct page *page)
{
	return page->mapping == PORTER_PAGE_MAPPING;
}

static inline struct page *porter_alloc_page(gfp_t gfp_mask)
{
	struct page *page = kzalloc(sizeof(*page), gfp_mask & ~__GFP_ZERO);

	if (!page)
		return NULL;
	page->virtual = porter_alloc_pages_exact(PAGE_SIZE, gfp_mask);
	if (!page->virtual) {
		kfree(page);
		return NULL;
	}
	atomic_set(&page->_count, 1);
	page->mapping = PORTER_PAGE_MAPPING;
	return page;
}

static inline void porter___free_pages(struct page *page, unsigned int order)
{
	BUG_ON(order != 0);	/* porter_alloc_page() hands out single pages */
	porter_free_pages_exact(page->virtual, PAGE_SIZE);
	kfree(page);
}

#endif /* PORTER_GFP_H */
