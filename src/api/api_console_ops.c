/*
 * api_console_ops.c - the console's operations commands (docs/console.md,
 * "Operations commands"): config reload / config show, reopen logs,
 * trace smtp, threads, dns_cache, dig, paniclog, memory, shutdown
 *
 * Owner: the scheduler thread, like every console command (api_console.c).
 * What belongs to the daemon itself (the reload and graceful stop that
 * SIGHUP and SIGTERM start, the resolver) is lent by main.c through
 * api_console_set_daemon; until then, and after the console closes, the
 * commands that need it say "not available". What other threads own is
 * read through their own guarded interfaces: loop and pool counters
 * (atomics, registry locks), the trace switch (smtp_trace.h), the log
 * files' paths (their mutexes).
 *
 * dig is the one command that answers later (imp_cli_defer): the
 * resolver's callback finishes the handle, on the scheduler too. A
 * lookup cancelled at shutdown calls back with "cancelled", so every
 * handle is finished exactly once.
 *
 * Failure: every argument is checked before anything happens; a bad one
 * is one error line (imp_cli_error) and the daemon carries on.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <impetus/console.h>

#include "api/api.h"
#include "api/api_console.h"
#include "api/api_runtime.h"
#include "config/config.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/pool.h"
#include "core/sockaddr.h"
#include "dns/dns.h"
#include "log/log.h"
#include "queue/queue.h"
#include "smtp/smtp_trace.h"

#define PANICLOG_DEFAULT_LINES 20
#define PANICLOG_MAX_LINES 10000
#define PANICLOG_MAX_READ ((off_t)4 << 20)	/* bytes read back from the end, at most */

static struct api_console_daemon daemon_ops;
static bool have_daemon;

void api_console_set_daemon(const struct api_console_daemon *d)
{
	if (d) {
		daemon_ops = *d;
		have_daemon = true;
	} else {
		memset(&daemon_ops, 0, sizeof(daemon_ops));
		have_daemon = false;
	}
}

/* need_daemon - refuse a command that needs the running daemon when there is none. */
static int need_daemon(struct imp_cli *cli, const char *cmd)
{
	if (!have_daemon)
		return imp_cli_error(cli, "%s: not available (no daemon is running this console)", cmd);
	return 0;
}

