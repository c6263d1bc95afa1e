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

#include "core/str.h"

struct api_gen;
struct api_cmd;

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

/* api_console_find - the command called name in g, or NULL. */
const struct api_cmd *api_console_find(const struct api_gen *g, const char *name);

#endif
