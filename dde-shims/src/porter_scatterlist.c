/* porter_scatterlist.c - map an sk_buff onto porter scatterlist entries (see porter/scatterlist.h). */
#include <linux/kernel.h>
#include <linux/skbuff.h>
#include <porter/scatterlist.h>

/*
 * Walk the bytes [offset, offset+len) of an skb: first its linear head, then
 * its page fragments, then the skbs on its frag_list, emitting one entry per
 * contiguous piece.  Every entry gets its address from the DDE's pgtab.
 */
static int porter_sgvec_fill(struct sk_buff *skb, struct scatterlist *sg,
			     int offset, int len)
{
	int head_len = skb_headlen(skb);
	int used = 0;
	int i;
	struct sk_buff *frag_skb;

	if (offset < head_len) {
		int piece = min(head_len - offset, len);

		porter_sg_set_buf(&sg[used++], skb->data + offset, piece);
		len -= piece;
		offset += piece;
	}
	offset -= head_len;	/* now relative to the end of the head */

	for (i = 0; i < skb_shinfo(skb)->nr_frags && len > 0; i++) {
		skb_frag_t *frag = &skb_shinfo(skb)->frags[i];

		if (offset < (int)frag->size) {
			int piece = min((int)frag->size - offset, len);

			porter_sg_set_buf(&sg[used++], page_address(frag->page) +
					  frag->page_offset + offset, piece);
			len -= piece;
			offset = 0;
		} else {
			offset -= frag->size;
		}
	}

	for (frag_skb = skb_shinfo(skb)->frag_list; frag_skb && len > 0;
	     frag_skb = frag_skb->next) {
		if (offset < (int)frag_skb->len) {
			int piece = min((int)frag_skb->len - offset, len);

			used += porter_sgvec_fill(frag_skb, &sg[used], offset, piece);
			len -= piece;
			offset = 0;
		} else {
			offset -= frag_skb->len;
		}
	}
	BUG_ON(len != 0);
	return used;
}

int porter_skb_to_sgvec(struct sk_buff *skb, struct scatterlist *sg,
			int offset, int len)
{
	int used = porter_sgvec_fill(skb, sg, offset, len);

	sg_mark_end(&sg[used - 1]);
	return used;
}
