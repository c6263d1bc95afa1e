/*
 * api_runtime.c - the daemon objects the module services reach (api_runtime.h)
 *
 * The runtime itself is written once before the other threads start. The
 * current configuration changes with every reload, so it sits apart
 * behind a mutex: a service on any thread takes a reference under the
 * lock and keeps the generation it started with.
 */
#include <pthread.h>

#include "api/api_runtime.h"
#include "config/config.h"

static struct api_runtime runtime;
static bool stopped;

static pthread_mutex_t conf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conf *current_conf;	/* a reference; guarded by conf_lock */

void api_runtime_set(const struct api_runtime *rt)
{
	runtime = *rt;
}

const struct api_runtime *api_runtime(void)
{
	return &runtime;
}

void api_runtime_set_conf(struct conf *c)
{
	struct conf *old;

	if (c)
		conf_ref(c);
	pthread_mutex_lock(&conf_lock);
	old = current_conf;
	current_conf = c;
	pthread_mutex_unlock(&conf_lock);
	if (old)
		conf_unref(old);
}

struct conf *api_runtime_conf(void)
{
	struct conf *c;

	pthread_mutex_lock(&conf_lock);
	c = current_conf ? conf_ref(current_conf) : NULL;
	pthread_mutex_unlock(&conf_lock);
	return c;
}

void api_runtime_stop(void)
{
	stopped = true;
}

bool api_runtime_stopped(void)
{
	return stopped;
}
