/*
 * queue_console.c - the console's queue and message commands
 *
 * Momentum's names and meanings (docs/console.md, "Queue and message
 * commands"): mailq, domain, binding summary, showqueue, message
 * details|retry|fail, flush domain, fail domain, reroute queue, rebind,
 * suspend and resume (a domain or a binding). Each answers text shaped
 * like Momentum's, or one JSON document with --json.
 *
 * The handlers run on the scheduler thread (impetus/console.h), which
 * owns the queue: they read struct queue directly and change it through
 * queue_admin.c and queue_ops.c, the same paths the module API uses, so
 * every change is written to the spool as any other would be. Listings
 * are capped (SHOWQUEUE_MAX, MAILQ_MAX_ROWS) and say when they are.
 *
 * Failures: bad arguments, an unknown domain, binding or message id are
 * a one-line error (imp_cli_error); nothing is changed then.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/console.h>

#include "api/api.h"
#include "api/api_runtime.h"
#include "config/config.h"
#include "core/id.h"
#include "core/mem.h"
#include "core/str.h"
#include "core/strmap.h"
#include "message/envelope.h"
#include "queue/queue_int.h"
#include "queue/queue_out.h"
#include "spool/spool_idmap.h"

#define SHOWQUEUE_DEFAULT 100		/* Momentum's "100,0" */
#define SHOWQUEUE_MAX 10000		/* the most one showqueue lists */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define SHOWQUEUE_OFFSET_MAX 1000000000UL	/* LIMIT and OFFSET are below this */
#define MAILQ_MAX_ROWS 1000		/* queues listed by mailq */
#define DOMAIN_NAME_MAX 255
/* The reply a console failure gives the recipients it fails. */
#define ADMIN_FAIL_CODE 554
#define ADMIN_FAIL_TEXT "5.0.0 failed by the administrator"

/* ------------------------------------------------------------------ */
/* helpers                                                             */

/* the_queue - the running queue, or NULL with the error set. */
static struct queue *the_queue(struct imp_cli *cli)
{
	struct queue *q = api_runtime()->queue;

	if (q == NULL)
		imp_cli_error(cli, "the queue is not running");
	return q;
}

/* bname - the binding's name as the operator writes it ("" is "default"). */
static const char *bname(const char *binding)
{
	return *binding ? binding : "default";
}

/* gname - the binding's group as shown, "default" when none. */
static const char *gname(const struct queue *q, const char *binding)
{
	const char *g = *binding ? conf_binding_group_of(q->conf, binding) : NULL;

	return g && *g ? g : "default";
}

/*
 * domain_arg - the lower-cased domain of an argument into buf, or NULL
 * with the error set. Letters, digits, '-', '.', '_' and UTF-8 bytes;
 * anything else (an address, a space, a control byte) is a typo.
 */
static const char *domain_arg(struct imp_cli *cli, const char *arg, char buf[DOMAIN_NAME_MAX + 1])
{
	size_t n = strlen(arg);

	if (n == 0 || n > DOMAIN_NAME_MAX)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)arg[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			   c == '.' || c == '_' || c >= 0x80))
			goto bad;
		buf[i] = (char)c;
	}
	buf[n] = '\0';
	return buf;
bad:
	imp_cli_error(cli, "bad domain \"%.64s\"", arg);
	return NULL;
}

/* binding_arg - the binding named by arg ("default" is ""), or NULL with the error set. */
static const char *binding_arg(struct imp_cli *cli, const struct queue *q, const char *arg)
{
	if (strcmp(arg, "default") == 0)
		return "";
	if (!conf_binding_exists(q->conf, arg)) {
		imp_cli_error(cli, "unknown binding \"%.64s\"", arg);
		return NULL;
	}
	return arg;
}

/* id_arg - a message id, or false with the error set. */
static bool id_arg(struct imp_cli *cli, const char *arg, uint64_t *id)
{
	if (!id_parse(arg, id)) {
		imp_cli_error(cli, "bad message id \"%.64s\" (16 hex digits, as in the logs)", arg);
		return false;
	}
	return true;
}

/*
 * limit_arg - "LIMIT" or "LIMIT,OFFSET", decimal digits only (no sign, no
 * blank), LIMIT at least 1, both under SHOWQUEUE_OFFSET_MAX so their sum
 * cannot wrap.
 */
static bool limit_arg(const char *arg, unsigned long *limit, unsigned long *offset)
{
	const char *p = arg;
	unsigned long v[2] = { 0, 0 };

	for (int k = 0; k < 2; k++) {
		if (*p < '0' || *p > '9')
			return false;
		for (; *p >= '0' && *p <= '9'; p++) {
			v[k] = v[k] * 10 + (unsigned long)(*p - '0');
			if (v[k] > SHOWQUEUE_OFFSET_MAX)
				return false;
		}
		if (*p == '\0')
			break;
		if (k == 1 || *p != ',')
			return false;
		p++;
	}
	if (v[0] == 0)
		return false;
	*limit = v[0];
	*offset = v[1];
	return true;
}

/* no_queue - the error for a domain nothing is queued for. */
static int no_queue(struct imp_cli *cli, const char *domain)
{
	return imp_cli_error(cli, "no queue for domain \"%s\" (nothing queued for it)", domain);
}

/* ------------------------------------------------------------------ */
/* mailq                                                               */

