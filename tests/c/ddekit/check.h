/* check.h -- assertion and progress helpers shared by the ddekit-linux and portio-trap test programs */
#ifndef TEST_CHECK_H
#define TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/* A failed check names itself and exits 1; the pytest side asserts exit 0. */
#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		exit(1); \
	} \
} while (0)

#define CHECK_EQ(a, b) do { \
	unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
	if (a_ != b_) { \
		fprintf(stderr, "FAIL %s:%d: %s == %s (0x%llx != 0x%llx)\n", \
		        __FILE__, __LINE__, #a, #b, a_, b_); \
		exit(1); \
	} \
} while (0)

/* One line per finished part, so the test can see every part ran. */
#define PASS(name) do { printf("PASS %s\n", name); fflush(stdout); } while (0)

#endif
