/* initcall_b.c -- second object of the initcall-order test: more priorities, of 1 to 5 digits */
#include <ddekit/initcall.h>

void initcall_ran(const char *name);

static void b_prio9(void) { initcall_ran("b_prio9"); }
static void b_prio10(void) { initcall_ran("b_prio10"); }
static void b_core(void) { initcall_ran("b_core"); }
static void b_subsys(void) { initcall_ran("b_subsys"); }
static void b_device(void) { initcall_ran("b_device"); }
static void b_prio20000(void) { initcall_ran("b_prio20000"); }
static void b_unprioritised(void) { initcall_ran("b_unprioritised"); }

DDEKIT_CTOR(b_prio20000, 20000);
DDEKIT_CTOR(b_device, 1005);
DDEKIT_CTOR(b_subsys, 1003);
DDEKIT_CTOR(b_core, 1000);
DDEKIT_CTOR(b_prio10, 10);
DDEKIT_CTOR(b_prio9, 9);
/* the plain section, which netdde's script places after all numbered ones */
static l4ddekit_initcall_t L4_STICKY(plain_ctor) __attribute__((section(".l4dde_ctors"))) = b_unprioritised;