/* cmd_mailq - active and delayed counts per (binding, domain) queue, Momentum's table. */
static int cmd_mailq(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct queue *q = the_queue(cli);
	struct queue_dest **v;
	uint64_t ta = 0, td = 0;

	if (q == NULL)
		return -1;
	if (argc > 1)
		return imp_cli_error(cli, "mailq takes no arguments");
	size_t n = queue_admin_dests(q, NULL, NULL, &v);
	size_t shown = n < MAILQ_MAX_ROWS ? n : MAILQ_MAX_ROWS;

	for (size_t i = 0; i < n; i++) {
		ta += v[i]->nactive;
		td += v[i]->nheap;
	}
	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"queues\":[");
		for (size_t i = 0; i < shown; i++) {
			struct queue_dest *dq = v[i];
			imp_cli_printf(cli, "%s{\"group\":", i ? "," : "");
			imp_cli_json_string(cli, gname(q, dq->binding));
			imp_cli_printf(cli, ",\"binding\":");
			imp_cli_json_string(cli, bname(dq->binding));
			imp_cli_printf(cli, ",\"domain\":");
			imp_cli_json_string(cli, dq->domain);
			imp_cli_printf(cli, ",\"active\":%" PRIu64 ",\"delayed\":%" PRIu32
				       ",\"connections\":%" PRIu32 ",\"suspended\":%s}",
				       dq->nactive, dq->nheap, dq->conns,
				       queue_admin_held(q, dq) || queue_dest_settings(dq)->suspend ?
				       "true" : "false");
		}
		imp_cli_printf(cli, "],\"count\":%zu,\"truncated\":%s,\"active\":%" PRIu64
			       ",\"delayed\":%" PRIu64 "}\n", n, shown < n ? "true" : "false", ta, td);
	} else {
		imp_cli_printf(cli, "%-32s %28s %7s %7s\n", "Group/Binding", "Domain", "AQ", "DQ");
		imp_cli_printf(cli, "%.*s\n", 77, "------------------------------------------------"
			       "----------------------------------------");
		for (size_t i = 0; i < shown; i++) {
			struct queue_dest *dq = v[i];
			struct str gb = STR_INIT;
			str_appendf(&gb, "%s/%s", gname(q, dq->binding), bname(dq->binding));
			imp_cli_printf(cli, "%-32s %28s %7" PRIu64 " %7" PRIu32 "\n", gb.s, dq->domain,
				       dq->nactive, dq->nheap);
			str_free(&gb);
		}
		if (shown < n)
			imp_cli_printf(cli, "(%zu more queues not shown: the first %d are listed)\n",
				       n - shown, MAILQ_MAX_ROWS);
		imp_cli_printf(cli, "%zu queues, %" PRIu64 " active, %" PRIu64 " delayed\n", n, ta,
			       td);
	}
	free(v);
	return 0;
}

/* ------------------------------------------------------------------ */
/* domain, binding summary                                             */

