/* pgtab.c -- DDEKit's virtual-to-physical table: registered regions, looked up both ways */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ddekit/panic.h>
#include <ddekit/pgtab.h>
#include <ddekit/printf.h>

#include "internal.h"

/*
 * The arena could translate by arithmetic alone, but then virt_to_phys
 * would succeed on freed or never-allocated arena memory.  Like the Hurd,
 * only registered regions translate; everything else answers -1 with the
 * Hurd's message.  Two arrays hold the same regions, one sorted by virtual
 * and one by physical start, for binary search: the DDE translates on every
 * packet, and kmalloc chunks make for many regions.
 */
struct region {
	uintptr_t virt;
	ddekit_addr_t phys;
	size_t size;
	int type;
};

static pthread_mutex_t pgtab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct region *by_virt, *by_phys;
static size_t nregions, capacity;

/* Index of the first region whose key is > key. */
static size_t upper_bound(const struct region *r, int on_phys, uintptr_t key)
{
	size_t lo = 0, hi = nregions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uintptr_t k = on_phys ? r[mid].phys : r[mid].virt;

		if (k <= key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The region containing key, or NULL.  Caller holds the lock. */
static struct region *containing(struct region *r, int on_phys, uintptr_t key)
{
	size_t i = upper_bound(r, on_phys, key);

	if (i == 0)
		return NULL;
	r += i - 1;
	return key - (on_phys ? r->phys : r->virt) < r->size ? r : NULL;
}

static void insert_at(struct region *r, size_t i, const struct region *reg)
{
	memmove(&r[i + 1], &r[i], (nregions - i) * sizeof(*r));
	r[i] = *reg;
}

static void remove_at(struct region *r, size_t i)
{
	memmove(&r[i], &r[i + 1], (nregions - i - 1) * sizeof(*r));
}

void ddekit_pgtab_set_region_with_size(void *virt, ddekit_addr_t phys, int size, int type)
{
	struct region reg = { (uintptr_t)virt, phys, (size_t)size, type };
	size_t i, j;

	if (size <= 0) {
		dkl_warn("pgtab: region %p of size %d ignored", virt, size);
		return;
	}
	pthread_mutex_lock(&pgtab_lock);
	if (nregions == capacity) {
		size_t cap = capacity ? 2 * capacity : 256;
		struct region *v = realloc(by_virt, cap * sizeof(*v));

		if (v)
			by_virt = v;
		struct region *p = v ? realloc(by_phys, cap * sizeof(*p)) : NULL;

		if (p)
			by_phys = p;
		if (!v || !p) {
			pthread_mutex_unlock(&pgtab_lock);
			ddekit_panic("ddekit-linux: no memory for the pgtab");
		}
		capacity = cap;
	}
	/* Overlapping regions (virtual or physical) would make translation
	 * ambiguous: a bug in whoever registers them, stop at the cause. */
	i = upper_bound(by_virt, 0, reg.virt);
	j = upper_bound(by_phys, 1, reg.phys);
	if ((i > 0 && reg.virt - by_virt[i - 1].virt < by_virt[i - 1].size)
	    || (i < nregions && by_virt[i].virt - reg.virt < reg.size)
	    || (j > 0 && reg.phys - by_phys[j - 1].phys < by_phys[j - 1].size)
	    || (j < nregions && by_phys[j].phys - reg.phys < reg.size)) {
		pthread_mutex_unlock(&pgtab_lock);
		ddekit_panic("ddekit-linux: pgtab region %p+%#x (phys %#lx) overlaps a registered one",
		             virt, size, phys);
	}
	insert_at(by_virt, i, &reg);
	insert_at(by_phys, j, &reg);
	nregions++;
	pthread_mutex_unlock(&pgtab_lock);
}

void ddekit_pgtab_set_region(void *virt, ddekit_addr_t phys, int pages, int type)
{
	ddekit_pgtab_set_region_with_size(virt, phys, pages * (int)DKL_PAGE_SIZE, type);
}

/* Removes the region containing virt (type is not checked, as on the Hurd). */
void ddekit_pgtab_clear_region(void *virt, int type)
{
	struct region *r, reg;
	size_t i;

	(void)type;
	pthread_mutex_lock(&pgtab_lock);
	r = containing(by_virt, 0, (uintptr_t)virt);
	if (r) {
		reg = *r;
		remove_at(by_virt, (size_t)(r - by_virt));
		/* physical ranges do not overlap either: the same region is the
		 * last one starting at or below reg.phys */
		i = upper_bound(by_phys, 1, reg.phys) - 1;
		remove_at(by_phys, i);
		nregions--;
	}
	pthread_mutex_unlock(&pgtab_lock);
}

ddekit_addr_t ddekit_pgtab_get_physaddr(const void *virt)
{
	struct region *r;
	ddekit_addr_t phys = 0;

	pthread_mutex_lock(&pgtab_lock);
	r = containing(by_virt, 0, (uintptr_t)virt);
	if (r)
		phys = r->phys + ((uintptr_t)virt - r->virt);
	pthread_mutex_unlock(&pgtab_lock);
	if (!r) {
		ddekit_printf("a virtual address %p doesn't exist.\n", virt);
		return (ddekit_addr_t)-1;
	}
	return phys;
}

ddekit_addr_t ddekit_pgtab_get_virtaddr(const ddekit_addr_t physical)
{
	struct region *r;
	ddekit_addr_t virt = 0;

	pthread_mutex_lock(&pgtab_lock);
	r = containing(by_phys, 1, physical);
	if (r)
		virt = r->virt + (physical - r->phys);
	pthread_mutex_unlock(&pgtab_lock);
	if (!r) {
		ddekit_printf("a physical address %#lx doesn't exist.\n", physical);
		return (ddekit_addr_t)-1;
	}
	return virt;
}

/* The region's type, -1 when virt is in none. */
int ddekit_pgtab_get_type(const void *virt)
{
	struct region *r;
	int type;

	pthread_mutex_lock(&pgtab_lock);
	r = containing(by_virt, 0, (uintptr_t)virt);
	type = r ? r->type : -1;
	pthread_mutex_unlock(&pgtab_lock);
	return type;
}

/* The region's size in bytes, 0 when virt is in none. */
int ddekit_pgtab_get_size(const void *virt)
{
	struct region *r;
	int size;

	pthread_mutex_lock(&pgtab_lock);
	r = containing(by_virt, 0, (uintptr_t)virt);
	size = r ? (int)r->size : 0;
	pthread_mutex_unlock(&pgtab_lock);
	return size;
}
