/* initcall_main.c -- runs ddekit_do_initcalls and prints each initcall as it runs */
#include <stdio.h>

#include <ddekit/initcall.h>

#include "ddekit_linux.h"

static int calls;

void initcall_ran(const char *name);
void initcall_ran(const char *name)
{
	printf("initcall %s\n", name);
	calls++;
}

int main(void)
{
	ddekit_init();
	ddekit_do_initcalls();
	printf("ran %d\n", calls);
	return 0;
}
