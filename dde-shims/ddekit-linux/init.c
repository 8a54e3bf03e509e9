/* init.c -- ddekit_init, the DDE's first call into DDEKit (l4dde26_init) */
#include <ddekit/thread.h>

#include "ddekit_linux.h"

/*
 * On the Hurd this also sets up the pgtab, the log and the interrupt
 * master port; here those need no setup, and the DMA arena, the PCI
 * callbacks and the interrupt eventfds come from the driver host.
 */
void ddekit_init(void)
{
	ddekit_init_threads();
}
