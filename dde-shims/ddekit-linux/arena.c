/* arena.c -- the DMA arena: a page allocator over the memfd the harness shares with the device */
#define _GNU_SOURCE 1
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <ddekit/panic.h>

#include "ddekit_linux.h"
#include "internal.h"

#define FREE_PAGE UINT32_MAX

/*
 * "Physical address" = offset in the memfd, so page p of the mapping is
 * physical page p.  Per page we keep which allocation covers it, which
 * lets a search skip a whole allocation at once and lets dkl_arena_tag()
 * find a slab chunk from any object address.  Page 0 is never allocated:
 * a physical address of 0 (or a small one computed from NULL) then never
 * names a live buffer, and a device told to DMA there is visibly wrong.
 *
 * Page 0 instead carries the allocation map for the harness's DMA checks:
 * bit p (byte p / 8, bit p % 8) is set while physical page p is allocated.
 * It covers the first 32768 pages (128 MiB); larger arenas are not mapped
 * beyond that.  The harness reads it straight from the memfd.
 */
#define MAP_PAGES DDEKIT_LINUX_ARENA_MAP_PAGES

static void map_mark(uint8_t *map, uint32_t first, uint32_t n, int allocated)
{
	uint32_t p;

	for (p = first; p < first + n && p < MAP_PAGES; p++) {
		if (allocated)
			map[p / 8] |= (uint8_t)(1u << (p % 8));
		else
			map[p / 8] &= (uint8_t)~(1u << (p % 8));
	}
}
static struct {
	pthread_mutex_t lock;
	uint8_t *base;          /* NULL until attached */
	size_t size;
	uint32_t npages;
	uint32_t *first_page;   /* per page: first page of its allocation, FREE_PAGE */
	uint32_t *run;          /* per first page: length of the allocation in pages */
	void **tag;             /* per first page: the allocator's tag */
	uint32_t next_fit;      /* where unconstrained searches start */
	size_t pages_in_use;
} arena = { .lock = PTHREAD_MUTEX_INITIALIZER };