/* parse_count - a decimal number in [min, max]; false for anything else. */
static bool parse_count(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* ---- config ---------------------------------------------------------------------- */

/* config_reload - SIGHUP's reload; the error, file:line:col included, when it fails. */
static int config_reload(struct imp_cli *cli, int argc, const char *const *argv)
{
	struct str err = STR_INIT;
	const char *path;

	if (argc != 2)
		return imp_cli_error(cli, "usage: config reload");
	if (need_daemon(cli, "config reload") < 0)
		return -1;
	path = daemon_ops.conf_path ? daemon_ops.conf_path(daemon_ops.ctx) : NULL;
	if (daemon_ops.reload(daemon_ops.ctx, &err) < 0) {
		imp_cli_error(cli, "config reload failed, the running configuration is kept: %s",
			      str_cstr(&err));
		str_free(&err);
		return -1;
	}
	str_free(&err);
	if (imp_cli_json(cli)) {
		imp_cli_write(cli, "{\"reloaded\":true,\"configuration\":", 33);
		imp_cli_json_string(cli, path ? path : "(default)");
		imp_cli_write(cli, "}\n", 2);
	} else {
		imp_cli_printf(cli, "Configuration reloaded from %s\n", path ? path : "(default)");
	}
	return 0;
}

/* find_listener - the Listen stanza of ESMTP_Listener at address (as written or canonical). */
static const struct conf_listener *find_listener(const struct conf *c, const char *address)
{
	for (size_t i = 0; i < conf_listener_count(c); i++) {
		const struct conf_listener *l = conf_listener_at(c, i);

		if (strcasecmp(conf_listener_address(l), address) == 0)
			return l;
	}
	return NULL;
}

/*
 * show_scoped - a module's scoped option (opendkim_sign) as written in the
 * stanza that answers for (binding, domain); false when no stanza sets it
 * (the module's default is the module's to know).
 */
static bool show_scoped(struct imp_cli *cli, const char *name, const char *binding,
			const char *domain)
{
	struct conf *c = api_runtime_conf();
	const struct conf_scoped_setting *o;
	struct str text = STR_INIT;

	if (c == NULL)
		return false;
	o = conf_scoped_get(c, name, binding, domain);
	if (o == NULL) {
		conf_unref(c);
		return false;
	}
	if (o->opt.is_list)
		str_appends(&text, "(");
	for (size_t i = 0; i < o->opt.n; i++)
		if (o->opt.is_list)
			str_appendf(&text, " \"%s\"", o->opt.v[i].text);
		else
			str_appends(&text, o->opt.v[i].text);
	if (o->opt.is_list)
		str_appends(&text, " )");
	if (imp_cli_json(cli)) {
		imp_cli_write(cli, "{\"option\":", 10);
		imp_cli_json_string(cli, o->opt.name);
		imp_cli_write(cli, ",\"value\":", 9);
		imp_cli_json_string(cli, str_cstr(&text));
		imp_cli_write(cli, ",\"source\":", 10);
		imp_cli_json_string(cli, o->scope);
		imp_cli_write(cli, ",\"file\":", 8);
		imp_cli_json_string(cli, o->file);
		imp_cli_printf(cli, ",\"line\":%d,\"module_option\":true}\n", o->opt.line);
	} else {
		imp_cli_printf(cli, "%s = %s    # %s, %s:%d (a module's option)\n", o->opt.name,
			       str_cstr(&text), o->scope, o->file, o->opt.line);
	}
	str_free(&text);
	conf_unref(c);
	return true;
}

/*
 * config_show - config show OPTION [binding B] [domain D] | [listener [ADDR]]:
 * the value in force and the stanza it comes from.
 */
static int config_show(struct imp_cli *cli, int argc, const char *const *argv)
{
	static const char usage[] =
		"usage: config show OPTION [binding NAME] [domain NAME] | [listener [ADDRESS]]";
	const char *binding = NULL, *domain = NULL, *laddr = NULL;
	bool listener = false;
	int opt;

	if (argc < 3)
		return imp_cli_error(cli, "%s", usage);
	for (int i = 3; i < argc; i++) {
		if (strcasecmp(argv[i], "binding") == 0 && i + 1 < argc && binding == NULL)
			binding = argv[++i];
		else if (strcasecmp(argv[i], "domain") == 0 && i + 1 < argc && domain == NULL)
			domain = argv[++i];
		else if ((strcasecmp(argv[i], "listener") == 0 ||
			  strcasecmp(argv[i], "esmtp_listener") == 0) && !listener) {
			listener = true;
			if (i + 1 < argc)
				laddr = argv[++i];
		} else {
			return imp_cli_error(cli, "config show: unexpected \"%.64s\"; %s", argv[i], usage);
		}
	}
	if (listener && (binding || domain))
		return imp_cli_error(cli, "config show: a listener scope takes no binding or domain");
	opt = conf_option_lookup(argv[2]);
	if (opt < 0) {
		if (!listener && show_scoped(cli, argv[2], binding, domain))
			return 0;
		const char *near = conf_option_suggest(argv[2]);

		if (near)
			return imp_cli_error(cli, "config show: unknown option \"%.64s\" (did you mean \"%s\"?)",
					     argv[2], near);
		return imp_cli_error(cli, "config show: unknown option \"%.64s\"", argv[2]);
	}

	unsigned scopes = conf_option_scopes((enum conf_opt)opt);
	const char *name = conf_option_name((enum conf_opt)opt);
	if ((binding || domain) && !(scopes & (CONF_S_BINDING | CONF_S_DOMAIN | CONF_S_BINDING_GROUP)))
		return imp_cli_error(cli, "config show: %s is not a binding or domain option", name);
	if (domain && !(scopes & CONF_S_DOMAIN))
		return imp_cli_error(cli, "config show: %s cannot be set in a Domain", name);
	if (listener && !(scopes & CONF_S_LISTENER))
		return imp_cli_error(cli, "config show: %s is not a listener option", name);

	struct conf *c = api_runtime_conf();
	struct str where = STR_INIT, text = STR_INIT;
	const struct conf_value *v;
	int rc = 0;

	if (c == NULL) {
		rc = imp_cli_error(cli, "config show: no configuration is running");
		goto out;
	}
	if (binding && !conf_binding_exists(c, binding)) {
		rc = imp_cli_error(cli, "config show: no Binding \"%.64s\" in the configuration", binding);
		goto out;
	}
	if (listener || (!(scopes & CONF_S_DELIVERY) && (scopes & CONF_S_LISTENER))) {
		const struct conf_listener *l = NULL;

		if (laddr && (l = find_listener(c, laddr)) == NULL) {
			rc = imp_cli_error(cli, "config show: no ESMTP_Listener Listen \"%.64s\"", laddr);
			goto out;
		}
		v = conf_listener_get_where(c, l, (enum conf_opt)opt, &where);
	} else if (!(scopes & CONF_S_DELIVERY) && (scopes & CONF_S_CONTROL)) {
		v = conf_control_get(c, SIZE_MAX, (enum conf_opt)opt);
		str_appends(&where, v->file ? "Control_Listener" : "default");
	} else {
		v = conf_get_where(c, (enum conf_opt)opt, binding, domain, &where);
	}
	conf_value_format((enum conf_opt)opt, v, &text);
	if (imp_cli_json(cli)) {
		imp_cli_write(cli, "{\"option\":", 10);
		imp_cli_json_string(cli, name);
		imp_cli_write(cli, ",\"value\":", 9);
		imp_cli_json_string(cli, str_cstr(&text));
		imp_cli_write(cli, ",\"source\":", 10);
		imp_cli_json_string(cli, str_cstr(&where));
		imp_cli_write(cli, ",\"file\":", 8);
		if (v->file)
			imp_cli_json_string(cli, v->file);
		else
			imp_cli_write(cli, "null", 4);
		imp_cli_printf(cli, ",\"line\":%d,\"binding\":", v->file ? v->line : 0);
		if (binding)
			imp_cli_json_string(cli, binding);
		else
			imp_cli_write(cli, "null", 4);
		imp_cli_write(cli, ",\"domain\":", 10);
		if (domain)
			imp_cli_json_string(cli, domain);
		else
			imp_cli_write(cli, "null", 4);
		imp_cli_write(cli, "}\n", 2);
	} else if (v->file) {
		imp_cli_printf(cli, "%s = %s    # %s, %s:%d\n", name, str_cstr(&text),
			       str_cstr(&where), v->file, v->line);
	} else {
		imp_cli_printf(cli, "%s = %s    # %s\n", name, str_cstr(&text), str_cstr(&where));
	}
out:
	str_free(&where);
	str_free(&text);
	conf_unref(c);
	return rc;
}

/* cmd_config - config reload | config show OPTION [SCOPE]. */
static int cmd_config(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	if (argc >= 2 && strcmp(argv[1], "reload") == 0)
		return config_reload(cli, argc, argv);
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return config_show(cli, argc, argv);
	return imp_cli_error(cli, "usage: config reload | config show OPTION [SCOPE]");
}

/* ---- reopen logs ----------------------------------------------------------------- */

/* cmd_reopen - reopen logs: every log file reopened by name, as after rotation. */
static int cmd_reopen(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	static const char *const names[LOG__COUNT] = { "mainlog", "bouncelog", "rejectlog", "paniclog" };
	struct str path = STR_INIT;

	if (argc != 2 || strcmp(argv[1], "logs") != 0)
		return imp_cli_error(cli, "usage: reopen logs");
	log_reopen();
	log_panic("reopen logs console=1");
	if (imp_cli_json(cli))
		imp_cli_write(cli, "{\"reopened\":[", 13);
	else
		imp_cli_printf(cli, "Logs reopened:\n");
	for (int i = 0; i < LOG__COUNT; i++) {
		str_clear(&path);
		bool file = log_file_path((enum log_file)i, &path);

		if (imp_cli_json(cli)) {
			imp_cli_printf(cli, "%s{\"log\":\"%s\",\"path\":", i ? "," : "", names[i]);
			if (file)
				imp_cli_json_string(cli, str_cstr(&path));
			else
				imp_cli_write(cli, "null", 4);
			imp_cli_write(cli, "}", 1);
		} else {
			imp_cli_printf(cli, "  %-10s %s\n", names[i], file ? str_cstr(&path) : "(stderr)");
		}
	}
	if (imp_cli_json(cli))
		imp_cli_write(cli, "]}\n", 3);
	str_free(&path);
	return 0;
}

/* ---- trace smtp ------------------------------------------------------------------ */

/* trace_status - the switch as it is now. */
static void trace_status(struct imp_cli *cli)
{
	unsigned mask;
	struct str ip = STR_INIT;

	smtp_trace_describe(&mask, &ip);
	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"trace\":\"smtp\",\"inbound\":%s,\"outbound\":%s,\"ip\":",
			       mask & SMTP_TRACE_IN ? "true" : "false",
			       mask & SMTP_TRACE_OUT ? "true" : "false");
		if (ip.len)
			imp_cli_json_string(cli, str_cstr(&ip));
		else
			imp_cli_write(cli, "null", 4);
		imp_cli_write(cli, "}\n", 2);
	} else if (mask == 0) {
		imp_cli_printf(cli, "SMTP tracing is off\n");
	} else {
		imp_cli_printf(cli, "SMTP tracing is on (%s) for %s%s; state changes go to the paniclog\n",
			       mask == (SMTP_TRACE_IN | SMTP_TRACE_OUT) ? "inbound and outbound" :
			       mask & SMTP_TRACE_IN ? "inbound" : "outbound",
			       ip.len ? "peer " : "every peer", str_cstr(&ip));
	}
	str_free(&ip);
}

