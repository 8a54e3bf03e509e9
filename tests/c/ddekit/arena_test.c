/* arena_test.c -- the memfd DMA arena: large_malloc, contig_malloc, slabs and the pgtab over it */
#define _GNU_SOURCE 1
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ddekit/memory.h>
#include <ddekit/pgtab.h>

#include "ddekit_linux.h"
#include "check.h"

#define PAGE 4096u
#define ARENA_SIZE (4u << 20)            /* 1024 pages */
#define NO_PHYS ((ddekit_addr_t)-1)

static int memfd;

/* The device's view: what the memfd holds at a physical address. */
static void check_device_sees(const void *virt, ddekit_addr_t phys, size_t len)
{
	char *buf = malloc(len);

	CHECK(buf);
	CHECK_EQ(pread(memfd, buf, len, (off_t)phys), len);
	CHECK(memcmp(buf, virt, len) == 0);
	free(buf);
}

static void fill(void *p, size_t len, unsigned seed)
{
	unsigned char *c = p;
	size_t i;

	for (i = 0; i < len; i++)
		c[i] = (unsigned char)(seed * 31 + i * 7);
}

static void test_attach(void)
{
	memfd = memfd_create("dma-arena", MFD_CLOEXEC);
	CHECK(memfd >= 0);
	CHECK_EQ(ftruncate(memfd, ARENA_SIZE), 0);
	CHECK_EQ(ddekit_linux_arena_attach(memfd, ARENA_SIZE - 1), -EINVAL);   /* not whole pages */
	CHECK_EQ(ddekit_linux_arena_attach(memfd, 2 * ARENA_SIZE), -EINVAL);   /* beyond the memfd */
	CHECK_EQ(ddekit_linux_arena_attach(-1, ARENA_SIZE), -EBADF);
	CHECK_EQ(ddekit_linux_arena_attach(memfd, ARENA_SIZE), 0);
	CHECK_EQ(ddekit_linux_arena_attach(memfd, ARENA_SIZE), -EBUSY);
	CHECK_EQ(ddekit_linux_arena_in_use(), 0);
	PASS("attach");
}

static void test_large_malloc(void)
{
	char *p = ddekit_large_malloc(10000), *q;
	ddekit_addr_t phys;
	int i;

	CHECK(p);
	phys = ddekit_pgtab_get_physaddr(p);
	CHECK(phys != NO_PHYS);
	CHECK(phys >= PAGE);                         /* never physical page 0 */
	CHECK_EQ(phys % PAGE, 0);
	CHECK(phys + 10000 <= ARENA_SIZE);
	for (i = 0; i < 10000; i++)
		CHECK_EQ(p[i], 0);                   /* fresh memory is zero */
	fill(p, 10000, 1);
	check_device_sees(p, phys, 10000);           /* phys = offset in the memfd */
	CHECK_EQ(pwrite(memfd, "device wrote this", 17, (off_t)phys + 5000), 17);
	CHECK(memcmp(p + 5000, "device wrote this", 17) == 0);
	for (i = 0; i < 10000; i += 1111)
		CHECK_EQ(ddekit_pgtab_get_physaddr(p + i), phys + (ddekit_addr_t)i);
	CHECK_EQ(ddekit_pgtab_get_virtaddr(phys + 123), (uintptr_t)p + 123);
	CHECK_EQ(ddekit_pgtab_get_virtaddr(phys + 9999), (uintptr_t)p + 9999);
	CHECK_EQ(ddekit_pgtab_get_type(p + 42), PTE_TYPE_LARGE);
	CHECK_EQ(ddekit_pgtab_get_size(p), 10000);
	CHECK_EQ(ddekit_linux_arena_in_use(), 3 * PAGE);

	/* a multi-page block is physically contiguous */
	q = ddekit_large_malloc(5 * PAGE + 1);
	CHECK(q);
	for (i = 0; i <= 5; i++)
		CHECK_EQ(ddekit_pgtab_get_physaddr(q + i * PAGE),
		         ddekit_pgtab_get_physaddr(q) + (ddekit_addr_t)i * PAGE);
	CHECK_EQ(ddekit_linux_arena_in_use(), 9 * PAGE);

	ddekit_large_free(p);
	ddekit_large_free(q);
	/* freed memory no longer translates (prints the Hurd's message) */
	CHECK_EQ(ddekit_pgtab_get_physaddr(p), NO_PHYS);
	CHECK_EQ(ddekit_pgtab_get_virtaddr(phys), NO_PHYS);
	CHECK_EQ(ddekit_linux_arena_in_use(), 0);
	CHECK(ddekit_large_malloc(0) == NULL);
	CHECK(ddekit_large_malloc(ARENA_SIZE) == NULL);   /* page 0 is reserved: never fits */
	PASS("large_malloc");
}

