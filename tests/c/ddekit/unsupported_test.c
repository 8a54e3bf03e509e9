/* unsupported_test.c -- calls the trace-and-stop function named on the command line */
#include <string.h>

#include <ddekit/resources.h>

#include "ddekit_linux.h"
#include "ddekit_linux_unsupported.h"
#include "check.h"

int main(int argc, char **argv)
{
	ddekit_addr_t vaddr = 0;

	CHECK(argc == 2);
	ddekit_init();
	/* the run-time table and the header's list agree */
#define COUNT_ONE(fn) + 1
	{
		int n = 0;

		while (ddekit_linux_unsupported[n])
			n++;
		CHECK_EQ(n, 0 DDEKIT_LINUX_UNSUPPORTED_LIST(COUNT_ONE));
	}
	if (strcmp(argv[1], "ddekit_request_mem") == 0)
		ddekit_request_mem(0xfebf0000, 0x1000, &vaddr);
	else if (strcmp(argv[1], "ddekit_release_mem") == 0)
		ddekit_release_mem(0xfebf0000, 0x1000);
	else if (strcmp(argv[1], "ddekit_request_dma") == 0)
		ddekit_request_dma(3);
	else if (strcmp(argv[1], "ddekit_release_dma") == 0)
		ddekit_release_dma(3);
	else
		return 2;          /* listed but unknown here: the test must learn it */
	return 1;                  /* it returned: not a trace-and-stop */
}
