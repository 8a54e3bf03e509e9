/* porter/kernel.h - kernel.h macros newer than the DDE's Linux 2.6.29. */
#ifndef PORTER_KERNEL_H
#define PORTER_KERNEL_H

#include <linux/kernel.h>

#ifndef MAYBE_BUILD_BUG_ON
/* Breaks the build when cond is a true constant; no code for a variable cond. */
#define MAYBE_BUILD_BUG_ON(cond) ((void)sizeof(char[1 - 2 * !!(cond)]))
#endif

#endif /* PORTER_KERNEL_H */
