/* porter/dma_heap.h - heap homes for variables a driver hands to a device from its stack. */
#ifndef PORTER_DMA_HEAP_H
#define PORTER_DMA_HEAP_H

#include <linux/kernel.h>
#include <linux/slab.h>

/*
 * Why: on the DDE only kmalloc'd memory has a physical address; virt_to_phys
 * of a stack address fails ("doesn't exist") and the device would be given -1.
 * porter rewrites such a variable into a pointer to a kmalloc'd object that is
 * freed when the variable's scope ends (gcc/clang cleanup attribute), so every
 * return path stays as upstream wrote it.
 */
static inline void *porter_dma_heap_alloc(size_t size, const char *what)
{
	/* GFP_ATOMIC: the callers (e.g. ndo_set_rx_mode) may hold spinlocks */
	void *p = kzalloc(size, GFP_ATOMIC);

	if (!p)
		panic("porter: no memory for the DMA buffer %s\n", what);
	return p;
}

static inline void porter_dma_heap_free(void *ptr_to_ptr)
{
	kfree(*(void **)ptr_to_ptr);
}

#define PORTER_DMA_HEAP __attribute__((cleanup(porter_dma_heap_free)))

/* A zeroed heap object of type, or one holding init. */
#define PORTER_DMA_HEAP_NEW(type) \
	((type *)porter_dma_heap_alloc(sizeof(type), #type))
#define PORTER_DMA_HEAP_INIT(type, init) \
	({ type *__porter_p = PORTER_DMA_HEAP_NEW(type); *__porter_p = (init); __porter_p; })

#endif /* PORTER_DMA_HEAP_H */