/* cmd_trace - trace smtp [on|off] [IP]. */
static int cmd_trace(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	static const char usage[] = "usage: trace smtp [on [IP] | off]";

	if (argc < 2 || strcmp(argv[1], "smtp") != 0 || argc > 4)
		return imp_cli_error(cli, "%s", usage);
	if (argc >= 3 && strcmp(argv[2], "on") == 0) {
		if (smtp_trace_set(SMTP_TRACE_IN | SMTP_TRACE_OUT, argc == 4 ? argv[3] : NULL) < 0)
			return imp_cli_error(cli, "trace smtp: \"%.64s\" is not an IP address", argv[3]);
		log_panic("trace smtp on ip=%s console=1", argc == 4 ? argv[3] : "any");
	} else if (argc >= 3 && strcmp(argv[2], "off") == 0) {
		if (argc == 4)
			return imp_cli_error(cli, "trace smtp off takes no IP (it stops all tracing)");
		smtp_trace_set(0, NULL);
		log_panic("trace smtp off console=1");
	} else if (argc != 2) {
		return imp_cli_error(cli, "%s", usage);
	}
	trace_status(cli);
	return 0;
}

/* ---- threads --------------------------------------------------------------------- */

struct threads_out {
	struct imp_cli *cli;
	bool first;
};