int ddekit_linux_arena_attach(int memfd, size_t size)
{
	struct stat st;
	void *base;
	uint32_t npages, p;
	int ret = 0;

	if (size % DKL_PAGE_SIZE || size < 2 * DKL_PAGE_SIZE)
		return -EINVAL;
	if (fstat(memfd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < (uint64_t)size)
		return -EINVAL;

	pthread_mutex_lock(&arena.lock);
	if (arena.base) {
		ret = -EBUSY;
		goto out;
	}
	npages = (uint32_t)(size / DKL_PAGE_SIZE);
	arena.first_page = malloc(npages * sizeof(*arena.first_page));
	arena.run = calloc(npages, sizeof(*arena.run));
	arena.tag = calloc(npages, sizeof(*arena.tag));
	if (!arena.first_page || !arena.run || !arena.tag) {
		ret = -ENOMEM;
		goto fail;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (base == MAP_FAILED) {
		ret = -errno;
		goto fail;
	}
	for (p = 0; p < npages; p++)
		arena.first_page[p] = FREE_PAGE;
	memset(base, 0, DKL_PAGE_SIZE);        /* the allocation map: nothing allocated */
	arena.base = base;
	arena.size = size;
	arena.npages = npages;
	arena.next_fit = 1;
	arena.pages_in_use = 0;
	goto out;
fail:
	free(arena.first_page);
	free(arena.run);
	free(arena.tag);
	arena.first_page = arena.run = NULL;
	arena.tag = NULL;
out:
	pthread_mutex_unlock(&arena.lock);
	return ret;
}

size_t ddekit_linux_arena_in_use(void)
{
	size_t bytes;

	pthread_mutex_lock(&arena.lock);
	bytes = arena.pages_in_use * DKL_PAGE_SIZE;
	pthread_mutex_unlock(&arena.lock);
	return bytes;
}

static uint32_t align_up(uint32_t page, uint32_t align)
{
	return (page + align - 1) / align * align;
}

/*
 * First page of n free pages in [first, limit), aligned to align pages and
 * not crossing a multiple of boundary pages (0: no boundary); FREE_PAGE if
 * none.  Caller holds the lock.
 */
static uint32_t find_free(uint32_t n, uint32_t align, uint32_t boundary,
                          uint32_t first, uint32_t limit)
{
	uint32_t p = align_up(first, align);

	while (p < limit && limit - p >= n) {
		uint32_t q;

		if (boundary && p / boundary != (p + n - 1) / boundary) {
			p = align_up((p / boundary + 1) * boundary, align);
			continue;
		}
		for (q = p; q < p + n; q++)
			if (arena.first_page[q] != FREE_PAGE)
				break;
		if (q == p + n)
			return p;
		/* skip the whole allocation that is in the way */
		q = arena.first_page[q];
		p = align_up(q + arena.run[q], align);
	}
	return FREE_PAGE;
}

static int power_of_two(size_t x)
{
	return x && !(x & (x - 1));
}

void *dkl_arena_alloc(size_t size, size_t align, size_t boundary,
                      ddekit_addr_t low, ddekit_addr_t high,
                      void *tag, ddekit_addr_t *phys)
{
	uint32_t n, align_pages, boundary_pages, first, limit, p, q;

	if (!arena.base)
		dkl_host_setup_error("no DMA arena: the driver host must call "
		                     "ddekit_linux_arena_attach() before the DDE allocates DMA memory");
	if (size == 0 || size > arena.size)
		return NULL;
	if ((align && !power_of_two(align)) || (boundary && !power_of_two(boundary))) {
		dkl_warn("DMA allocation: alignment %#zx / boundary %#zx is not a power of two", align, boundary);
		return NULL;
	}
	n = (uint32_t)((size + DKL_PAGE_SIZE - 1) / DKL_PAGE_SIZE);
	align_pages = align > DKL_PAGE_SIZE ? (uint32_t)(align / DKL_PAGE_SIZE) : 1;
	boundary_pages = 0;
	if (boundary) {
		if (boundary < (size_t)n * DKL_PAGE_SIZE)
			return NULL;   /* cannot fit between two boundaries */
		boundary_pages = (uint32_t)(boundary / DKL_PAGE_SIZE);
	}
	if (low >= arena.size)
		return NULL;
	first = (uint32_t)((low + DKL_PAGE_SIZE - 1) / DKL_PAGE_SIZE);
	if (first == 0)
		first = 1;     /* physical page 0 is never handed out */
	limit = arena.npages;
	if (high < arena.size - 1)
		limit = (uint32_t)(((uint64_t)high + 1) / DKL_PAGE_SIZE);

	pthread_mutex_lock(&arena.lock);
	p = FREE_PAGE;
	if (align_pages == 1 && !boundary_pages && first == 1 && limit == arena.npages)
		p = find_free(n, 1, 0, arena.next_fit, limit);
	if (p == FREE_PAGE)
		p = find_free(n, align_pages, boundary_pages, first, limit);
	if (p == FREE_PAGE) {
		pthread_mutex_unlock(&arena.lock);
		return NULL;
	}
	for (q = p; q < p + n; q++)
		arena.first_page[q] = p;
	arena.run[p] = n;
	arena.tag[p] = tag;
	arena.pages_in_use += n;
	map_mark(arena.base, p, n, 1);
	arena.next_fit = p + n < arena.npages ? p + n : 1;
	pthread_mutex_unlock(&arena.lock);

	/* Fresh pages are zero, as Mach's vm_allocate_contiguous gives them. */
	memset(arena.base + (size_t)p * DKL_PAGE_SIZE, 0, (size_t)n * DKL_PAGE_SIZE);
	*phys = (ddekit_addr_t)p * DKL_PAGE_SIZE;
	return arena.base + (size_t)p * DKL_PAGE_SIZE;
}

/* Page index of virt inside the arena, or FREE_PAGE.  No lock needed: base
 * and size never change once attached. */
static uint32_t page_of(const void *virt)
{
	uintptr_t v = (uintptr_t)virt, b = (uintptr_t)arena.base;

	if (!arena.base || v < b || v - b >= arena.size)
		return FREE_PAGE;
	return (uint32_t)((v - b) / DKL_PAGE_SIZE);
}

int dkl_arena_is_allocation(const void *virt)
{
	uint32_t p = page_of(virt);
	int yes;

	if (p == FREE_PAGE || (uintptr_t)virt % DKL_PAGE_SIZE)
		return 0;
	pthread_mutex_lock(&arena.lock);
	yes = arena.first_page[p] == p;
	pthread_mutex_unlock(&arena.lock);
	return yes;
}

size_t dkl_arena_free(void *virt)
{
	uint32_t p = page_of(virt), n, q;

	pthread_mutex_lock(&arena.lock);
	if (p == FREE_PAGE || (uintptr_t)virt % DKL_PAGE_SIZE || arena.first_page[p] != p) {
		pthread_mutex_unlock(&arena.lock);
		ddekit_panic("ddekit-linux: %p is not the start of a DMA arena allocation", virt);
	}
	n = arena.run[p];
	for (q = p; q < p + n; q++)
		arena.first_page[q] = FREE_PAGE;
	arena.run[p] = 0;
	arena.tag[p] = NULL;
	arena.pages_in_use -= n;
	map_mark(arena.base, p, n, 0);
	pthread_mutex_unlock(&arena.lock);
	return (size_t)n * DKL_PAGE_SIZE;
}

void *dkl_arena_tag(const void *virt)
{
	uint32_t p = page_of(virt);
	void *tag = NULL;

	if (p == FREE_PAGE)
		return NULL;
	pthread_mutex_lock(&arena.lock);
	if (arena.first_page[p] != FREE_PAGE)
		tag = arena.tag[arena.first_page[p]];
	pthread_mutex_unlock(&arena.lock);
	return tag;
}