/* cmd_domain - one domain's queues, one block per binding. */
static int cmd_domain(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct queue *q = the_queue(cli);
	char buf[DOMAIN_NAME_MAX + 1];
	const char *d;
	struct queue_dest **v;

	if (q == NULL)
		return -1;
	if (argc != 2)
		return imp_cli_error(cli, "usage: domain DOMAIN");
	if ((d = domain_arg(cli, argv[1], buf)) == NULL)
		return -1;
	size_t n = queue_admin_dests(q, NULL, d, &v);
	const char *route = queue_admin_route(q, d);
	bool held = queue_admin_is_held(q, NULL, d);
	int64_t now_s = queue_now_us() / 1000000;

	if (n == 0 && !held && route == d) {
		free(v);
		return no_queue(cli, d);
	}
	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"domain\":");
		imp_cli_json_string(cli, d);
		imp_cli_printf(cli, ",\"suspended\":%s,\"rerouted_to\":", held ? "true" : "false");
		if (route != d)
			imp_cli_json_string(cli, route);
		else
			imp_cli_printf(cli, "null");
		imp_cli_printf(cli, ",\"bindings\":[");
	} else {
		imp_cli_printf(cli, "Domain '%s'%s\n", d, held ? " (suspended)" : "");
		if (route != d)
			imp_cli_printf(cli, "Rerouted to: %s\n", route);
	}
	for (size_t i = 0; i < n; i++) {
		struct queue_dest *dq = v[i];
		const struct queue_dest_settings *s = queue_dest_settings(dq);
		bool susp = s->suspend || queue_admin_held(q, dq);
		double r10 = queue_rate_get(&dq->delivery, now_s, 10);
		double r60 = queue_rate_get(&dq->delivery, now_s, 60);

		if (imp_cli_json(cli)) {
			imp_cli_printf(cli, "%s{\"binding\":", i ? "," : "");
			imp_cli_json_string(cli, bname(dq->binding));
			imp_cli_printf(cli, ",\"group\":");
			imp_cli_json_string(cli, gname(q, dq->binding));
			imp_cli_printf(cli, ",\"active\":%" PRIu64 ",\"delayed\":%" PRIu32
				       ",\"connections\":%" PRIu32 ",\"delivered\":%" PRIu64
				       ",\"failed\":%" PRIu64 ",\"deferred\":%" PRIu64
				       ",\"delivery_rate_10s\":%.2f,\"delivery_rate_60s\":%.2f"
				       ",\"suspended\":%s,\"suspended_by\":",
				       dq->nactive, dq->nheap, dq->conns, dq->delivered, dq->failed,
				       dq->deferred, r10, r60, susp ? "true" : "false");
			if (!susp)
				imp_cli_printf(cli, "null");
			else
				imp_cli_json_string(cli, s->suspend ? "Suspend_Delivery" : "console");
			imp_cli_printf(cli, ",\"hosts\":[");
			for (size_t k = 0; k < dq->naddr; k++) {
				if (k)
					imp_cli_printf(cli, ",");
				imp_cli_json_string(cli, dq->names && dq->names[k] ? dq->names[k] : "");
			}
			imp_cli_printf(cli, "],\"mx_rollup\":%s,\"next_hop\":", s->rollup ? "true" : "false");
			if (dq->hop) {
				imp_cli_printf(cli, "{\"name\":");
				imp_cli_json_string(cli, dq->hop->name);
				imp_cli_printf(cli, ",\"connections\":%" PRIu32 ",\"domains\":%zu"
					       ",\"transactions\":%" PRIu64 ",\"multi_domain_transactions\":%"
					       PRIu64 "}", dq->hop->conns, dq->hop->nmembers,
					       dq->hop->transactions, dq->hop->multi);
			} else {
				imp_cli_printf(cli, "null");
			}
			imp_cli_printf(cli, "}");
		} else {
			imp_cli_printf(cli, "Binding %s (group %s):%s\n", bname(dq->binding),
				       gname(q, dq->binding),
				       !susp ? "" : s->suspend ? " suspended (Suspend_Delivery)" :
				       " suspended (console)");
			imp_cli_printf(cli, "  Queue:\n        Active: %10" PRIu64 "\n"
				       "        Delayed: %9" PRIu32 "\n", dq->nactive, dq->nheap);
			imp_cli_printf(cli, "  Deliveries: %10" PRIu64 "\n  Failures: %12" PRIu64
				       "\n  Deferrals: %11" PRIu64 "\n", dq->delivered, dq->failed,
				       dq->deferred);
			imp_cli_printf(cli, "  Delivery Rate: %6.2f messages/second (10 s), %6.2f (60 s)\n",
				       r10, r60);
			imp_cli_printf(cli, "  Active Connections: %" PRIu32 "\n", dq->conns);
			if (dq->naddr)
				imp_cli_printf(cli, "  Hosts: %zu (%s first)\n", dq->naddr,
					       dq->names && dq->names[0] ? dq->names[0] : "?");
			if (dq->hop)
				imp_cli_printf(cli, "  Next hop: %s (%" PRIu32 " connections, %zu domains,"
					       " %" PRIu64 " transactions, %" PRIu64 " with several domains)\n",
					       dq->hop->name, dq->hop->conns, dq->hop->nmembers,
					       dq->hop->transactions, dq->hop->multi);
			else if (!s->rollup)
				imp_cli_printf(cli, "  Next hop: its own connections (MX_Rollup = false)\n");
		}
	}
	if (imp_cli_json(cli))
		imp_cli_printf(cli, "]}\n");
	else if (n == 0)
		imp_cli_printf(cli, "No queued mail.\n");
	free(v);
	return 0;
}

/* cmd_binding - `binding summary`: per binding, its queues' totals. */
static int cmd_binding(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct queue *q = the_queue(cli);
	struct queue_dest **v;

	if (q == NULL)
		return -1;
	if (argc != 2 || strcmp(argv[1], "summary") != 0)
		return imp_cli_error(cli, "usage: binding summary");
	size_t n = queue_admin_dests(q, NULL, NULL, &v);	/* sorted by binding */
	bool json = imp_cli_json(cli);
	size_t rows = 0;

	if (json)
		imp_cli_printf(cli, "{\"bindings\":[");
	else
		imp_cli_printf(cli, "%-24s %-16s %7s %9s %9s %6s %10s %8s %s\n", "Binding", "Group",
			       "Domains", "Active", "Delayed", "Conns", "Delivered", "Failed",
			       "Suspended");
	for (size_t i = 0; i < n;) {
		const char *b = v[i]->binding;
		uint64_t a = 0, dl = 0, c = 0, dv = 0, f = 0, nd = 0;
		size_t j = i;
		for (; j < n && strcmp(v[j]->binding, b) == 0; j++) {
			a += v[j]->nactive;
			dl += v[j]->nheap;
			c += v[j]->conns;
			dv += v[j]->delivered;
			f += v[j]->failed;
			nd++;
		}
		bool held = queue_admin_is_held(q, b, NULL);
		if (json) {
			imp_cli_printf(cli, "%s{\"binding\":", rows ? "," : "");
			imp_cli_json_string(cli, bname(b));
			imp_cli_printf(cli, ",\"group\":");
			imp_cli_json_string(cli, gname(q, b));
			imp_cli_printf(cli, ",\"domains\":%" PRIu64 ",\"active\":%" PRIu64
				       ",\"delayed\":%" PRIu64 ",\"connections\":%" PRIu64
				       ",\"delivered\":%" PRIu64 ",\"failed\":%" PRIu64
				       ",\"suspended\":%s}", nd, a, dl, c, dv, f, held ? "true" : "false");
		} else {
			imp_cli_printf(cli, "%-24s %-16s %7" PRIu64 " %9" PRIu64 " %9" PRIu64 " %6" PRIu64
				       " %10" PRIu64 " %8" PRIu64 " %s\n", bname(b), gname(q, b), nd, a,
				       dl, c, dv, f, held ? "yes" : "no");
		}
		rows++;
		i = j;
	}
	if (json)
		imp_cli_printf(cli, "]}\n");
	free(v);
	return 0;
}

