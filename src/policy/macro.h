/*
 * macro.h - %{ns:name} interpolation: the daemon's side (impetus/macro.h)
 *
 * The expanders of one module generation live in a table hung on its
 * struct api_gen (g->macros, freed with it). It is filled while the
 * generation is building (the built-ins of macro_builtin.c first, then
 * each instance's init through imp_macro_register) on the scheduler
 * thread, and never changed afterwards, so any thread may read it.
 *
 * imp_macro_expand finds the table through the calling thread's current
 * generation (api_gen_enter, src/api/api.h). Daemon code that holds a
 * conf rather than running inside a generation calls macro_expand with
 * api_gen_of(conf) itself.
 *
 * Files: macro.c (table, registration, expansion), macro_builtin.c (the
 * core's expanders that need no session: hostname, time), macro_session.c
 * (msg:*, conn:*, vctx_conn:*, vctx_mess:*; see CMakeLists.txt).
 */
#ifndef IMPETUS_POLICY_MACRO_H
#define IMPETUS_POLICY_MACRO_H

#include <impetus/macro.h>

struct api_gen;

/* macro_expand - imp_macro_expand with the expanders of g (NULL: ctx->vars only). */
int macro_expand(struct api_gen *g, const char *in, const struct imp_macro_ctx *ctx, char **out);
/* macro_needs - imp_macro_needs with the expanders of g (NULL: none). */
int macro_needs(struct api_gen *g, const char *in);

/*
 * macro_builtins_register - the core's expanders into a building g (as
 * api_core_instance(g)): hostname, time:unix, time:rfc2822 and, when
 * macro_session.c is built, the session and message ones.
 */
void macro_builtins_register(struct api_gen *g);
/* macro_session_register - the msg:*, conn:* and vctx_*:* expanders (macro_session.c). */
void macro_session_register(struct api_gen *g);

#endif