/* loop_row - one event loop thread. */
static void loop_row(void *arg, const struct loop_stats *st)
{
	struct threads_out *t = arg;

	if (imp_cli_json(t->cli)) {
		imp_cli_printf(t->cli, "%s{\"name\":", t->first ? "" : ",");
		imp_cli_json_string(t->cli, st->name);
		imp_cli_printf(t->cli, ",\"type\":\"loop\",\"threads\":%d,\"running\":%s,\"queued\":%llu,"
			       "\"handled\":%llu,\"busy_ms\":%lld,\"cpu_ms\":%lld}",
			       st->running ? 1 : 0, st->running ? "true" : "false", st->queued,
			       st->handled, st->cpu_ms, st->cpu_ms);
	} else {
		if (st->cpu_ms >= 0)
			imp_cli_printf(t->cli, "%-12s %-5s %7d %8llu %8s %10llu %10.2f %10.2f\n", st->name,
				       "loop", 1, st->queued, "-", st->handled, st->cpu_ms / 1000.0,
				       st->cpu_ms / 1000.0);
		else
			imp_cli_printf(t->cli, "%-12s %-5s %7d %8llu %8s %10llu %10s %10s\n", st->name,
				       "loop", 0, st->queued, "-", st->handled, "-", "-");
	}
	t->first = false;
}

/* pool_row - one worker pool. */
static void pool_row(void *arg, const struct pool_stats *st)
{
	struct threads_out *t = arg;

	if (imp_cli_json(t->cli)) {
		imp_cli_printf(t->cli, "%s{\"name\":", t->first ? "" : ",");
		imp_cli_json_string(t->cli, st->name);
		imp_cli_printf(t->cli, ",\"type\":\"pool\",\"threads\":%zu,\"running\":%zu,\"queued\":%zu,"
			       "\"handled\":%llu,\"busy_ms\":%llu,\"cpu_ms\":%lld}",
			       st->nthreads, st->running, st->pending, st->done, st->busy_ms, st->cpu_ms);
	} else {
		imp_cli_printf(t->cli, "%-12s %-5s %7zu %8zu %8zu %10llu %10.2f %10.2f\n", st->name, "pool",
			       st->nthreads, st->pending, st->running, st->done, st->busy_ms / 1000.0,
			       st->cpu_ms / 1000.0);
	}
	t->first = false;
}

/* cmd_threads - every event loop and worker pool: queue depth, work done, busy time. */
static int cmd_threads(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct threads_out t = { cli, true };

	if (argc > 1)
		return imp_cli_error(cli, "threads takes no arguments");
	if (imp_cli_json(cli))
		imp_cli_write(cli, "{\"threads\":[", 12);
	else
		imp_cli_printf(cli, "%-12s %-5s %7s %8s %8s %10s %10s %10s\n", "Name", "Type", "Threads",
			       "Queued", "Running", "Handled", "Busy(s)", "CPU(s)");
	loop_stats_each(loop_row, &t);
	pool_stats_each(pool_row, &t);
	if (imp_cli_json(cli))
		imp_cli_write(cli, "]}\n", 3);
	return 0;
}

/* ---- dns_cache and dig ----------------------------------------------------------- */

/* addr_text - one address as text (no port). */
static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	if (sockaddr_format((const struct sockaddr *)ss, buf, len, NULL, 0) < 0)
		snprintf(buf, len, "?");
}

