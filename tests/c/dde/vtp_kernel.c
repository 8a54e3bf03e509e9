/* vtp_kernel.c - kernel side of porter's check of the DDE's address translation on ddekit-linux. */
#include <dde26.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/cpumask.h>
#include <asm/io.h>

/* Returns the number of failed checks. Built with the DDE's own flags. */
int vtp_run(unsigned long arena_size)
{
	char on_stack[64];
	void *k;
	unsigned long p;
	int failures = 0;

	cpumask_copy((struct cpumask *)cpu_possible_mask, cpu_online_mask);
	l4dde26_init();
	l4dde26_process_init();
	l4dde26_softirq_init();

	k = kmalloc(256, GFP_KERNEL);
	p = virt_to_phys(k);
	printk("porter-vtp: kmalloc %p -> phys %#lx\n", k, p);
	if (p < 4096 || p + 256 > arena_size)
		failures++;			/* kmalloc memory: inside the arena, never page 0 */
	if (phys_to_virt(p) != k)
		failures++;			/* and back */
	p = virt_to_phys(on_stack);
	printk("porter-vtp: stack %p -> phys %#lx\n", on_stack, p);
	if (p != ~0UL)
		failures++;			/* the stack has no physical address: -1 */
	kfree(k);
	return failures;
}
