/* porter: the per-version compiler header for gcc releases newer than the
 * DDE's Linux 2.6.29 knows.  <linux/compiler-gcc.h> includes
 * <linux/compiler-gcc<__GNUC__>.h>; porter's compiler-gcc<N>.h files (found
 * with -idirafter, so a DDE that has its own header keeps it) include this.
 * It defines only what <linux/compiler.h> would otherwise leave empty or
 * what DDE code uses without a fallback. */
#ifndef __LINUX_COMPILER_H
#error "include <linux/compiler.h>, not a compiler-gcc header"
#endif

/* keep functions and data nobody references (initcall tables, parameters) */
#define __used                   __attribute__((__used__))
#define __must_check             __attribute__((__warn_unused_result__))
#define __cold                   __attribute__((__cold__))
#define __always_inline          inline __attribute__((__always_inline__))
#define __compiler_offsetof(t, m) __builtin_offsetof(t, m)
/* self-assignment: silences "may be used uninitialized" without code */
#define uninitialized_var(v)     v = v
