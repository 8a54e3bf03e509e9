/* initcall.c -- ddekit_do_initcalls: run the DDEKIT_CTOR pointers gathered by l4dde_ctors.ld */
#include <ddekit/initcall.h>

/*
 * DDEKIT_CTOR(fn, prio) puts a pointer to fn into section .l4dde_ctors.<prio>.
 * l4dde_ctors.ld lays those sections out in netdde's order and defines
 * these two symbols around them.  A link without the script fails on them:
 * better than initcalls that silently never run.
 */
extern const l4ddekit_initcall_t __ddekit_linux_ctors_start[] __attribute__((visibility("hidden")));
extern const l4ddekit_initcall_t __ddekit_linux_ctors_end[] __attribute__((visibility("hidden")));

void ddekit_do_initcalls(void)
{
	const l4ddekit_initcall_t *call;

	for (call = __ddekit_linux_ctors_start; call < __ddekit_linux_ctors_end; call++)
		(*call)();
}
