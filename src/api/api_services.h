/*
 * api_services.h - what the module services share (src/api/api_event.c)
 *
 * Every service of include/impetus/ answers its caller by posting a
 * function and an argument to the caller's loop: api_post is that post
 * (the kind "api.post" of src/msgs/msgs.def), and api_reply_loop says
 * which loop a caller on the current thread is answered on (its own loop,
 * or the scheduler for a pool or foreign thread).
 *
 * A struct imp_loop, to a module, is a core struct loop: the public type
 * only hides it.
 *
 * The other helpers here are exposed for the unit tests: the paniclog
 * line format of a module (api_log.c) and imp_inject's request checks
 * (api_inject.c).
 *
 * Posts that never ran (the daemon stopped first) are remembered so
 * api_post_drop_all can free them after the loops ended: their functions
 * are not run (impetus/event.h says so).
 */
#ifndef IMPETUS_API_API_SERVICES_H
#define IMPETUS_API_API_SERVICES_H

#include <stdarg.h>
#include <stddef.h>

struct loop;
struct str;
struct imp_instance;

/* api_post - run fn(arg) on lp's thread soon. Any thread; never blocks. */
void api_post(struct loop *lp, void (*fn)(void *arg), void *arg);
/*
 * api_reply_loop - the loop a service answers the calling thread on: its
 * own loop, else the scheduler; NULL when there is neither (no runtime).
 */
struct loop *api_reply_loop(void);
/* api_post_drop_all - free the posts that never ran (main, after every loop stopped). */
void api_post_drop_all(void);

/* ---- api_inject.c ---- */

struct imp_inject;
/* api_inject_check - imp_inject's checks that need no configuration: 0 or -EINVAL. */
int api_inject_check(const struct imp_inject *req);

/* ---- api_log.c ---- */

/* api_log_escape - append s[0..n) with control bytes, DEL and '\\' as \xHH. */
void api_log_escape(struct str *out, const char *s, size_t n);
/* api_log_vformat - append a module's paniclog line: "module[instance]: " and the escaped text. */
void api_log_vformat(struct str *out, const struct imp_instance *inst, const char *fmt,
		     va_list ap);

#endif
