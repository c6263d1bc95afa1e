/*
 * api_console.h - the daemon's side of include/impetus/console.h
 *
 * api_console.c keeps each generation's command table (struct api_cmd in
 * api.h, sorted by name), implements struct imp_cli and the built-in
 * commands (help, version, pid). The control server (src/control/) calls
 * api_console_run on the scheduler thread with the running generation.
 */
#ifndef IMPETUS_API_API_CONSOLE_H
#define IMPETUS_API_API_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"

struct api_gen;
struct api_cmd;
struct conf;
struct imp_cli;
struct str;

/* api_console_builtins_register - help, version, pid into a building generation. */
void api_console_builtins_register(struct api_gen *g);
/* api_summary_register - `summary` (api_summary.c) into a building generation. */
void api_summary_register(struct api_gen *g);

/*
 * api_console_run - run argv[0] with its arguments in generation g
 * (scheduler thread; the caller holds g's configuration). The answer, or
 * the one-line error, is appended to out. Returns 0 on success, -1 when
 * the command failed or does not exist.
 */
int api_console_run(struct api_gen *g, int argc, const char *const *argv, bool json,
		    struct str *out);

/*
 * api_console_origin - who sends the next api_console_start: transport
 * ("console", "http") and the HTTP API key's name (NULL for none). Used
 * once, for the AdminAction event and audit line of a command that
 * changes state (docs/events.md); without it the origin is "console".
 * Scheduler thread; key must stay valid until api_console_start returns.
 */
void api_console_origin(const char *transport, const char *key);

/* The answer of a deferred command (imp_cli_defer): ok, and the body or error line. */
typedef void (*api_console_done_fn)(void *arg, bool ok, const char *body, size_t len);

/*
 * api_console_start - api_console_run for a caller that can wait: when
 * the handler defers (imp_cli_defer) and has not finished before
 * returning, returns 1 with *pending set; done(done_arg, ...) runs later
 * with the answer, on the scheduler thread, from imp_cli_finish. hold (a
 * configuration, may be NULL) gets a reference kept until then, so the
 * command's generation stays alive. Returns 0 / -1 like api_console_run
 * otherwise.
 */
int api_console_start(struct api_gen *g, struct conf *hold, int argc, const char *const *argv,
		      bool json, struct str *out, api_console_done_fn done, void *done_arg,
		      struct imp_cli **pending);
/*
 * api_console_abandon - the waiter of a pending command is gone (its
 * client disconnected): done is never called, the handle is freed when
 * the handler finishes it.
 */
void api_console_abandon(struct imp_cli *pending);

/*
 * What the daemon (main.c) lends the operations commands
 * (api_console_ops.c): the reload and shutdown SIGHUP and SIGTERM run,
 * and the resolver. Scheduler thread, set before the loop runs.
 */
struct dns;
struct api_console_daemon {
	void *ctx;
	/* reload - SIGHUP's reload; 0, or -1 with the configuration error in err. */
	int (*reload)(void *ctx, struct str *err);
	/* shutdown - SIGTERM's graceful stop, started now. */
	void (*shutdown)(void *ctx);
	struct dns *(*dns)(void *ctx);
	const char *(*conf_path)(void *ctx);	/* NULL: the embedded default */
};
/* api_console_set_daemon - lend (or, with NULL, take back) the daemon's operations. */
void api_console_set_daemon(const struct api_console_daemon *d);
/* api_console_ops_register - the operations commands into a building generation. */
void api_console_ops_register(struct api_gen *g);

/* api_console_find - the command called name in g, or NULL. */
const struct api_cmd *api_console_find(const struct api_gen *g, const char *name);

#endif