/* family_wanted - whether an address of ss's family belongs in the answer (0: any). */
static bool family_wanted(const struct sockaddr_storage *ss, int family)
{
	return family == 0 || ss->ss_family == family;
}

/* write_hosts - the hosts of an answer, text or a JSON array. */
static void write_hosts(struct imp_cli *cli, const struct dns_mx_result *r, int family,
			const char *indent)
{
	char ip[64];

	if (imp_cli_json(cli))
		imp_cli_write(cli, "[", 1);
	for (size_t i = 0; i < r->nhosts; i++) {
		const struct dns_host *h = &r->hosts[i];
		bool first = true;

		if (imp_cli_json(cli)) {
			imp_cli_printf(cli, "%s{\"host\":", i ? "," : "");
			imp_cli_json_string(cli, h->name);
			imp_cli_printf(cli, ",\"preference\":%u,\"addresses\":[", h->pref);
		} else if (family) {
			imp_cli_printf(cli, "%s%s", indent, h->name);	/* A/AAAA: no preference */
		} else {
			imp_cli_printf(cli, "%s%5u %s", indent, h->pref, h->name);
		}
		for (size_t j = 0; j < h->naddr; j++) {
			if (!family_wanted(&h->addrs[j], family))
				continue;
			addr_text(&h->addrs[j], ip, sizeof(ip));
			if (imp_cli_json(cli)) {
				if (!first)
					imp_cli_write(cli, ",", 1);
				imp_cli_json_string(cli, ip);
			} else {
				imp_cli_printf(cli, " %s", ip);
			}
			first = false;
		}
		if (imp_cli_json(cli))
			imp_cli_write(cli, "]}", 2);
		else
			imp_cli_printf(cli, "%s\n", first ? " (no address)" : "");
	}
	if (imp_cli_json(cli))
		imp_cli_write(cli, "]", 1);
}

struct cache_rows {
	const struct dns_cache_entry **v;
	struct dns_cache_entry *copies;
	size_t n, cap;
};

/* collect_entry - keep one cache entry (the walk's pointers stay valid: nothing runs meanwhile). */
static void collect_entry(void *ctx, const struct dns_cache_entry *e)
{
	struct cache_rows *r = ctx;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 32;
		r->copies = xrealloc(r->copies, r->cap * sizeof(*r->copies));
	}
	r->copies[r->n++] = *e;
}

/* entry_cmp - by name, then kind: a stable listing. */
static int entry_cmp(const void *a, const void *b)
{
	const struct dns_cache_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->kind, y->kind);
}

/* cmd_dns_cache - what the resolver has cached, and its counters. */
static int cmd_dns_cache(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct cache_rows rows = { 0 };
	struct dns_stats st;
	struct dns *dns;

	if (argc > 1)
		return imp_cli_error(cli, "dns_cache takes no arguments");
	if (need_daemon(cli, "dns_cache") < 0)
		return -1;
	dns = daemon_ops.dns(daemon_ops.ctx);
	if (dns == NULL)
		return imp_cli_error(cli, "dns_cache: the resolver is not running");
	dns_get_stats(dns, &st);
	dns_cache_each(dns, collect_entry, &rows);
	if (rows.n)
		qsort(rows.copies, rows.n, sizeof(*rows.copies), entry_cmp);
	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"entries\":%zu,\"requests\":%llu,\"cache_hits\":%llu,"
			       "\"coalesced\":%llu,\"lookups\":%llu,\"queries\":%llu,\"inflight\":%llu,"
			       "\"cache\":[",
			       rows.n, (unsigned long long)st.requests, (unsigned long long)st.cache_hits,
			       (unsigned long long)st.coalesced, (unsigned long long)st.lookups,
			       (unsigned long long)st.queries, (unsigned long long)st.inflight);
	} else {
		imp_cli_printf(cli, "DNS cache: %zu entries; %llu requests, %llu from the cache, "
			       "%llu joined a lookup, %llu lookups (%llu queries), %llu in flight\n",
			       rows.n, (unsigned long long)st.requests, (unsigned long long)st.cache_hits,
			       (unsigned long long)st.coalesced, (unsigned long long)st.lookups,
			       (unsigned long long)st.queries, (unsigned long long)st.inflight);
	}
	for (size_t i = 0; i < rows.n; i++) {
		const struct dns_cache_entry *e = &rows.copies[i];

		if (imp_cli_json(cli)) {
			imp_cli_printf(cli, "%s{\"name\":", i ? "," : "");
			imp_cli_json_string(cli, e->name);
			imp_cli_printf(cli, ",\"type\":\"%s\",\"ttl\":%u,\"status\":\"%s\",\"error\":",
				       e->kind, e->ttl, dns_status_name(e->res->status));
			if (e->res->error)
				imp_cli_json_string(cli, e->res->error);
			else
				imp_cli_write(cli, "null", 4);
			imp_cli_write(cli, ",\"hosts\":", 9);
			write_hosts(cli, e->res, 0, "");
			imp_cli_write(cli, "}", 1);
		} else {
			imp_cli_printf(cli, "%s %s ttl=%u %s%s%s\n", e->kind, e->name, e->ttl,
				       dns_status_name(e->res->status), e->res->error ? ": " : "",
				       e->res->error ? e->res->error : "");
			write_hosts(cli, e->res, 0, "    ");
		}
	}
	if (imp_cli_json(cli))
		imp_cli_write(cli, "]}\n", 3);
	free(rows.copies);
	return 0;
}

