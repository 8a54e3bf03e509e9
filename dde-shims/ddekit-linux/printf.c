/* printf.c -- DDEKit console output (printk ends here) and ddekit-linux's own messages, on stderr */
#define _GNU_SOURCE 1
#include <execinfo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ddekit/printf.h>

#include "ddekit_linux.h"
#include "internal.h"

/*
 * Output goes to stderr, as the Hurd's libddekit does when it runs on a
 * console (its log_init); stdout stays free for the driver host.  stderr is
 * unbuffered and every message is assembled before the single fputs, so
 * lines from concurrent threads do not interleave mid-line.
 */
int ddekit_print(const char *msg)
{
	if (fputs(msg, stderr) == EOF)
		return -1;
	return (int)strlen(msg);
}

int ddekit_vprintf(const char *fmt, va_list va)
{
	char *text;
	int len = vasprintf(&text, fmt, va);

	if (len < 0)
		return -1;
	ddekit_print(text);
	free(text);
	return len;
}

int ddekit_printf(const char *fmt, ...)
{
	va_list va;
	int len;

	va_start(va, fmt);
	len = ddekit_vprintf(fmt, va);
	va_end(va);
	return len;
}

void dump_stack(void)
{
	void *frames[32];
	int n = backtrace(frames, 32);

	ddekit_print("dump_stack:\n");
	backtrace_symbols_fd(frames, n, STDERR_FILENO);
}

char *dkl_format(const char *fmt, ...)
{
	va_list va;
	char *text;
	int len;

	va_start(va, fmt);
	len = vasprintf(&text, fmt, va);
	va_end(va);
	if (len < 0) {
		/* Only reachable when malloc fails; nothing sensible remains. */
		fputs("ddekit-linux: out of memory while formatting a message\n", stderr);
		abort();
	}
	return text;
}

static void print_prefixed(const char *prefix, const char *fmt, va_list va)
{
	char *text;

	if (vasprintf(&text, fmt, va) < 0) {
		fputs("ddekit-linux: out of memory while formatting a message\n", stderr);
		return;
	}
	char *line = dkl_format("ddekit-linux: %s%s\n", prefix, text);
	fputs(line, stderr);
	free(line);
	free(text);
}

void dkl_warn(const char *fmt, ...)
{
	va_list va;

	va_start(va, fmt);
	print_prefixed("", fmt, va);
	va_end(va);
}

void dkl_host_setup_error(const char *fmt, ...)
{
	va_list va;

	va_start(va, fmt);
	print_prefixed("host setup error: ", fmt, va);
	va_end(va);
	fflush(stdout);
	_exit(DDEKIT_LINUX_EXIT_HOST_SETUP);
}
