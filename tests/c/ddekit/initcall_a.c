/* initcall_a.c -- first object of the initcall-order test: DDEKIT_CTOR at several priorities */
#include <ddekit/initcall.h>

void initcall_ran(const char *name);

static void a_prio1(void) { initcall_ran("a_prio1"); }
static void a_core(void) { initcall_ran("a_core"); }
static void a_device(void) { initcall_ran("a_device"); }
static void a_late(void) { initcall_ran("a_late"); }

DDEKIT_INITCALL(a_prio1);          /* priority 1 */
DDEKIT_CTOR(a_late, 1006);         /* late_initcall */
DDEKIT_CTOR(a_device, 1005);       /* module_init */
DDEKIT_CTOR(a_core, 1000);         /* core_initcall */