/* domain_ok - a name dig may ask about: LDH labels (and "_"), 1..63 each, 253 in all. */
static bool domain_ok(const char *d)
{
	size_t len = strlen(d), label = 0;

	if (len == 0 || len > 253 || d[0] == '.')
		return false;
	for (const char *p = d; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

struct dig {
	struct imp_cli *h;		/* the deferred answer */
	struct dns *dns;
	int family;			/* AF_INET, AF_INET6, or 0 for MX */
	const char *type;
	bool calling;			/* inside dns_resolve_*: a callback now is a cache hit */
	bool *answered;			/* while calling: set when the callback ran */
	unsigned long long hits_before;
	char name[];
};

/* dig_done - the resolver's answer: written to the handle, which is finished. */
static void dig_done(void *ctx, const struct dns_mx_result *r)
{
	struct dig *q = ctx;
	struct imp_cli *cli = q->h;
	bool cached = false;

	if (q->answered)
		*q->answered = true;

	if (q->calling) {
		struct dns_stats st;

		dns_get_stats(q->dns, &st);
		cached = st.cache_hits > q->hits_before;
	}
	if (imp_cli_json(cli)) {
		imp_cli_write(cli, "{\"name\":", 8);
		imp_cli_json_string(cli, q->name);
		imp_cli_printf(cli, ",\"type\":\"%s\",\"status\":\"%s\",\"cached\":%s,\"ttl\":%u,\"error\":",
			       q->type, dns_status_name(r->status), cached ? "true" : "false", r->ttl);
		if (r->error)
			imp_cli_json_string(cli, r->error);
		else
			imp_cli_write(cli, "null", 4);
		imp_cli_write(cli, ",\"hosts\":", 9);
		write_hosts(cli, r, q->family, "");
		imp_cli_write(cli, "}\n", 2);
	} else if (r->status != DNS_OK) {
		imp_cli_printf(cli, "%s %s: %s (%s)\n", q->name, q->type, dns_status_name(r->status),
			       r->error ? r->error : "no answer");
	} else {
		imp_cli_printf(cli, "%s %s: ttl %u%s\n", q->name, q->type, r->ttl,
			       cached ? " (from the cache)" : "");
		write_hosts(cli, r, q->family, "  ");
	}
	imp_cli_finish(cli);
	free(q);
}

/* cmd_dig - dig DOMAIN [MX|A|AAAA]: a lookup by the daemon's resolver, answered when it ends. */
static int cmd_dig(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	const char *type = "MX";
	int family = 0;
	struct dns *dns;
	struct dns_stats st;

	if (argc < 2 || argc > 3)
		return imp_cli_error(cli, "usage: dig DOMAIN [MX|A|AAAA]");
	if (!domain_ok(argv[1]))
		return imp_cli_error(cli, "dig: \"%.64s\" is not a domain name", argv[1]);
	if (argc == 3) {
		if (strcasecmp(argv[2], "MX") == 0) {
			type = "MX";
		} else if (strcasecmp(argv[2], "A") == 0) {
			type = "A";
			family = AF_INET;
		} else if (strcasecmp(argv[2], "AAAA") == 0) {
			type = "AAAA";
			family = AF_INET6;
		} else {
			return imp_cli_error(cli, "dig: unknown type \"%.16s\" (MX, A or AAAA)", argv[2]);
		}
	}
	if (need_daemon(cli, "dig") < 0)
		return -1;
	dns = daemon_ops.dns(daemon_ops.ctx);
	if (dns == NULL)
		return imp_cli_error(cli, "dig: the resolver is not running");

	size_t len = strlen(argv[1]);
	struct dig *q = xcalloc(1, sizeof(*q) + len + 1);
	memcpy(q->name, argv[1], len + 1);
	q->dns = dns;
	q->family = family;
	q->type = type;
	q->h = imp_cli_defer(cli);
	dns_get_stats(dns, &st);
	q->hits_before = st.cache_hits;
	/* The callback may run before this returns (a cache hit): q is freed then. */
	bool answered = false;
	q->calling = true;
	q->answered = &answered;
	if (family == 0)
		dns_resolve_mx(dns, q->name, dig_done, q);
	else
		dns_resolve_host(dns, q->name, dig_done, q);
	if (!answered) {
		q->calling = false;
		q->answered = NULL;
	}
	return 0;
}

/* ---- paniclog -------------------------------------------------------------------- */

/* cmd_paniclog - the last N lines (default 20) of the paniclog. */
static int cmd_paniclog(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct str path = STR_INIT;
	long want = PANICLOG_DEFAULT_LINES;
	int fd, rc = 0;

	if (argc > 2)
		return imp_cli_error(cli, "usage: paniclog [N]");
	if (argc == 2 && !parse_count(argv[1], 1, PANICLOG_MAX_LINES, &want))
		return imp_cli_error(cli, "paniclog: N must be a number from 1 to %d, not \"%.32s\"",
				     PANICLOG_MAX_LINES, argv[1]);
	if (!log_file_path(LOG_PANIC, &path)) {
		str_free(&path);
		return imp_cli_error(cli, "paniclog: the paniclog goes to stderr (no log directory)");
	}
	log_flush();		/* the lines still buffered are the newest */
	fd = open(str_cstr(&path), O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = imp_cli_error(cli, "paniclog: cannot open %s: %s", str_cstr(&path), strerror(errno));
		str_free(&path);
		return rc;
	}
	/*
	 * Read back from the end, a block at a time, until N newlines are
	 * in hand (at most PANICLOG_MAX_READ bytes: a short local read).
	 */
	off_t end = lseek(fd, 0, SEEK_END), start = end;
	char *buf = NULL;
	size_t have = 0;
	long lines = 0;

	if (end < 0) {
		rc = imp_cli_error(cli, "paniclog: cannot read %s: %s", str_cstr(&path), strerror(errno));
		goto out;
	}

	while (start > 0 && lines <= want && end - start < PANICLOG_MAX_READ) {
		off_t step = start > 65536 ? 65536 : start;
		char *nb = xmalloc(have + (size_t)step);

		start -= step;
		ssize_t got = pread(fd, nb, (size_t)step, start);
		if (got != (ssize_t)step) {
			free(nb);
			rc = imp_cli_error(cli, "paniclog: cannot read %s", str_cstr(&path));
			goto out;
		}
		if (have)
			memcpy(nb + step, buf, have);
		free(buf);
		buf = nb;
		have += (size_t)step;
		/* Only the new block: recounting all of buf made a 4 MiB read quadratic. */
		for (off_t i = 0; i < step; i++)
			lines += buf[i] == '\n';
	}
	/* Skip to the first of the last `want` lines (a final line without newline counts too). */
	size_t from = 0;
	long nl = 0;
	bool last_open = have > 0 && buf[have - 1] != '\n';
	long total = lines + (last_open ? 1 : 0);
	long skip = total > want ? total - want : 0;
	if (start > 0 && skip == 0 && have > 0) {
		/* The read stopped mid-line: the first partial line is not whole. */
		skip = 1;
	}
	for (size_t i = 0; i < have && nl < skip; i++)
		if (buf[i] == '\n') {
			nl++;
			from = i + 1;
		}
	if (imp_cli_json(cli)) {
		imp_cli_write(cli, "{\"path\":", 8);
		imp_cli_json_string(cli, str_cstr(&path));
		imp_cli_write(cli, ",\"lines\":[", 10);
		bool first = true;
		size_t i = from;
		while (i < have) {
			char *eol = memchr(buf + i, '\n', have - i);
			size_t n = eol ? (size_t)(eol - (buf + i)) : have - i;
			char *line = xstrndup(buf + i, n);

			if (!first)
				imp_cli_write(cli, ",", 1);
			imp_cli_json_string(cli, line);
			free(line);
			first = false;
			i += n + 1;
		}
		imp_cli_write(cli, "]}\n", 3);
	} else {
		imp_cli_write(cli, buf ? buf + from : "", have - from);
		if (have > from && buf[have - 1] != '\n')
			imp_cli_write(cli, "\n", 1);
	}
out:
	free(buf);
	close(fd);
	str_free(&path);
	return rc;
}

/* ---- memory ---------------------------------------------------------------------- */

/* status_kb - a "Name:  123 kB" field of /proc/self/status, in kB; -1 when absent. */
static long long status_kb(const char *status, const char *field)
{
	size_t n = strlen(field);

	for (const char *p = status; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, field, n) == 0 && p[n] == ':')
			return strtoll(p + n + 1, NULL, 10);
	return -1;
}

/* cmd_memory - the process's memory (RSS, peak, virtual) and the allocator's arenas. */
static int cmd_memory(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	char status[4096];
	ssize_t got = -1;
	int fd;

	if (argc > 1)
		return imp_cli_error(cli, "memory takes no arguments");
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		got = read(fd, status, sizeof(status) - 1);
		close(fd);
	}
	status[got > 0 ? got : 0] = '\0';
	long long rss = status_kb(status, "VmRSS"), hwm = status_kb(status, "VmHWM");
	long long vsz = status_kb(status, "VmSize");
	struct mallinfo2 mi = mallinfo2();
	const struct api_runtime *rt = api_runtime();
	size_t msgs = rt && rt->queue ? queue_message_count(rt->queue) : 0;
	size_t rcpts = rt && rt->queue ? queue_recipient_count(rt->queue) : 0;

	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"rss_kb\":%lld,\"peak_rss_kb\":%lld,\"virtual_kb\":%lld,"
			       "\"heap_arena_bytes\":%zu,\"heap_mmap_bytes\":%zu,\"heap_in_use_bytes\":%zu,"
			       "\"heap_free_bytes\":%zu,\"heap_releasable_bytes\":%zu,"
			       "\"queued_messages\":%zu,\"queued_recipients\":%zu}\n",
			       rss, hwm, vsz, mi.arena, mi.hblkhd, mi.uordblks + mi.hblkhd, mi.fordblks,
			       mi.keepcost, msgs, rcpts);
	} else {
		imp_cli_printf(cli, "Process memory:\n"
			       "  Resident (RSS):       %10lld kB\n"
			       "  Peak resident:        %10lld kB\n"
			       "  Virtual:              %10lld kB\n"
			       "Allocator (glibc malloc, all arenas):\n"
			       "  Arena (sbrk/heaps):   %10zu bytes\n"
			       "  Mapped blocks:        %10zu bytes\n"
			       "  In use:               %10zu bytes\n"
			       "  Free in arenas:       %10zu bytes\n"
			       "  Releasable at top:    %10zu bytes\n"
			       "Queue in memory: %zu messages, %zu recipients\n",
			       rss, hwm, vsz, mi.arena, mi.hblkhd, mi.uordblks + mi.hblkhd, mi.fordblks,
			       mi.keepcost, msgs, rcpts);
	}
	return 0;
}

