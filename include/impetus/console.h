/*
 * impetus/console.h - console commands (API 1.3)
 *
 * The operator's console (`impetus COMMAND ARGS...`, docs/console.md)
 * talks to impetusd over the Control_Listener socket. Every command it
 * runs, the daemon's own (help, version, pid) and the modules', is
 * registered through this header, Momentum's cli_conn way:
 *
 *     static int stats_cmd(struct imp_cli *cli, int argc, const char *const *argv,
 *                          void *closure)
 *     {
 *             struct mymod *m = closure;
 *
 *             if (argc > 1)
 *                     return imp_cli_error(cli, "usage: mymod_stats");
 *             if (imp_cli_json(cli))
 *                     imp_cli_printf(cli, "{\"seen\":%llu}\n", m->seen);
 *             else
 *                     imp_cli_printf(cli, "Seen: %llu\n", m->seen);
 *             return 0;
 *     }
 *     ... in init: imp_cli_register(inst, "mymod_stats", "messages seen", stats_cmd, m);
 *
 * Lifetime. A command belongs to the generation of the instance that
 * registered it (module.h, "Generations"): registered from init, it is in
 * `help` and runnable from the moment that generation becomes the running
 * one, and it is gone when a reload replaces the generation (a reload
 * that drops the module drops the command). The console always looks a
 * command up in the running generation.
 *
 * Threads. A handler runs on the scheduler thread, holding a reference to
 * its generation, so the instance and its closure are alive for the whole
 * call. Reloads run on the scheduler thread too, so a reload never
 * happens in the middle of a command: the command finishes with the
 * generation it started with, and the next one finds the new generation.
 * A handler must not block (no disk or network waits; it delays every
 * queue decision while it runs): it reads counters and state guarded for
 * cross-thread reads, formats its answer, and returns.
 *
 * Output. A handler writes its whole answer into the connection object
 * with imp_cli_write/printf; the console sends it as one length-prefixed
 * reply once the handler returns. When the client asked for JSON
 * (`--json`, imp_cli_json() true) the answer must be one JSON document;
 * imp_cli_json_string writes a correctly escaped JSON string. An error
 * (imp_cli_error, or a negative return) replaces whatever was written
 * with the error line; the client prints it on stderr and exits non-zero.
 * Answers are limited to IMP_CLI_MAX_OUTPUT bytes; past it the command
 * fails with "output too large".
 *
 * Answering later. A handler whose answer depends on something
 * asynchronous (a DNS lookup, a job on a pool) calls imp_cli_defer and
 * returns 0; it keeps the handle and, when the answer is known, writes to
 * it with the functions below and calls imp_cli_finish, on the scheduler
 * thread. The connection waits: the client's next requests are answered
 * after this one, in order. If the client disconnects meanwhile the
 * handle stays valid and imp_cli_finish only frees it, so the handler's
 * callback never needs to know. The generation the command ran in is held
 * until imp_cli_finish, so the instance and its closure stay alive; a
 * handle must be finished exactly once (a lookup cancelled at shutdown
 * finishes it with an error).
 */
#ifndef IMPETUS_CONSOLE_H
#define IMPETUS_CONSOLE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct imp_instance;
/* One console request being answered (Momentum's cli_conn). Opaque. */
struct imp_cli;

#define IMP_CLI_NAME_MAX 32		/* command names: [a-z0-9_]{1,32} */
#define IMP_CLI_MAX_OUTPUT (16u << 20)	/* the largest answer, bytes */

/*
 * A command handler. argv[0] is the command name, argv[1..argc-1] its
 * arguments as the operator typed them (split on blanks; "--json" is
 * taken out and read with imp_cli_json). Returns 0, or a negative value
 * (after imp_cli_error, else the error is "command failed").
 */
typedef int (*imp_cli_fn)(struct imp_cli *cli, int argc, const char *const *argv, void *closure);

/*
 * imp_cli_register - add a command to the instance's generation, from
 * init (scheduler thread). help is one line for `help`. Both strings are
 * copied. Returns 0; -EINVAL for a bad name, empty or multi-line help, a
 * NULL fn or a call outside init; -EEXIST when the generation already has
 * a command of that name (the core's own, or another instance's: a
 * module with several instances registers from the first and shares the
 * closure with the others, see imp_cli_closure).
 */
int imp_cli_register(struct imp_instance *inst, const char *name, const char *help,
		     imp_cli_fn fn, void *closure);
/*
 * imp_cli_closure - the closure of command name in inst's generation when
 * an instance of the same module registered it, else NULL (from init,
 * scheduler thread). How the second and later instances of a module join
 * the one command the first registered: instances of one generation
 * initialise one after the other, in configuration order.
 */
void *imp_cli_closure(const struct imp_instance *inst, const char *name);

/* imp_cli_json - whether the client asked for a JSON answer (--json). */
bool imp_cli_json(const struct imp_cli *cli);
/* imp_cli_write - append len bytes to the answer. */
void imp_cli_write(struct imp_cli *cli, const char *text, size_t len);
/* imp_cli_printf - append formatted text to the answer. */
void imp_cli_printf(struct imp_cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* imp_cli_json_string - append s as a JSON string literal (quotes and escapes included). */
void imp_cli_json_string(struct imp_cli *cli, const char *s);
/*
 * imp_cli_error - make the command fail with this one-line message
 * (what was written so far is dropped); returns -1 so a handler can
 * `return imp_cli_error(cli, ...)`.
 */
int imp_cli_error(struct imp_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * imp_cli_defer - answer later: from a handler, returns the handle to
 * write the answer to (the same functions as cli) and to pass to
 * imp_cli_finish; the handler then returns 0 and no answer is sent now.
 * What was written before the call is kept. Calling it twice returns the
 * same handle. The handle may be finished before the handler returns (an
 * answer that turned out to be at hand).
 */
struct imp_cli *imp_cli_defer(struct imp_cli *cli);
/*
 * imp_cli_finish - send a deferred answer (what was written, or the
 * error) and release the handle (scheduler thread; exactly once).
 */
void imp_cli_finish(struct imp_cli *handle);

#ifdef __cplusplus
}
#endif

#endif
