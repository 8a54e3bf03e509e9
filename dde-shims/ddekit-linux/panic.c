/* panic.c -- ddekit_panic (print, backtrace, abort) and ddekit_debug */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <ddekit/panic.h>
#include <ddekit/printf.h>

void ddekit_panic(char *fmt, ...)
{
	va_list va;

	ddekit_print("ddekit_panic: ");
	va_start(va, fmt);
	ddekit_vprintf(fmt, va);
	va_end(va);
	ddekit_print("\n");
	dump_stack();
	fflush(stdout);
	/* abort, not exit: a core (when enabled) keeps the DDE's state. */
	abort();
}

void ddekit_debug(char *fmt, ...)
{
	va_list va;

	va_start(va, fmt);
	ddekit_vprintf(fmt, va);
	va_end(va);
	ddekit_print("\n");
}
