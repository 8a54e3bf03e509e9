/* unsupported.c -- trace-and-stop for the DDEKit functions the Linux host cannot honour */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ddekit_linux.h"
#include "ddekit_linux_unsupported.h"

#define DKL_NAME_ENTRY(fn) #fn,
const char *const ddekit_linux_unsupported[] = {
	DDEKIT_LINUX_UNSUPPORTED_LIST(DKL_NAME_ENTRY)
	NULL
};

/*
 * A stub that returned an error would let the DDE go on with half a device;
 * stopping here names the missing piece instead (cf. Genode's
 * lx_emul_trace_and_stop).  The message is written with one write(2) so it
 * survives whatever the other threads are doing; _exit skips atexit handlers
 * that might wait for those threads.
 */
void ddekit_linux_trace_and_stop(const char *name)
{
	static const char head[] = "ddekit-linux: ";
	static const char tail[] = " is not implemented on the Linux host; stopping\n";
	char line[256];
	size_t n = strlen(name);

	if (n > sizeof(line) - sizeof(head) - sizeof(tail))
		n = sizeof(line) - sizeof(head) - sizeof(tail);
	memcpy(line, head, sizeof(head) - 1);
	memcpy(line + sizeof(head) - 1, name, n);
	memcpy(line + sizeof(head) - 1 + n, tail, sizeof(tail) - 1);
	fflush(stdout);
	if (write(STDERR_FILENO, line, sizeof(head) - 1 + n + sizeof(tail) - 1) < 0) {
		/* nothing left to report it on */
	}
	_exit(DDEKIT_LINUX_EXIT_UNSUPPORTED);
}