/* ------------------------------------------------------------------ */
/* showqueue                                                           */

/* by_next_attempt - delayed entries in the order they fall due. */
static int by_next_attempt(const void *a, const void *b)
{
	const struct qentry *x = *(struct qentry *const *)a, *y = *(struct qentry *const *)b;

	return x->next_attempt < y->next_attempt ? -1 : x->next_attempt > y->next_attempt;
}

struct sq_row {
	const struct queue_dest *dq;
	const struct qentry *e;
	bool active;
};

/* show_entry - one recipient of showqueue. */
static void show_entry(struct imp_cli *cli, const struct sq_row *r, bool first, int64_t now_s)
{
	const struct envelope *sm = r->e->m->sm;
	char idb[ID_BUF_SIZE];

	id_format(sm->id, idb);
	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "%s{\"id\":\"%s\",\"queue\":\"%s\",\"binding\":", first ? "" : ",",
			       idb, r->active ? "active" : "delayed");
		imp_cli_json_string(cli, bname(r->dq->binding));
		imp_cli_printf(cli, ",\"sender\":");
		imp_cli_json_string(cli, sm->sender);
		imp_cli_printf(cli, ",\"recipient\":");
		imp_cli_json_string(cli, sm->rcpts[r->e->rcpt].addr);
		imp_cli_printf(cli, ",\"received\":%" PRId64 ",\"attempts\":%" PRIu32
			       ",\"next_attempt\":%" PRId64 "}", sm->received, r->e->retries,
			       r->e->next_attempt);
	} else {
		imp_cli_printf(cli, "[%s/%s] %s Created: %" PRId64 " Attempts: %" PRIu32,
			       r->active ? "active" : "delayed", bname(r->dq->binding), idb,
			       sm->received, r->e->retries);
		if (r->active || r->e->next_attempt <= now_s)
			imp_cli_printf(cli, " Next: now\n");
		else
			imp_cli_printf(cli, " Next: %" PRId64 " (in %" PRId64 " s)\n",
				       r->e->next_attempt, r->e->next_attempt - now_s);
		imp_cli_printf(cli, "  From: <%s> To: <%s>\n", sm->sender, sm->rcpts[r->e->rcpt].addr);
	}
}

/*
 * cmd_showqueue - showqueue [binding B|all] DOMAIN [LIMIT[,OFFSET]]: the
 * recipients queued for a domain, active ones in delivery order, then
 * delayed ones by next attempt.
 */
static int cmd_showqueue(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct queue *q = the_queue(cli);
	char buf[DOMAIN_NAME_MAX + 1];
	const char *binding = NULL, *d;
	unsigned long limit = SHOWQUEUE_DEFAULT, offset = 0;
	int i = 1;

	if (q == NULL)
		return -1;
	if (argc >= 3 && strcmp(argv[1], "binding") == 0) {
		if (strcmp(argv[2], "all") != 0 && (binding = binding_arg(cli, q, argv[2])) == NULL)
			return -1;
		i = 3;
	}
	if (argc - i < 1 || argc - i > 2)
		return imp_cli_error(cli, "usage: showqueue [binding BINDING|all] DOMAIN [LIMIT[,OFFSET]]");
	if ((d = domain_arg(cli, argv[i], buf)) == NULL)
		return -1;
	if (argc - i == 2 && !limit_arg(argv[i + 1], &limit, &offset))
		return imp_cli_error(cli, "bad LIMIT[,OFFSET] \"%.32s\"", argv[i + 1]);
	bool capped = limit > SHOWQUEUE_MAX;
	if (capped)
		limit = SHOWQUEUE_MAX;

	struct queue_dest **v;
	size_t n = queue_admin_dests(q, binding, d, &v);
	if (n == 0) {
		free(v);
		return no_queue(cli, d);
	}
	/* The rows, up to offset + limit of them: never a copy of a whole big queue. */
	uint64_t total = 0;
	size_t want = offset + limit, nrows = 0;
	struct sq_row *rows = xcalloc(want < 1024 ? want : 1024, sizeof(*rows));
	size_t rcap = want < 1024 ? want : 1024;
	for (size_t k = 0; k < n; k++)
		total += v[k]->nactive + v[k]->nheap;
	for (size_t k = 0; k < n && nrows < want; k++)
		for (const struct qentry *e = v[k]->head; e && nrows < want; e = e->next) {
			if (nrows == rcap) {
				rcap *= 2;
				rows = xrealloc(rows, rcap * sizeof(*rows));
			}
			rows[nrows++] = (struct sq_row){ v[k], e, true };
		}
	for (size_t k = 0; k < n && nrows < want; k++) {
		struct queue_dest *dq = v[k];
		struct qentry **h = xmalloc((dq->nheap + 1) * sizeof(*h));
		if (dq->nheap)
			memcpy(h, dq->heap, dq->nheap * sizeof(*h));
		qsort(h, dq->nheap, sizeof(*h), by_next_attempt);
		for (uint32_t x = 0; x < dq->nheap && nrows < want; x++) {
			if (nrows == rcap) {
				rcap *= 2;
				rows = xrealloc(rows, rcap * sizeof(*rows));
			}
			rows[nrows++] = (struct sq_row){ dq, h[x], false };
		}
		free(h);
	}
	int64_t now_s = queue_now_us() / 1000000;
	size_t shown = nrows > offset ? nrows - offset : 0;
	bool more = offset + shown < total;
	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"domain\":");
		imp_cli_json_string(cli, d);
		imp_cli_printf(cli, ",\"total\":%" PRIu64 ",\"offset\":%lu,\"limit\":%lu,"
			       "\"shown\":%zu,\"truncated\":%s,\"messages\":[", total, offset, limit,
			       shown, more ? "true" : "false");
	}
	for (size_t r = offset; r < nrows; r++)
		show_entry(cli, &rows[r], r == offset, now_s);
	if (imp_cli_json(cli))
		imp_cli_printf(cli, "]}\n");
	else if (more)	/* the hint names the binding asked for, or the next page is another list */
		imp_cli_printf(cli, "(showing %zu of %" PRIu64 " recipients from %lu%s; "
			       "showqueue %s%s%s%s %lu,%lu for the next)\n", shown, total, offset,
			       capped ? ", at most " STRINGIFY(SHOWQUEUE_MAX) " at once" : "",
			       i == 3 ? "binding " : "", i == 3 ? argv[2] : "",
			       i == 3 ? " " : "", d, limit, offset + limit);
	else
		imp_cli_printf(cli, "(%" PRIu64 " recipients)\n", total);
	free(rows);
	free(v);
	return 0;
}

