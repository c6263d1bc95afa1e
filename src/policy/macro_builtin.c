/*
 * macro_builtin.c - the core's own expanders
 *
 * Registered into every generation by api_builtins_register, as the core
 * pseudo-instance, before any module's init, so a module that registers
 * one of these names gets -EEXIST. Here: the ones that need neither a
 * connection nor a message:
 *
 *   %{hostname}       the server's name (conf_hostname of the generation)
 *   %{time:unix}      seconds since the epoch, now
 *   %{time:rfc2822}   now as an RFC 5322 date-time, local zone (as Date:)
 *
 * The session and message ones (msg:*, conn:*, vctx_conn:*, vctx_mess:*)
 * are in macro_session.c. "d", "s" and other plain names of one caller
 * come from its ctx->vars, not from here.
 *
 * Expanders run on whatever thread expands; these read only the
 * generation's immutable conf and the clock.
 */
#include "policy/macro.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "config/config.h"
#include "message/rfc5322.h"

/* x_hostname - %{hostname}: the generation's server name. */
static int x_hostname(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		      struct imp_macro_out *out)
{
	struct api_gen *g = closure;

	if (g->conf == NULL)
		return -ENOENT;
	const char *h = conf_hostname(g->conf);
	imp_macro_out_append(out, h, strlen(h));
	return 0;
}

/* x_time - %{time:unix} and %{time:rfc2822}. */
static int x_time(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		  struct imp_macro_out *out)
{
	time_t now = time(NULL);

	if (strcmp(name, "time:unix") == 0) {
		char buf[24];
		int n = snprintf(buf, sizeof(buf), "%" PRId64, (int64_t)now);
		imp_macro_out_append(out, buf, (size_t)n);
		return 0;
	}
	char date[RFC5322_DATE_SIZE];
	rfc5322_format_date((int64_t)now, true, date);
	imp_macro_out_append(out, date, strlen(date));
	return 0;
}

/* must - a built-in that cannot register is a programming error. */
static void must(int rc, const char *name)
{
	if (rc != 0) {
		fprintf(stderr, "impetusd: built-in macro %s: cannot register (%s)\n", name,
			strerror(-rc));
		abort();
	}
}

void macro_builtins_register(struct api_gen *g)
{
	struct imp_instance *core = api_core_instance(g);

	must(imp_macro_register(core, "hostname", 0, x_hostname, g), "hostname");
	must(imp_macro_register(core, "time:unix", 0, x_time, NULL), "time:unix");
	must(imp_macro_register(core, "time:rfc2822", 0, x_time, NULL), "time:rfc2822");
#ifdef IMPETUS_MACRO_SESSION
	macro_session_register(g);
#endif
}
