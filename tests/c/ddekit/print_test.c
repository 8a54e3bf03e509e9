/* print_test.c -- DDEKit console output on stderr, ddekit_panic and Assert */
#include <string.h>

#include <ddekit/assert.h>
#include <ddekit/panic.h>
#include <ddekit/printf.h>

#include "ddekit_linux.h"
#include "check.h"

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	ddekit_init();
	if (strcmp(argv[1], "print") == 0) {
		CHECK_EQ(ddekit_print("plain line\n"), 11);
		CHECK_EQ(ddekit_printf("formatted %s %d %08x %c|\n", "text", -42, 0xbeef, 'z'), 31);
		ddekit_debug("debug %u", 7u);
		ddekit_log(1, "log %d", 5);
		return 0;
	}
	if (strcmp(argv[1], "panic") == 0)
		ddekit_panic("the device is on fire (%d)", 42);
	if (strcmp(argv[1], "assert") == 0) {
		int two = 2;

		Assert(two == 3);
	}
	return 2;
}
