/* memory.c -- DDEKit allocators: large/contiguous blocks and contiguous slabs from the DMA arena, simple malloc */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <ddekit/memory.h>
#include <ddekit/panic.h>
#include <ddekit/pgtab.h>

#include "ddekit_linux.h"
#include "internal.h"

/*
 * What is DMA-able and what is not follows the Hurd: large blocks and slabs
 * made with contiguous=1 (all of the DDE's kmem caches, hence kmalloc) are
 * physically contiguous and registered in the pgtab, so virt_to_phys works
 * on them; ddekit_simple_malloc memory has no physical address.
 */

/* Tag of arena allocations made by ddekit_large_malloc/ddekit_contig_malloc,
 * to tell them from slab chunks in ddekit_large_free. */
static char large_block_tag;

static void *block_alloc(const char *who, size_t size, size_t align, size_t boundary,
                         ddekit_addr_t low, ddekit_addr_t high, int type)
{
	ddekit_addr_t phys;
	void *p = dkl_arena_alloc(size, align, boundary, low, high, &large_block_tag, &phys);

	if (!p) {
		dkl_warn("%s(%zu) failed: no fitting range left in the DMA arena (%zu bytes in use)",
		         who, size, ddekit_linux_arena_in_use());
		return NULL;
	}
	ddekit_pgtab_set_region_with_size(p, phys, (int)size, type);
	return p;
}

void *ddekit_large_malloc(int size)
{
	if (size <= 0)
		return NULL;
	return block_alloc(__func__, (size_t)size, 0, 0, 0, ~(ddekit_addr_t)0, PTE_TYPE_LARGE);
}

/* Also frees ddekit_contig_malloc blocks: the API has no contig_free. */
void ddekit_large_free(void *p)
{
	if (!p)
		return;
	if (!dkl_arena_is_allocation(p) || dkl_arena_tag(p) != &large_block_tag)
		ddekit_panic("ddekit_large_free(%p): not a block from ddekit_large_malloc", p);
	ddekit_pgtab_clear_region(p, PTE_TYPE_LARGE);
	dkl_arena_free(p);
}

/* [low, high] is the physical range the block must lie in; alignment and
 * boundary (no crossing of a multiple of it) are powers of two or 0. */
void *ddekit_contig_malloc(unsigned long size, unsigned long low, unsigned long high,
                           unsigned long alignment, unsigned long boundary)
{
	if (size == 0 || low > high)
		return NULL;
	return block_alloc(__func__, size, alignment, boundary, low, high, PTE_TYPE_CONTIG);
}

void *ddekit_simple_malloc(unsigned size)
{
	return malloc(size);
}

void ddekit_simple_free(void *p)
{
	free(p);
}

/*
 * Slabs.  A contiguous slab carves objects out of chunks of arena pages;
 * each chunk is one pgtab region, and its arena tag leads ddekit_slab_free
 * from an object back to the chunk.  A chunk whose objects are all free goes
 * back to the arena, except one per slab kept as a spare so that a single
 * object allocated and freed in a loop does not map and zero pages each time.
 * A non-contiguous slab needs no physical addresses: its objects are plain
 * malloc blocks.
 */
#define SLAB_ALIGN       64u                  /* cache line, as the Hurd's DMA slabs */

/* Bytes of the arena held as spare chunks by all slabs: an allocator cache, not
 * memory anyone allocated, which a leak check leaves out (the STATS reply). */
static size_t spare_bytes;
#define SLAB_CHUNK_BYTES (4u * DKL_PAGE_SIZE)

struct slab_chunk {
	struct slab_chunk *prev, *next;   /* on the slab's partial or full list */
	struct ddekit_slab *slab;
	uint8_t *base;
	void *free_objs;                  /* free list threaded through the objects */
	unsigned nfree;
};

struct chunk_list {
	struct slab_chunk *head;
};

struct ddekit_slab {
	pthread_mutex_t lock;
	unsigned objsize;
	int contiguous;
	size_t chunk_bytes;
	unsigned per_chunk;
	struct chunk_list partial;        /* chunks with free objects */
	struct chunk_list full;
	struct slab_chunk *spare;         /* one chunk with every object free */
	unsigned long live;               /* objects handed out */
	void *data;
};

static void list_add(struct chunk_list *list, struct slab_chunk *c)
{
	c->prev = NULL;
	c->next = list->head;
	if (list->head)
		list->head->prev = c;
	list->head = c;
}

