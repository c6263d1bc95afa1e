/*
 * test_future_api.c - a module built for an API this impetusd does not have
 *
 * Declares its entry point by hand with API 99.0, as a module compiled
 * against some future incompatible impetus would: impetusd must refuse
 * it and name both versions.
 */
#include <impetus/impetus.h>

__attribute__((visibility("default"))) const struct imp_module impetus_module = {
	.api_major = 99, .api_minor = 0, .name = "test_future_api", .version = "1",
};
