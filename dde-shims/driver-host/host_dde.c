/* host_dde.c - the driver host's Linux side that every bundle shares: bring the DDE up as netdde does. */
#include <dde26.h>
#include <linux/cpumask.h>

#include "host_bridge.h"

void host_dde_start(int cpumask_fix)
{
	/*
	 * DDE bug (arch/l4/smp.c): every CPU is "possible" while per_cpu_ptr()
	 * ignores the CPU, so a new workqueue's one per-CPU structure is set up
	 * again after its worker began to wait; the first schedule_work() can
	 * hang.  The emitted main.c does the same on the Hurd.
	 */
	if (cpumask_fix)
		cpumask_copy((struct cpumask *)cpu_possible_mask, cpu_online_mask);

	l4dde26_init();
	l4dde26_process_init();
	l4dde26_softirq_init();
	bundle_linux_init();
	l4dde26_do_initcalls();
}