static void list_del(struct chunk_list *list, struct slab_chunk *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		list->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Under slab->lock. */
static void set_spare(struct ddekit_slab *slab, struct slab_chunk *c)
{
	if (slab->spare)
		__atomic_sub_fetch(&spare_bytes, slab->chunk_bytes, __ATOMIC_RELAXED);
	if (c)
		__atomic_add_fetch(&spare_bytes, slab->chunk_bytes, __ATOMIC_RELAXED);
	slab->spare = c;
}

size_t ddekit_linux_slab_spare_bytes(void)
{
	return __atomic_load_n(&spare_bytes, __ATOMIC_RELAXED);
}

struct ddekit_slab *ddekit_slab_init(unsigned size, int contiguous)
{
	struct ddekit_slab *slab = calloc(1, sizeof(*slab));
	unsigned objsize = size < sizeof(void *) ? (unsigned)sizeof(void *) : size;

	if (!slab || size == 0) {
		free(slab);
		return NULL;
	}
	pthread_mutex_init(&slab->lock, NULL);
	slab->contiguous = contiguous;
	if (contiguous) {
		objsize = (objsize + SLAB_ALIGN - 1) / SLAB_ALIGN * SLAB_ALIGN;
		slab->chunk_bytes = objsize > SLAB_CHUNK_BYTES
			? ((size_t)objsize + DKL_PAGE_SIZE - 1) / DKL_PAGE_SIZE * DKL_PAGE_SIZE
			: SLAB_CHUNK_BYTES;
		slab->per_chunk = (unsigned)(slab->chunk_bytes / objsize);
	}
	slab->objsize = objsize;
	return slab;
}

static struct slab_chunk *chunk_new(struct ddekit_slab *slab)
{
	struct slab_chunk *c = calloc(1, sizeof(*c));
	ddekit_addr_t phys;
	unsigned i;

	if (!c)
		return NULL;
	c->base = dkl_arena_alloc(slab->chunk_bytes, 0, 0, 0, ~(ddekit_addr_t)0, c, &phys);
	if (!c->base) {
		dkl_warn("ddekit_slab_alloc: no room for a %zu-byte chunk in the DMA arena "
		         "(%zu bytes in use)", slab->chunk_bytes, ddekit_linux_arena_in_use());
		free(c);
		return NULL;
	}
	ddekit_pgtab_set_region_with_size(c->base, phys, (int)slab->chunk_bytes, PTE_TYPE_UMA);
	c->slab = slab;
	/* lowest address first out */
	for (i = slab->per_chunk; i-- > 0;) {
		void **obj = (void **)(c->base + (size_t)i * slab->objsize);

		*obj = c->free_objs;
		c->free_objs = obj;
	}
	c->nfree = slab->per_chunk;
	return c;
}

static void chunk_release(struct slab_chunk *c)
{
	ddekit_pgtab_clear_region(c->base, PTE_TYPE_UMA);
	dkl_arena_free(c->base);
	free(c);
}

void *ddekit_slab_alloc(struct ddekit_slab *slab)
{
	struct slab_chunk *c;
	void *obj;

	if (!slab->contiguous) {
		obj = malloc(slab->objsize);
		if (obj) {
			pthread_mutex_lock(&slab->lock);
			slab->live++;
			pthread_mutex_unlock(&slab->lock);
		}
		return obj;
	}

	pthread_mutex_lock(&slab->lock);
	c = slab->partial.head;
	if (!c) {
		c = slab->spare;
		set_spare(slab, NULL);
		if (!c)
			c = chunk_new(slab);
		if (!c) {
			pthread_mutex_unlock(&slab->lock);
			return NULL;
		}
		list_add(&slab->partial, c);
	}
	obj = c->free_objs;
	c->free_objs = *(void **)obj;
	*(void **)obj = NULL;
	if (--c->nfree == 0) {
		list_del(&slab->partial, c);
		list_add(&slab->full, c);
	}
	slab->live++;
	pthread_mutex_unlock(&slab->lock);
	return obj;
}

void ddekit_slab_free(struct ddekit_slab *slab, void *objp)
{
	struct slab_chunk *c;
	uintptr_t offset;
	void *tag;

	if (!objp)
		return;
	if (!slab->contiguous) {
		free(objp);
		pthread_mutex_lock(&slab->lock);
		slab->live--;
		pthread_mutex_unlock(&slab->lock);
		return;
	}

	tag = dkl_arena_tag(objp);
	c = tag == (void *)&large_block_tag ? NULL : tag;
	offset = c ? (uintptr_t)objp - (uintptr_t)c->base : 0;
	if (!c || c->slab != slab
	    || offset % slab->objsize || offset / slab->objsize >= slab->per_chunk)
		ddekit_panic("ddekit_slab_free(%p, %p): not an object of this slab", (void *)slab, objp);

	pthread_mutex_lock(&slab->lock);
	if (c->nfree == 0) {
		list_del(&slab->full, c);
		list_add(&slab->partial, c);
	}
	*(void **)objp = c->free_objs;
	c->free_objs = objp;
	slab->live--;
	if (++c->nfree == slab->per_chunk) {
		list_del(&slab->partial, c);
		if (!slab->spare) {
			set_spare(slab, c);
			c = NULL;
		}
	} else {
		c = NULL;
	}
	pthread_mutex_unlock(&slab->lock);
	if (c)
		chunk_release(c);
}

/*
 * Destroying a slab that still has objects out would turn them into
 * dangling memory the DDE keeps using; Linux's kmem_cache_destroy refuses
 * the same way (complains and leaks).
 */
void ddekit_slab_destroy(struct ddekit_slab *slab)
{
	struct slab_chunk *c;

	pthread_mutex_lock(&slab->lock);
	if (slab->live) {
		unsigned long live = slab->live;

		pthread_mutex_unlock(&slab->lock);
		dkl_warn("ddekit_slab_destroy: %lu objects still allocated; slab %p is leaked",
		         live, (void *)slab);
		return;
	}
	while ((c = slab->partial.head)) {
		list_del(&slab->partial, c);
		chunk_release(c);
	}
	if (slab->spare) {
		c = slab->spare;
		set_spare(slab, NULL);
		chunk_release(c);
	}
	pthread_mutex_unlock(&slab->lock);
	pthread_mutex_destroy(&slab->lock);
	free(slab);
}

void ddekit_slab_set_data(struct ddekit_slab *slab, void *data)
{
	slab->data = data;
}

void *ddekit_slab_get_data(struct ddekit_slab *slab)
{
	return slab->data;
}

/* Slabs keep at most one empty chunk each; there is no shared page cache
 * whose size this hint could set. */
void ddekit_slab_setup_page_cache(unsigned pages)
{
	(void)pages;
}
