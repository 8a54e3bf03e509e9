/* porter: gcc 10 uses the common header for recent gcc releases. */
#include <linux/porter-compiler-gcc.h>
