/* porter_slab.c - whole-page kzalloc blocks and the kfree that knows them (see porter/slab.h). */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <porter/gfp.h>
#include <porter/slab.h>

struct porter_page_block {
	struct porter_page_block *next;
	void *virt;
	size_t size;
};

static struct porter_page_block *porter_page_blocks;
static DEFINE_SPINLOCK(porter_page_blocks_lock);

void *porter_kzalloc_pages(size_t size, gfp_t gfp_mask)
{
	struct porter_page_block *b = kmalloc(sizeof(*b), gfp_mask & ~__GFP_ZERO);
	unsigned long flags;

	if (!b)
		return NULL;
	b->virt = porter_alloc_pages_exact(size, gfp_mask | __GFP_ZERO);
	if (!b->virt) {
		kfree(b);
		return NULL;
	}
	b->size = size;
	spin_lock_irqsave(&porter_page_blocks_lock, flags);
	b->next = porter_page_blocks;
	porter_page_blocks = b;
	spin_unlock_irqrestore(&porter_page_blocks_lock, flags);
	return b->virt;
}

void porter_kfree(const void *ptr)
{
	struct porter_page_block **pp, *b = NULL;
	unsigned long flags;

	if (ptr && !((unsigned long)ptr & ~PAGE_MASK)) {
		spin_lock_irqsave(&porter_page_blocks_lock, flags);
		for (pp = &porter_page_blocks; *pp; pp = &(*pp)->next) {
			if ((*pp)->virt == ptr) {
				b = *pp;
				*pp = b->next;
				break;
			}
		}
		spin_unlock_irqrestore(&porter_page_blocks_lock, flags);
	}
	if (!b) {
		kfree(ptr);
		return;
	}
	porter_free_pages_exact(b->virt, b->size);
	kfree(b);
}