/* ------------------------------------------------------------------ */
/* message                                                             */

/* find_entry - where recipient rcpt of m waits: its entry and queue, or NULL (out in a batch). */
static const struct qentry *find_entry(struct queue *q, struct qmsg *m, uint32_t rcpt,
				       bool *active)
{
	char *domain = queue_route_domain(m->sm->rcpts[rcpt].addr);
	struct queue_dest *dq = queue_dest_find(q, m->sm->binding, queue_admin_route(q, domain));

	free(domain);
	if (dq == NULL)
		return NULL;
	for (const struct qentry *e = dq->head; e; e = e->next)
		if (e->m == m && e->rcpt == rcpt) {
			*active = true;
			return e;
		}
	for (uint32_t i = 0; i < dq->nheap; i++)
		if (dq->heap[i]->m == m && dq->heap[i]->rcpt == rcpt) {
			*active = false;
			return dq->heap[i];
		}
	return NULL;
}

/* rcpt_state - a final recipient state's name. */
static const char *rcpt_state(uint8_t st)
{
	switch (st) {
	case ENVELOPE_RCPT_QUEUED: return "queued";
	case ENVELOPE_RCPT_DELIVERED: return "delivered";
	case ENVELOPE_RCPT_FAILED: return "failed";
	default: return "unknown";
	}
}

/* message_details - one queued message: envelope, binding, each recipient's state. */
static int message_details(struct imp_cli *cli, struct queue *q, struct qmsg *m)
{
	const struct envelope *sm = m->sm;
	char idb[ID_BUF_SIZE];
	bool json = imp_cli_json(cli);
	int64_t expires = m->expires ? m->expires :
			  sm->received + conf_int(q->conf, CONF_OPT_MESSAGE_EXPIRATION);

	id_format(sm->id, idb);
	if (json) {
		imp_cli_printf(cli, "{\"id\":\"%s\",\"sender\":", idb);
		imp_cli_json_string(cli, sm->sender);
		imp_cli_printf(cli, ",\"received\":%" PRId64 ",\"expires\":%" PRId64 ",\"binding\":",
			       sm->received, expires);
		imp_cli_json_string(cli, bname(sm->binding));
		imp_cli_printf(cli, ",\"binding_group\":");
		imp_cli_json_string(cli, sm->binding_group && *sm->binding_group ?
				    sm->binding_group : "default");
		imp_cli_printf(cli, ",\"size\":%" PRIu64 ",\"pending\":%" PRIu32 ",\"recipients\":[",
			       sm->loc.length, m->pending);
	} else {
		imp_cli_printf(cli, "Message %s\n  From: <%s>\n  Received: %" PRId64
			       "\n  Expires: %" PRId64 "\n  Binding: %s (group %s)\n  Size: %" PRIu64
			       " bytes\n  Recipients: %zu (%" PRIu32 " pending)\n", idb, sm->sender,
			       sm->received, expires, bname(sm->binding),
			       sm->binding_group && *sm->binding_group ? sm->binding_group : "default",
			       sm->loc.length, sm->nrcpt, m->pending);
	}
	for (size_t i = 0; i < sm->nrcpt; i++) {
		const struct envelope_rcpt *r = &sm->rcpts[i];
		bool active = false;
		const struct qentry *e = r->state == ENVELOPE_RCPT_QUEUED ?
					 find_entry(q, m, (uint32_t)i, &active) : NULL;
		const char *where = r->state != ENVELOPE_RCPT_QUEUED ? rcpt_state(r->state) :
				    e == NULL ? "in flight" : active ? "active" : "delayed";
		uint32_t tries = e ? e->retries : r->retries;
		int64_t next = e ? e->next_attempt : 0;

		if (json) {
			imp_cli_printf(cli, "%s{\"recipient\":", i ? "," : "");
			imp_cli_json_string(cli, r->addr);
			imp_cli_printf(cli, ",\"state\":\"%s\",\"attempts\":%" PRIu32
				       ",\"next_attempt\":%" PRId64 "}", where, tries, next);
		} else {
			imp_cli_printf(cli, "    <%s> %s attempts=%" PRIu32, r->addr, where, tries);
			if (e && !active)
				imp_cli_printf(cli, " next=%" PRId64, next);
			imp_cli_printf(cli, "\n");
		}
	}
	if (json)
		imp_cli_printf(cli, "]}\n");
	return 0;
}

