/*
 * api_module.h - loading modules and building a configuration's generation
 *
 * Start-up and SIGHUP build the module generation of a freshly loaded
 * configuration in two steps, both on the scheduler thread:
 *
 *   api_modules_load   find every module a stanza names on Module_Path
 *                      (dlopen once per process, never closed), check
 *                      its API version and the stanza's options against
 *                      its table, and make the instances. No module code
 *                      runs. `impetusd -t` stops here.
 *   api_modules_start  register the built-in subscribers, run each
 *                      enabled instance's init in configuration order,
 *                      freeze the generation and attach it to the conf.
 *
 * Either step fails with one line in err: "file:line:col: message" for a
 * stanza's problem, "file:line: module x "inst": init failed: why" for an
 * init that refused. On failure everything made so far is released
 * (initialised instances are finalised), and the conf is as before.
 */
#ifndef IMPETUS_API_API_MODULE_H
#define IMPETUS_API_API_MODULE_H

#include "core/str.h"

struct api_gen;
struct conf;

struct api_gen *api_modules_load(struct conf *conf, struct str *err);
int api_modules_start(struct api_gen *g, struct str *err);

/* api_builtins_register - the daemon's own subscribers, into g (api_builtin.c). */
void api_builtins_register(struct api_gen *g);

#endif
