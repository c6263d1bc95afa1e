/*
 * api_runtime.h - the daemon objects the module services reach
 *
 * main.c fills one struct api_runtime before the first module
 * initialises (api_runtime_set) and clears it after the last generation
 * is released. The services of include/impetus/ (event.h, inject.h,
 * queue.h, message.h) find the loops, pools, spool and queue here.
 * Written once by the scheduler thread before the other threads start;
 * read-only afterwards, so any thread may read it.
 *
 * Tools and unit tests that never call api_runtime_set see a runtime
 * with every pointer NULL; services then fail with -ENOTCONN (or run
 * inline where that is meaningful, as the generation release does).
 */
#ifndef IMPETUS_API_API_RUNTIME_H
#define IMPETUS_API_API_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct pool;
struct spool;
struct queue;
struct conf;
struct smtp_server;

struct api_runtime {
	struct loop *scheduler;
	struct loop **io;
	size_t nio;
	struct pool *cpu_pool;
	struct pool *io_pool;
	struct spool *spool;
	struct queue *queue;
	struct smtp_server *smtp;	/* the inbound server (the console's summary) */
};

void api_runtime_set(const struct api_runtime *rt);
/*
 * api_runtime_stop - the loops have stopped (shutdown, main thread, after
 * every other thread is joined): from now on generations are released
 * inline, as the scheduler, instead of being posted to it.
 */
void api_runtime_stop(void);
bool api_runtime_stopped(void);
/* api_runtime - the runtime (all NULL before api_runtime_set). Any thread. */
const struct api_runtime *api_runtime(void);

/*
 * api_runtime_set_conf - the configuration generation services start new
 * work with (main.c: at start-up and on every reload; NULL at shutdown).
 * Takes its own reference. Scheduler thread.
 */
void api_runtime_set_conf(struct conf *c);
/* api_runtime_conf - a new reference to the current configuration, or NULL. Any thread. */
struct conf *api_runtime_conf(void);

#endif