/* cmd_message - message details|retry|fail ID [quiet]. */
static int cmd_message(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct queue *q = the_queue(cli);
	uint64_t id;

	if (q == NULL)
		return -1;
	if (argc < 3)
		return imp_cli_error(cli, "usage: message details|retry|fail ID [quiet]");
	const char *sub = argv[1];
	bool quiet = argc == 4 && strcmp(sub, "fail") == 0 && strcmp(argv[3], "quiet") == 0;
	if (argc > 3 && !quiet)
		return imp_cli_error(cli, "usage: message details|retry|fail ID [quiet]");
	if (strcmp(sub, "details") && strcmp(sub, "retry") && strcmp(sub, "fail"))
		return imp_cli_error(cli, "message: unknown action \"%.32s\" (details, retry, fail)",
				     sub);
	if (!id_arg(cli, argv[2], &id))
		return -1;
	struct qmsg *m = spool_idmap_get(&q->msgs, id);
	if (m == NULL)
		return imp_cli_error(cli, "message %s is not queued", argv[2]);
	if (strcmp(sub, "details") == 0)
		return message_details(cli, q, m);

	char idb[ID_BUF_SIZE];
	id_format(id, idb);
	uint32_t pending = m->pending;
	const char *what;
	if (strcmp(sub, "retry") == 0) {
		queue_op_requeue(q, &id, 1);	/* found above: cannot be -ENOENT */
		what = "due now";
	} else {
		queue_op_fail(q, id, ADMIN_FAIL_CODE, ADMIN_FAIL_TEXT, quiet);
		what = quiet ? "failed (no bounce)" : "failed";
	}
	/* m may be freed by now (fail finishes it). */
	if (imp_cli_json(cli))
		imp_cli_printf(cli, "{\"id\":\"%s\",\"action\":\"%s\",\"recipients\":%" PRIu32
			       ",\"quiet\":%s}\n", idb, sub, pending, quiet ? "true" : "false");
	else
		imp_cli_printf(cli, "Message %s: %" PRIu32 " recipient%s %s\n", idb, pending,
			       pending == 1 ? "" : "s", what);
	return 0;
}

/* ------------------------------------------------------------------ */
/* operations on a domain                                              */

/* touched - the answer of a command that changed n recipients. */
static int touched(struct imp_cli *cli, const char *action, const char *domain, long n,
		   const char *text)
{
	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"action\":\"%s\",\"domain\":", action);
		imp_cli_json_string(cli, domain);
		imp_cli_printf(cli, ",\"recipients\":%ld}\n", n);
	} else {
		imp_cli_printf(cli, "%s: %ld recipient%s %s\n", domain, n, n == 1 ? "" : "s", text);
	}
	return 0;
}

/* cmd_flush - flush domain D: its delayed recipients are due now. */
static int cmd_flush(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct queue *q = the_queue(cli);
	char buf[DOMAIN_NAME_MAX + 1];
	const char *d;

	if (q == NULL)
		return -1;
	if (argc != 3 || strcmp(argv[1], "domain") != 0)
		return imp_cli_error(cli, "usage: flush domain DOMAIN");
	if ((d = domain_arg(cli, argv[2], buf)) == NULL)
		return -1;
	long n = queue_admin_flush(q, d);
	if (n < 0)
		return no_queue(cli, d);
	return touched(cli, "flush", d, n, "due now");
}

/* cmd_fail - fail domain D [quiet]: its queued recipients fail, bounced unless quiet. */
static int cmd_fail(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct queue *q = the_queue(cli);
	char buf[DOMAIN_NAME_MAX + 1];
	const char *d;
	bool quiet = argc == 4 && strcmp(argv[3], "quiet") == 0;

	if (q == NULL)
		return -1;
	if (argc < 3 || argc > 4 || strcmp(argv[1], "domain") != 0 || (argc == 4 && !quiet))
		return imp_cli_error(cli, "usage: fail domain DOMAIN [quiet]");
	if ((d = domain_arg(cli, argv[2], buf)) == NULL)
		return -1;
	long n = queue_admin_fail(q, d, ADMIN_FAIL_CODE, ADMIN_FAIL_TEXT, quiet);
	if (n < 0)
		return no_queue(cli, d);
	return touched(cli, quiet ? "fail quiet" : "fail", d, n,
		       quiet ? "failed (no bounce)" : "failed");
}

