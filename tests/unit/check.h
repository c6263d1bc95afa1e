/*
 * check.h - the minimal assertion kit of the C unit tests
 *
 * Each macro reports file:line and what differed, counts the failure in
 * check_failures and carries on, so one run shows every broken case.
 * main() ends with "return check_done();". Single-threaded use only.
 */
#ifndef IMPETUS_TESTS_CHECK_H
#define IMPETUS_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: CHECK(%s) failed\n",		\
			__FILE__, __LINE__, #cond);			\
		check_failures++;					\
	}								\
} while (0)

#define CHECK_STREQ(a, b) do {						\
	const char *check_a_ = (a), *check_b_ = (b);			\
	if (check_a_ == NULL || check_b_ == NULL ||			\
	    strcmp(check_a_, check_b_) != 0) {				\
		fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n",\
			__FILE__, __LINE__, #a,				\
			check_a_ ? check_a_ : "(null)",			\
			check_b_ ? check_b_ : "(null)");		\
		check_failures++;					\
	}								\
} while (0)

#define CHECK_INTEQ(a, b) do {						\
	long long check_a_ = (long long)(a), check_b_ = (long long)(b);	\
	if (check_a_ != check_b_) {					\
		fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n",	\
			__FILE__, __LINE__, #a, check_a_, check_b_);	\
		check_failures++;					\
	}								\
} while (0)

/* check_done - print a summary; the exit code for main(). */
static inline int check_done(void)
{
	if (check_failures)
		fprintf(stderr, "%d check(s) failed\n", check_failures);
	else
		printf("all checks passed\n");
	return check_failures ? 1 : 0;
}

#endif
