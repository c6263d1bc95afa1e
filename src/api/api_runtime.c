/*
 * api_runtime.c - the daemon objects the module services reach (api_runtime.h)
 */
#include "api/api_runtime.h"

static struct api_runtime runtime;
static bool stopped;

void api_runtime_set(const struct api_runtime *rt)
{
	runtime = *rt;
}

const struct api_runtime *api_runtime(void)
{
	return &runtime;
}

void api_runtime_stop(void)
{
	stopped = true;
}

bool api_runtime_stopped(void)
{
	return stopped;
}