/* cmd_reroute - reroute queue D1 D2: D1's mail goes to D2's queue (Routes, Gateway, MX). */
static int cmd_reroute(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct queue *q = the_queue(cli);
	char b1[DOMAIN_NAME_MAX + 1], b2[DOMAIN_NAME_MAX + 1];
	const char *d1, *d2;

	if (q == NULL)
		return -1;
	if (argc != 4 || strcmp(argv[1], "queue") != 0)
		return imp_cli_error(cli, "usage: reroute queue DOMAIN NEWDOMAIN");
	if ((d1 = domain_arg(cli, argv[2], b1)) == NULL || (d2 = domain_arg(cli, argv[3], b2)) == NULL)
		return -1;
	long n = queue_admin_reroute(q, d1, d2);
	if (n == -ELOOP)
		return imp_cli_error(cli, "reroute: %s already goes to %s", d2, d1);
	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"action\":\"reroute\",\"domain\":");
		imp_cli_json_string(cli, d1);
		imp_cli_printf(cli, ",\"to\":");
		imp_cli_json_string(cli, queue_admin_route(q, d1));
		imp_cli_printf(cli, ",\"recipients\":%ld}\n", n);
	} else {
		imp_cli_printf(cli, "%s: %ld recipient%s rerouted to %s\n", d1, n, n == 1 ? "" : "s",
			       queue_admin_route(q, d1));
	}
	return 0;
}

/* cmd_rebind - rebind [all | [domain] D]: Assign_Binding / Binding_Group choose again. */
static int cmd_rebind(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct queue *q = the_queue(cli);
	char buf[DOMAIN_NAME_MAX + 1];
	const char *d = NULL;
	size_t examined;

	if (q == NULL)
		return -1;
	if (argc == 3 && strcmp(argv[1], "domain") == 0) {
		if ((d = domain_arg(cli, argv[2], buf)) == NULL)
			return -1;
	} else if (argc == 2 && strcmp(argv[1], "all") != 0) {
		if ((d = domain_arg(cli, argv[1], buf)) == NULL)
			return -1;
	} else if (argc > 2 || (argc == 2 && strcmp(argv[1], "all") != 0)) {
		return imp_cli_error(cli, "usage: rebind [all | domain DOMAIN]");
	}
	long n = queue_admin_rebind(q, d, &examined);
	if (n < 0)
		return no_queue(cli, d);
	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"action\":\"rebind\",\"domain\":");
		if (d)
			imp_cli_json_string(cli, d);
		else
			imp_cli_printf(cli, "null");
		imp_cli_printf(cli, ",\"messages\":%zu,\"moved\":%ld}\n", examined, n);
	} else {
		imp_cli_printf(cli, "%s: %zu message%s examined, %ld moved to another binding\n",
			       d ? d : "all domains", examined, examined == 1 ? "" : "s", n);
	}
	return 0;
}

/* suspend_resume - suspend|resume domain D | binding B. */
static int suspend_resume(struct imp_cli *cli, int argc, const char *const *argv, bool on)
{
	struct queue *q = the_queue(cli);
	char buf[DOMAIN_NAME_MAX + 1];
	const char *name;
	bool binding;

	if (q == NULL)
		return -1;
	if (argc != 3 || (strcmp(argv[1], "domain") != 0 && strcmp(argv[1], "binding") != 0))
		return imp_cli_error(cli, "usage: %s domain DOMAIN | %s binding BINDING", argv[0],
				     argv[0]);
	binding = strcmp(argv[1], "binding") == 0;
	name = binding ? binding_arg(cli, q, argv[2]) : domain_arg(cli, argv[2], buf);
	if (name == NULL)
		return -1;
	int changed = queue_admin_suspend(q, binding, name, on);
	const char *shown = binding ? bname(name) : name;
	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"%s\":", binding ? "binding" : "domain");
		imp_cli_json_string(cli, shown);
		imp_cli_printf(cli, ",\"suspended\":%s,\"changed\":%s}\n", on ? "true" : "false",
			       changed ? "true" : "false");
	} else {
		imp_cli_printf(cli, "%s %s %s%s\n", binding ? "Binding" : "Domain", shown,
			       on ? "suspended" : "resumed", changed ? "" : " (it already was)");
	}
	return 0;
}

/* cmd_suspend - suspend domain D | binding B. */
static int cmd_suspend(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	return suspend_resume(cli, argc, argv, true);
}

/* cmd_resume - resume domain D | binding B. */
static int cmd_resume(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	return suspend_resume(cli, argc, argv, false);
}

/* Names collected from a held map (suspended), sorted before listing. */
struct held_names {
	const char **v;
	size_t n, cap;
};

/* held_one - collect one held name. */
static void held_one(void *ctx, const char *key, void *value)
{
	struct held_names *h = ctx;

	(void)value;
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 8;
		h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	h->v[h->n++] = key;
}

/* by_name - strcmp order for held_names. */
static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* held_list - the names of a held map, sorted; the caller frees h->v. */
static void held_list(const struct strmap *m, struct held_names *h)
{
	if (m)
		strmap_each(m, held_one, h);
	if (h->n > 1)
		qsort(h->v, h->n, sizeof(*h->v), by_name);
}

/* held_sizes - the active and delayed recipients of a binding's or a domain's queues. */
static void held_sizes(struct queue *q, const char *binding, const char *domain, uint64_t *a,
		       uint64_t *dl)
{
	struct queue_dest **v;
	size_t n = queue_admin_dests(q, binding, domain, &v);

	*a = *dl = 0;
	for (size_t i = 0; i < n; i++) {
		*a += v[i]->nactive;
		*dl += v[i]->nheap;
	}
	free(v);
}

