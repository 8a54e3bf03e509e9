/* porter/scatterlist.h - scatterlist entries that carry the right physical address on the DDE. */
#ifndef PORTER_SCATTERLIST_H
#define PORTER_SCATTERLIST_H

#include <linux/scatterlist.h>
#include <linux/mm.h>
#include <linux/skbuff.h>
#include <asm/io.h>

/*
 * Why: the DDE's virt_to_page() finds only pages of its own page allocator
 * (NULL for kmalloc and skb memory) and its page_to_pfn() subtracts a NULL
 * mem_map, so sg_set_buf() + sg_phys() hand a device garbage addresses.
 * porter's entries carry no struct page; they keep the physical address the
 * DDE's pgtab gives (virt_to_phys) in dma_address, and both views come from it.
 */

static inline void porter_sg_set_buf(struct scatterlist *sg, const void *buf,
				     unsigned int buflen)
{
	sg->page_link &= 0x3;	/* no page; keep the chain/end marks */
	sg->offset = offset_in_page(buf);
	sg->length = buflen;
	sg->dma_address = virt_to_phys((void *)buf);
}

static inline void porter_sg_init_one(struct scatterlist *sg, const void *buf,
				      unsigned int buflen)
{
	sg_init_table(sg, 1);
	porter_sg_set_buf(sg, buf, buflen);
}

/* The bus address a device must be given for this entry. */
static inline dma_addr_t porter_sg_phys(struct scatterlist *sg)
{
	struct page *page = sg_page(sg);

	if (page)	/* a page of the DDE's allocator: it knows its virtual address */
		return virt_to_phys(page_address(page)) + sg->offset;
	return sg->dma_address;
}

static inline void *porter_sg_virt(struct scatterlist *sg)
{
	struct page *page = sg_page(sg);

	if (page)
		return page_address(page) + sg->offset;
	return phys_to_virt(sg->dma_address);
}

/* skb_to_sgvec() built on porter_sg_set_buf(); returns the entries used. */
int porter_skb_to_sgvec(struct sk_buff *skb, struct scatterlist *sg,
			int offset, int len);

#endif /* PORTER_SCATTERLIST_H */
