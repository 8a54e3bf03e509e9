/* porter: gcc 14 uses the common header for recent gcc releases. */
#include <linux/porter-compiler-gcc.h>