/* Exhaust the arena page by page: every page but physical page 0, once. */
static void test_page_zero_never_returned(void)
{
	static void *pages[ARENA_SIZE / PAGE];
	static char seen[ARENA_SIZE / PAGE];
	unsigned n = 0, i;
	void *p;

	while ((p = ddekit_large_malloc(PAGE))) {
		ddekit_addr_t phys = ddekit_pgtab_get_physaddr(p);

		CHECK(n < ARENA_SIZE / PAGE);
		CHECK(phys != NO_PHYS && phys != 0 && phys < ARENA_SIZE);
		CHECK(!seen[phys / PAGE]);
		seen[phys / PAGE] = 1;
		pages[n++] = p;
	}
	CHECK_EQ(n, ARENA_SIZE / PAGE - 1);
	CHECK(!seen[0]);
	CHECK_EQ(ddekit_linux_arena_in_use(), ARENA_SIZE - PAGE);
	for (i = 0; i < n; i++)
		ddekit_large_free(pages[i]);
	CHECK_EQ(ddekit_linux_arena_in_use(), 0);
	PASS("page_zero_never_returned");
}

static int by_address(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

static void test_slab_contiguous(void)
{
	enum { N = 300, SIZE = 200 };
	struct ddekit_slab *slab = ddekit_slab_init(SIZE, 1);
	uintptr_t objs[N], sorted[N];
	int i, marker;

	CHECK(slab);
	ddekit_slab_set_data(slab, &marker);
	CHECK(ddekit_slab_get_data(slab) == &marker);
	for (i = 0; i < N; i++) {
		char *o = ddekit_slab_alloc(slab);
		ddekit_addr_t phys;

		CHECK(o);
		CHECK_EQ((uintptr_t)o % 64, 0);              /* cache-line aligned, as the Hurd's */
		phys = ddekit_pgtab_get_physaddr(o);
		CHECK(phys != NO_PHYS && phys >= PAGE && phys + SIZE <= ARENA_SIZE);
		CHECK_EQ(ddekit_pgtab_get_physaddr(o + SIZE - 1), phys + SIZE - 1);
		CHECK_EQ(ddekit_pgtab_get_virtaddr(phys), (uintptr_t)o);
		fill(o, SIZE, (unsigned)i);
		check_device_sees(o, phys, SIZE);
		objs[i] = (uintptr_t)o;
	}
	memcpy(sorted, objs, sizeof(objs));
	qsort(sorted, N, sizeof(sorted[0]), by_address);
	for (i = 1; i < N; i++)
		CHECK(sorted[i] - sorted[i - 1] >= SIZE);    /* no two objects overlap */
	for (i = 0; i < N; i++) {
		char expect[SIZE];

		fill(expect, SIZE, (unsigned)i);
		CHECK(memcmp((void *)objs[i], expect, SIZE) == 0);
	}
	CHECK(ddekit_linux_arena_in_use() >= N * SIZE);
	for (i = 0; i < N; i++)
		ddekit_slab_free(slab, (void *)objs[i]);
	/* one empty chunk may stay as the slab's spare, and is counted as one */
	CHECK(ddekit_linux_arena_in_use() <= 4 * PAGE);
	CHECK_EQ(ddekit_linux_slab_spare_bytes(), ddekit_linux_arena_in_use());
	objs[0] = (uintptr_t)ddekit_slab_alloc(slab);     /* the spare is in use again */
	CHECK(objs[0]);
	CHECK_EQ(ddekit_linux_slab_spare_bytes(), 0);
	ddekit_slab_free(slab, (void *)objs[0]);
	CHECK_EQ(ddekit_linux_slab_spare_bytes(), 4 * PAGE);
	ddekit_slab_destroy(slab);
	CHECK_EQ(ddekit_linux_arena_in_use(), 0);
	CHECK_EQ(ddekit_linux_slab_spare_bytes(), 0);

	/* objects bigger than a chunk are still contiguous */
	slab = ddekit_slab_init(20000, 1);
	for (i = 0; i < 3; i++) {
		char *o = ddekit_slab_alloc(slab);

		CHECK(o);
		CHECK_EQ(ddekit_pgtab_get_physaddr(o + 19999), ddekit_pgtab_get_physaddr(o) + 19999);
		objs[i] = (uintptr_t)o;
	}
	for (i = 0; i < 3; i++)
		ddekit_slab_free(slab, (void *)objs[i]);
	ddekit_slab_destroy(slab);
	CHECK_EQ(ddekit_linux_arena_in_use(), 0);
	PASS("slab_contiguous");
}

struct worker {
	struct ddekit_slab *slab;
	unsigned seed;
};

/* Threads allocating and freeing from one slab never get the same object. */
static void *slab_worker(void *arg)
{
	struct worker *w = arg;
	void *held[64];
	int round, i;

	for (round = 0; round < 200; round++) {
		for (i = 0; i < 64; i++) {
			held[i] = ddekit_slab_alloc(w->slab);
			CHECK(held[i]);
			fill(held[i], 96, w->seed + (unsigned)i);
		}
		for (i = 0; i < 64; i++) {
			char expect[96];

			fill(expect, 96, w->seed + (unsigned)i);
			CHECK(memcmp(held[i], expect, 96) == 0);
			ddekit_slab_free(w->slab, held[i]);
		}
	}
	return NULL;
}

static void test_slab_threads(void)
{
	struct ddekit_slab *slab = ddekit_slab_init(96, 1);
	struct worker w[4];
	pthread_t t[4];
	int i;

	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){ slab, (unsigned)i * 1000 };
		CHECK_EQ(pthread_create(&t[i], NULL, slab_worker, &w[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ddekit_slab_destroy(slab);
	CHECK_EQ(ddekit_linux_arena_in_use(), 0);
	PASS("slab_threads");
}

static void test_not_dma_able(void)
{
	struct ddekit_slab *slab = ddekit_slab_init(64, 0);
	void *o, *m;

	o = ddekit_slab_alloc(slab);
	CHECK(o);
	CHECK_EQ(ddekit_pgtab_get_physaddr(o), NO_PHYS);
	CHECK_EQ(ddekit_linux_arena_in_use(), 0);
	ddekit_slab_free(slab, o);
	ddekit_slab_destroy(slab);

	m = ddekit_simple_malloc(100);
	CHECK(m);
	CHECK_EQ(ddekit_pgtab_get_physaddr(m), NO_PHYS);
	CHECK_EQ(ddekit_linux_arena_in_use(), 0);
	ddekit_simple_free(m);
	PASS("not_dma_able");
}

static void test_contig_malloc(void)
{
	void *one = ddekit_large_malloc(PAGE);          /* move the free space off alignment */
	char *p, *q, *r;
	ddekit_addr_t phys;

	p = ddekit_contig_malloc(2 * PAGE, 0x10000, 0x3fffff, 0x10000, 0);
	CHECK(p);
	phys = ddekit_pgtab_get_physaddr(p);
	CHECK_EQ(phys % 0x10000, 0);
	CHECK(phys >= 0x10000 && phys + 2 * PAGE - 1 <= 0x3fffff);
	CHECK_EQ(ddekit_pgtab_get_type(p), PTE_TYPE_CONTIG);
	check_device_sees(p, phys, 2 * PAGE);

	q = ddekit_contig_malloc(2 * PAGE, 0, ~0ul, 0, 2 * PAGE);   /* must not cross 8 KiB lines */
	CHECK(q);
	phys = ddekit_pgtab_get_physaddr(q);
	CHECK_EQ(phys / (2 * PAGE), (phys + 2 * PAGE - 1) / (2 * PAGE));

	/* [0, 0x1fff] holds page 0 (reserved) and page 1 */
	ddekit_large_free(one);
	r = ddekit_contig_malloc(PAGE, 0, 0x1fff, 0, 0);
	CHECK(r);
	CHECK_EQ(ddekit_pgtab_get_physaddr(r), PAGE);
	CHECK(ddekit_contig_malloc(PAGE, 0, 0x1fff, 0, 0) == NULL);
	CHECK(ddekit_contig_malloc(PAGE, 0, ~0ul, 3 * PAGE, 0) == NULL);   /* not a power of two */

	ddekit_large_free(p);
	ddekit_large_free(q);
	ddekit_large_free(r);
	CHECK_EQ(ddekit_linux_arena_in_use(), 0);
	PASS("contig_malloc");
}

/* A region registered by hand (as the DDE's ioremap path would). */
static void test_pgtab_regions(void)
{
	static char region[3 * PAGE];
	const ddekit_addr_t phys = 0x40000000;

	ddekit_pgtab_set_region_with_size(region, phys, sizeof(region), PTE_TYPE_OTHER);
	CHECK_EQ(ddekit_pgtab_get_physaddr(region + 5), phys + 5);
	CHECK_EQ(ddekit_pgtab_get_virtaddr(phys + 8000), (uintptr_t)region + 8000);
	CHECK_EQ(ddekit_pgtab_get_size(region + 1), sizeof(region));
	CHECK_EQ(ddekit_pgtab_get_type(region), PTE_TYPE_OTHER);
	CHECK_EQ(ddekit_pgtab_get_physaddr(region + sizeof(region)), NO_PHYS);
	ddekit_pgtab_clear_region(region + 100, PTE_TYPE_OTHER);
	CHECK_EQ(ddekit_pgtab_get_physaddr(region), NO_PHYS);
	CHECK_EQ(ddekit_pgtab_get_virtaddr(phys), NO_PHYS);
	CHECK_EQ(ddekit_pgtab_get_type(region), -1);
	CHECK_EQ(ddekit_pgtab_get_size(region), 0);

	ddekit_pgtab_set_region(region, phys, 2, PTE_TYPE_OTHER);     /* in pages */
	CHECK_EQ(ddekit_pgtab_get_size(region), 2 * PAGE);
	CHECK_EQ(ddekit_pgtab_get_physaddr(region + 2 * PAGE - 1), phys + 2 * PAGE - 1);
	ddekit_pgtab_clear_region(region, PTE_TYPE_OTHER);
	PASS("pgtab_regions");
}

int main(int argc, char **argv)
{
	ddekit_init();
	if (argc > 1 && strcmp(argv[1], "no-arena") == 0) {
		ddekit_large_malloc(100);       /* must stop the process */
		return 1;
	}
	if (argc > 1 && strcmp(argv[1], "bad-free") == 0) {
		test_attach();
		ddekit_large_free(ddekit_simple_malloc(100));   /* must panic */
		return 1;
	}
	test_attach();
	test_large_malloc();
	test_page_zero_never_returned();
	test_slab_contiguous();
	test_slab_threads();
	test_not_dma_able();
	test_contig_malloc();
	test_pgtab_regions();
	return 0;
}