/* ---- shutdown -------------------------------------------------------------------- */

/* cmd_shutdown - SIGTERM's graceful stop; this reply is written before the daemon exits. */
static int cmd_shutdown(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	if (argc > 1)
		return imp_cli_error(cli, "shutdown takes no arguments");
	if (need_daemon(cli, "shutdown") < 0)
		return -1;
	daemon_ops.shutdown(daemon_ops.ctx);
	if (imp_cli_json(cli))
		imp_cli_printf(cli, "{\"shutdown\":true,\"pid\":%ld}\n", (long)getpid());
	else
		imp_cli_printf(cli, "Shutting down (pid %ld): sessions and deliveries finish, "
			       "then the daemon exits\n", (long)getpid());
	return 0;
}

/* The operations commands, in `help` order: name, one line of help, handler. */
static const struct {
	const char *name, *help;
	imp_cli_fn fn;
} ops_commands[] = {
	{ "config", "config reload | config show OPTION [binding B] [domain D] | [listener [ADDR]]",
	  cmd_config },
	{ "reopen", "reopen logs: reopen the log files by name (after rotation)", cmd_reopen },
	{ "trace", "trace smtp [on [IP] | off]: SMTP state changes to the paniclog", cmd_trace },
	{ "threads", "event loops and worker pools: queue depth, work done, busy time",
	  cmd_threads },
	{ "dns_cache", "the resolver's cached answers and counters", cmd_dns_cache },
	{ "dig", "dig DOMAIN [MX|A|AAAA]: look up through the daemon's resolver", cmd_dig },
	{ "paniclog", "paniclog [N]: the last N lines of the paniclog (default 20)", cmd_paniclog },
	{ "memory", "process memory (RSS) and the allocator's arenas", cmd_memory },
	{ "shutdown", "stop gracefully, as SIGTERM", cmd_shutdown },
};

void api_console_ops_register(struct api_gen *g)
{
	struct imp_instance *core = api_core_instance(g);

	for (size_t i = 0; i < sizeof(ops_commands) / sizeof(ops_commands[0]); i++)
		if (imp_cli_register(core, ops_commands[i].name, ops_commands[i].help,
				     ops_commands[i].fn, NULL) < 0)
			abort();	/* a clash among the core's own commands: a build bug */
}