/*
 * cmd_suspended - every hold at once: domains and bindings suspended from
 * the console (even with nothing queued), and the queues Suspend_Delivery
 * holds, with their sizes.
 */
static int cmd_suspended(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct queue *q = the_queue(cli);
	struct held_names hd = { NULL, 0, 0 }, hb = { NULL, 0, 0 };
	struct queue_dest **v;
	size_t n, rows = 0;
	uint64_t a, dl;
	bool json;

	if (q == NULL)
		return -1;
	if (argc != 1)
		return imp_cli_error(cli, "usage: suspended");
	json = imp_cli_json(cli);
	held_list(q->held_domains, &hd);
	held_list(q->held_bindings, &hb);
	imp_cli_printf(cli, json ? "{\"domains\":[" : "Suspended from the console:\n");
	for (size_t i = 0; i < hd.n; i++) {
		held_sizes(q, NULL, hd.v[i], &a, &dl);
		if (json) {
			imp_cli_printf(cli, "%s{\"domain\":", i ? "," : "");
			imp_cli_json_string(cli, hd.v[i]);
			imp_cli_printf(cli, ",\"active\":%" PRIu64 ",\"delayed\":%" PRIu64 "}", a, dl);
		} else {
			imp_cli_printf(cli, "  domain %s: %" PRIu64 " active, %" PRIu64 " delayed\n",
				       hd.v[i], a, dl);
		}
	}
	if (json)
		imp_cli_printf(cli, "],\"bindings\":[");
	for (size_t i = 0; i < hb.n; i++) {
		held_sizes(q, hb.v[i], NULL, &a, &dl);
		if (json) {
			imp_cli_printf(cli, "%s{\"binding\":", i ? "," : "");
			imp_cli_json_string(cli, bname(hb.v[i]));
			imp_cli_printf(cli, ",\"active\":%" PRIu64 ",\"delayed\":%" PRIu64 "}", a, dl);
		} else {
			imp_cli_printf(cli, "  binding %s: %" PRIu64 " active, %" PRIu64 " delayed\n",
				       bname(hb.v[i]), a, dl);
		}
	}
	if (!json && hd.n + hb.n == 0)
		imp_cli_printf(cli, "  none\n");
	imp_cli_printf(cli, json ? "],\"configured\":[" : "Held by Suspend_Delivery:\n");
	n = queue_admin_dests(q, NULL, NULL, &v);
	for (size_t i = 0; i < n && rows < MAILQ_MAX_ROWS; i++) {
		if (!queue_dest_settings(v[i])->suspend)
			continue;
		if (json) {
			imp_cli_printf(cli, "%s{\"binding\":", rows ? "," : "");
			imp_cli_json_string(cli, bname(v[i]->binding));
			imp_cli_printf(cli, ",\"domain\":");
			imp_cli_json_string(cli, v[i]->domain);
			imp_cli_printf(cli, ",\"active\":%" PRIu64 ",\"delayed\":%" PRIu64 "}",
				       (uint64_t)v[i]->nactive, (uint64_t)v[i]->nheap);
		} else {
			imp_cli_printf(cli, "  %s on binding %s: %" PRIu64 " active, %" PRIu64
				       " delayed\n", v[i]->domain, bname(v[i]->binding),
				       (uint64_t)v[i]->nactive, (uint64_t)v[i]->nheap);
		}
		rows++;
	}
	free(v);
	if (json)
		imp_cli_printf(cli, "],\"count\":%zu}\n", hd.n + hb.n + rows);
	else if (rows == 0)
		imp_cli_printf(cli, "  none with mail queued\n");
	free(hd.v);
	free(hb.v);
	return 0;
}

/* ------------------------------------------------------------------ */
/* registration                                                        */

void queue_console_register(struct api_gen *g)
{
	static const struct {
		const char *name, *help;
		imp_cli_fn fn;
	} cmds[] = {
		{ "mailq", "active and delayed recipients per binding and domain", cmd_mailq },
		{ "domain", "a domain's queues per binding: domain DOMAIN", cmd_domain },
		{ "binding", "per-binding totals: binding summary", cmd_binding },
		{ "showqueue", "the recipients queued for a domain: "
			       "showqueue [binding B|all] DOMAIN [LIMIT[,OFFSET]]", cmd_showqueue },
		{ "message", "one message: message details|retry|fail ID [quiet]", cmd_message },
		{ "flush", "a domain's delayed mail is due now: flush domain DOMAIN", cmd_flush },
		{ "fail", "fail a domain's queued mail: fail domain DOMAIN [quiet]", cmd_fail },
		{ "reroute", "send a domain's mail to another's queue: reroute queue D1 D2",
		  cmd_reroute },
		{ "rebind", "choose the bindings again: rebind [all | domain DOMAIN]", cmd_rebind },
		{ "suspend", "hold delivery: suspend domain DOMAIN | suspend binding BINDING",
		  cmd_suspend },
		{ "resume", "restart delivery: resume domain DOMAIN | resume binding BINDING",
		  cmd_resume },
		{ "suspended", "every suspended domain, binding and Suspend_Delivery queue",
		  cmd_suspended },
	};
	struct imp_instance *core = api_core_instance(g);

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (imp_cli_register(core, cmds[i].name, cmds[i].help, cmds[i].fn, NULL) < 0)
			abort();
}
