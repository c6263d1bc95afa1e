/*
 * opendkim.c - DKIM signing (module opendkim), configured the Momentum way
 *
 *     opendkim_sign = true                       # global, Binding_Group,
 *                                                # Binding, Domain scopes
 *     opendkim "opendkim1" {
 *       digest = "rsa-sha256"  header_canon = "relaxed"  body_canon = "relaxed"
 *       headerlist = ( "From" "To" "Subject" "Date" "Message-ID" )
 *       key = "/etc/impetus/dkim/%{d}/%{s}.key"
 *       dkim_domain "example.com" { selector = "s1" }
 *     }
 *
 * docs/modules/opendkim.md is the reference. In short, for each message
 * on the sign hook (CPU pool, before spooling):
 *
 *   1. opendkim_sign for (binding, recipient domain) must be true for at
 *      least one recipient (the scoped option, module API 1.2);
 *   2. the signing profile is the From: domain's dkim_domain stanza, else
 *      that of its nearest parent domain, else the instance's own
 *      settings when it has a selector; none: unsigned;
 *   3. d= is the stanza's base_domain, else the stanza's name (the From
 *      domain itself for the instance's own settings);
 *   4. sign_condition, when set, names a validation-context key that must
 *      be set and true (can_relay, auth_user: see condition_met);
 *   5. one signature per digest (rsa-sha256, ed25519-sha256 or both, each
 *      with its selector), its key from the key cache (od_keycache.c),
 *      over the message as the next hop will receive it (od_wire.c),
 *      prepended to the message as folded by dkim_sign.
 *
 * The files: od_profile.c reads the stanza into signing profiles,
 * od_from.c finds the From: domain, od_keycache.c keeps the keys,
 * od_wire.c gives the bytes the next hop receives, dkim_sign.c signs,
 * od_stats.c counts; this file ties them to the hooks.
 *
 * Ownership: struct od is built by init on the scheduler thread and is
 * read-only afterwards except for the key cache and the counters, which
 * lock themselves; fini frees it when the generation is gone, so no sign
 * subscriber can still run. The data_spool subscriber runs on the
 * session's I/O loop and writes only the message's own vctx.
 *
 * Failures never lose mail: whatever goes wrong (no From:, no key, a key
 * of the wrong type, OpenSSL) the message is spooled unsigned, counted in
 * the per-domain counters, and a missing key is one paniclog line per
 * key per neg_keycache_ttl.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <impetus/impetus.h>

#include "dkim_sign.h"
#include "od_from.h"
#include "od_keycache.h"
#include "od_profile.h"
#include "od_wire.h"
#include "od_stats.h"
#include "opendkim.h"

/* The vctx key the data_spool subscriber sets when a sign_condition holds. */
#define OD_COND_PREFIX "opendkim.cond."
/*
 * Missing-key lines per instance per minute, at most: each path is
 * reported once per neg_keycache_ttl, but a stream of From: domains the
 * instance's own selector signs for would name a new path each.
 */
#define OD_REPORTS_PER_WINDOW 20
#define OD_REPORT_WINDOW_MS 60000
/* Per-domain lines written at fini, at most (then a count of the rest). */
#define OD_FINI_DOMAIN_LINES 50

/* ---- configuration ------------------------------------------------------ */

/* The options an instance and a dkim_domain stanza share (Momentum's list). */
#define OD_SHARED_OPTIONS(DEF_HC, DEF_BC, DEF_DIGEST, DEF_LIFE, DEF_BLL)                      \
	{ "header_canon", IMP_OPT_STRING, DEF_HC, 0, 0, false,                                 \
	  "header canonicalisation: simple or relaxed" },                                       \
	{ "body_canon", IMP_OPT_STRING, DEF_BC, 0, 0, false,                                   \
	  "body canonicalisation: simple or relaxed" },                                         \
	{ "headerlist", IMP_OPT_LIST, NULL, 0, 0, false,                                       \
	  "header fields to sign, in order (must include From)" },                               \
	{ "oversign_headerlist", IMP_OPT_LIST, NULL, 0, 0, false,                              \
	  "header fields signed once more than present, so none can be added" },                \
	{ "skip_headerlist", IMP_OPT_LIST, NULL, 0, 0, false,                                  \
	  "header fields never signed, even when headerlist names them" },                      \
	{ "digest", IMP_OPT_LIST, DEF_DIGEST, 0, 0, false,                                     \
	  "rsa-sha256, ed25519-sha256, or both as a list (one signature each)" },               \
	{ "key", IMP_OPT_STRING, NULL, 0, 0, false,                                            \
	  "private key file (PEM); %{d} and %{s} expand to the domain and selector" },          \
	{ "selector", IMP_OPT_LIST, NULL, 0, 0, false,                                         \
	  "selector, or one per digest in digest's order" },                                    \
	{ "lifetime", IMP_OPT_INT, DEF_LIFE, 0, 876000, false,                                 \
	  "hours a signature stays valid (x=); 0: no x=" },                                     \
	{ "body_length_limit", IMP_OPT_BOOL, DEF_BLL, 0, 0, false,                             \
	  "add l= (the signed body length)" },                                                  \
	{ "sign_condition", IMP_OPT_STRING, NULL, 0, 0, false,                                 \
	  "sign only when this validation-context key is set and true (can_relay, auth_user)" }, \
	{ "identity", IMP_OPT_STRING, NULL, 0, 0, false,                                       \
	  "i= identity, \"[local]@domain\"; %{d} expands to the signing domain" }

static const struct imp_option od_options[] = {
	OD_SHARED_OPTIONS("simple", "simple", "rsa-sha256", "0", "false"),
	{ "keycache_size", IMP_OPT_INT, "2048", 1, 10000000, false,
	  "keys (and missing keys) kept in the cache" },
	{ "pos_keycache_ttl", IMP_OPT_INTERVAL, "300", 0, 31536000, false,
	  "seconds a loaded key is used before it is read again" },
	{ "neg_keycache_ttl", IMP_OPT_INTERVAL, "3600", 0, 31536000, false,
	  "seconds a missing key is not looked for again (and not reported again)" },
};

/* A dkim_domain stanza: the same options without defaults (unset: the instance's). */
static const struct imp_option od_domain_options[] = {
	OD_SHARED_OPTIONS(NULL, NULL, NULL, NULL, NULL),
	{ "base_domain", IMP_OPT_STRING, NULL, 0, 0, false,
	  "sign as this (parent) domain: d=" },
};

static const struct imp_substanza od_substanzas[] = {
	{ "dkim_domain", true, od_domain_options,
	  sizeof(od_domain_options) / sizeof(od_domain_options[0]),
	  "settings for mail whose From: is this domain (or below it)" },
};

static const struct imp_option od_scoped[] = {
	{ "opendkim_sign", IMP_OPT_BOOL, "true", 0, 0, false,
	  "sign with the opendkim module (global, Binding_Group, Binding, Domain scopes)" },
};

/*
 * The instances of one generation behind its `signing_stats` command: the
 * first instance registers the command with this as closure, the others
 * join it (imp_cli_closure). Changed only by init and fini (scheduler
 * thread), read by the command (scheduler thread): no lock.
 */
struct od_group {
	struct od **v;
	size_t n, cap;
};

struct od {
	struct imp_instance *inst;
	struct od_group *group;		/* NULL when the console command could not be set up */
	struct od_profiles profiles;	/* read-only after init */
	struct od_keycache *keys;
	struct od_stats *stats;
	/* The paniclog budget of missing-key lines (no_key_report); CPU pool threads. */
	pthread_mutex_t report_lock;
	uint64_t report_window;		/* imp_now_ms() / OD_REPORT_WINDOW_MS of the budget */
	unsigned reports;		/* lines written in that window */
	uint64_t suppressed;		/* lines not written since the last one */
};

static void od_free(struct od *od)
{
	if (od == NULL)
		return;
	od_profiles_free(&od->profiles);
	od_keycache_free(od->keys);
	od_stats_free(od->stats);
	pthread_mutex_destroy(&od->report_lock);
	free(od);
}

/* ---- which domain, whether to sign ------------------------------------------ */

/*
 * sign_wanted - opendkim_sign for (binding, recipient domain): true when
 * any recipient's says so. A message is signed once for all its
 * recipients, and a signature costs a receiver that ignores it nothing,
 * while a missing one gets mail junked at the big mailbox providers: so
 * one recipient whose scope wants a signature is enough (see
 * docs/modules/opendkim.md).
 */
static bool sign_wanted(const struct od *od, const struct imp_message *msg)
{
	const char *binding = imp_message_binding(msg);
	size_t n = imp_message_rcpt_count(msg);

	if (n == 0)
		return imp_scoped_option_bool(od->inst, "opendkim_sign", binding, NULL);
	for (size_t i = 0; i < n; i++) {
		const char *r = imp_message_rcpt(msg, i);
		const char *at = r ? strrchr(r, '@') : NULL;

		if (imp_scoped_option_bool(od->inst, "opendkim_sign", binding, at ? at + 1 : NULL))
			return true;
	}
	return false;
}

/* truthy - a validation-context value that says yes: set, not "", 0, false, no, off. */
static bool truthy(const char *v)
{
	return v && *v && strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0 &&
	       strcasecmp(v, "no") != 0 && strcasecmp(v, "off") != 0;
}

/*
 * ctx_key_true - key in one validation context, by its own name or, for
 * Momentum's names of the daemon's keys (can_relay, auth_user), by
 * impetus's ("impetus.can_relay").
 */
static bool ctx_key_true(const char *(*get)(const void *ctx, const char *key), const void *ctx,
			 const char *key)
{
	char full[IMP_VCTX_KEY_MAX + 1];

	if (truthy(get(ctx, key)))
		return true;
	snprintf(full, sizeof(full), "impetus.%s", key);
	return strncmp(key, "impetus.", 8) != 0 && truthy(get(ctx, full));
}

static const char *msg_get(const void *ctx, const char *key)
{
	return imp_message_vctx_get(ctx, key);
}

/*
 * condition_met - sign_condition on a message: the data_spool subscriber
 * (od_condition) recorded it from the connection and message contexts
 * of an SMTP reception; a message injected without a session has only
 * its message context, read here.
 */
static bool condition_met(const struct imp_message *msg, const char *key)
{
	char mark[IMP_VCTX_KEY_MAX + 1];

	snprintf(mark, sizeof(mark), "%s%s", OD_COND_PREFIX, key);
	return truthy(imp_message_vctx_get(msg, mark)) || ctx_key_true(msg_get, msg, key);
}

struct sess_ctx {
	const struct imp_session *s;
	enum imp_vctx_scope scope;
};

static const char *sess_get(const void *ctx, const char *key)
{
	const struct sess_ctx *c = ctx;

	return imp_vctx_get(c->s, c->scope, key);
}

/*
 * od_condition - data_spool (I/O loop): for each sign_condition key of
 * the instance, record in the message's context whether it holds in the
 * connection's or the message's context, for the sign subscriber on the
 * CPU pool, which sees the message only. Runs first (IMP_ORDER_FIRST) so
 * an earlier ACCEPT cannot skip it; keys set by later data_spool
 * subscribers are not seen.
 */
static enum imp_verdict od_condition(void *closure, struct imp_session *s, struct imp_reply *r)
{
	struct od *od = closure;
	struct imp_message *msg = imp_session_message(s);
	char mark[IMP_VCTX_KEY_MAX + 1];

	(void)r;
	if (msg == NULL)
		return IMP_CONTINUE;
	for (size_t i = 0; i < od->profiles.nconditions; i++) {
		struct sess_ctx conn = { s, IMP_VCTX_CONN }, mess = { s, IMP_VCTX_MESS };
		const char *key = od->profiles.conditions[i];

		if (ctx_key_true(sess_get, &mess, key) || ctx_key_true(sess_get, &conn, key)) {
			snprintf(mark, sizeof(mark), "%s%s", OD_COND_PREFIX, key);
			imp_message_vctx_set(msg, mark, "1");
		}
	}
	return IMP_CONTINUE;
}

/* ---- signing ---------------------------------------------------------------- */

/* expand - a template with %{d} and %{s}; NULL (and a reason) when it does not expand cleanly. */
static char *expand(const char *tmpl, const struct imp_message *msg, const char *d,
		    const char *s, const char **why)
{
	const char *vars[] = { "d", d, "s", s ? s : "" };
	struct imp_macro_ctx ctx = { NULL, msg, vars, 2 };
	char *out = NULL;
	int r = imp_macro_expand(tmpl, &ctx, &out);

	if (r != 0) {
		*why = r > 0 ? "unknown macro" : r == -E2BIG ? "too long" : "bad syntax";
		free(out);
		return NULL;
	}
	return out;
}

/*
 * no_key_report - whether a missing-key line may be written now (at most
 * OD_REPORTS_PER_WINDOW a minute); *quiet gets how many were held back
 * since the last one written, which that line then tells.
 */
static bool no_key_report(struct od *od, uint64_t *quiet)
{
	uint64_t window = imp_now_ms() / OD_REPORT_WINDOW_MS;
	bool ok;

	pthread_mutex_lock(&od->report_lock);
	if (window != od->report_window) {
		od->report_window = window;
		od->reports = 0;
	}
	ok = od->reports < OD_REPORTS_PER_WINDOW;
	if (ok) {
		od->reports++;
		*quiet = od->suppressed;
		od->suppressed = 0;
	} else {
		od->suppressed++;
	}
	pthread_mutex_unlock(&od->report_lock);
	return ok;
}

/* One signature made, waiting to be prepended. */
struct made {
	char *field;
};

/*
 * sign_one - make the signature of one (digest, selector) of profile p
 * over the message bytes; the field in *field. Counts and logs what
 * fails.
 */
static void sign_one(struct od *od, const struct imp_message *msg, const char *idtext,
		     const struct od_profile *p, const struct od_sig *sig, const char *d,
		     const char *bytes, size_t len, char **field)
{
	const char *why = NULL;
	char err[256] = "";
	char *path = expand(p->key, msg, d, sig->selector, &why);
	EVP_PKEY *key = NULL;
	enum dkim_alg alg;
	bool report = false;

	*field = NULL;
	if (path == NULL) {
		od_stats_add(od->stats, d, OD_STAT_FAILED);
		imp_log_panic(od->inst, "%s dkim_failed domain=%s selector=%s key=\"%s\" error=\"key "
			      "path: %s\" (sent unsigned)", idtext, d, sig->selector, p->key, why);
		return;
	}
	if (od_keycache_get(od->keys, path, &key, &alg, err, sizeof(err), &report) < 0) {
		od_stats_add(od->stats, d, OD_STAT_NO_KEY);
		uint64_t quiet = 0;
		char more[48] = "";

		if (report && no_key_report(od, &quiet)) {
			if (quiet)
				snprintf(more, sizeof(more), " suppressed_since_last=%llu",
					 (unsigned long long)quiet);
			imp_log_panic(od->inst, "%s dkim_no_key domain=%s selector=%s key=%s error=\"%s\" "
				      "(sent unsigned; not tried again for %llds)%s", idtext, d,
				      sig->selector, path, err,
				      (long long)imp_option_int(od->inst, "neg_keycache_ttl"), more);
		}
		free(path);
		return;
	}
	char *identity = p->identity ? expand(p->identity, msg, d, sig->selector, &why) : NULL;
	struct dkim_sign_params sp = {
		.alg = sig->alg, .header_canon = p->hc, .body_canon = p->bc,
		.domain = d, .selector = sig->selector,
		.headers = (const char *const *)p->headers, .nheaders = p->nheaders,
		.oversign = (const char *const *)p->oversign, .noversign = p->noversign,
		.lifetime = p->lifetime,
		.body_length_limit_set = p->body_length_limit, .body_length_limit = UINT64_MAX,
		.key = key, .identity = identity,
	};

	if (p->identity && identity == NULL)
		snprintf(err, sizeof(err), "identity: %s", why);
	else if (dkim_sign(&sp, bytes, len, field, err, sizeof(err)) == 0) {
		/* counted as signed once it is in the message (od_sign) */
		imp_log_debug(od->inst, 1, "%s dkim_signed domain=%s selector=%s a=%s", idtext, d,
			      sig->selector, dkim_alg_name(sig->alg));
		goto out;
	}
	od_stats_add(od->stats, d, OD_STAT_FAILED);
	imp_log_panic(od->inst, "%s dkim_failed domain=%s selector=%s key=%s error=\"%s\" (sent "
		      "unsigned)", idtext, d, sig->selector, path, err);
out:
	free(identity);
	EVP_PKEY_free(key);
	free(path);
}

/* od_sign - the sign hook (CPU pool): steps 1-5 of the file header. */
static void od_sign(void *closure, struct imp_message *msg)
{
	struct od *od = closure;
	char idtext[IMP_ID_TEXT_MAX], from[DKIM_NAME_MAX + 1], d[DKIM_NAME_MAX + 1];
	const char *fv;
	char *fields[OD_DIGESTS_MAX] = { NULL };

	if (!sign_wanted(od, msg))
		return;
	imp_message_id_text(msg, idtext);
	fv = imp_header_get(msg, "From", 0);
	if (fv == NULL || !od_from_domain(fv, from, sizeof(from))) {
		imp_log_debug(od->inst, 1, "%s dkim_skipped reason=no_from_domain", idtext);
		return;
	}
	const struct od_profile *p = od_profiles_for(&od->profiles, from, d, sizeof(d));
	if (p == NULL) {
		imp_log_debug(od->inst, 1, "%s dkim_skipped reason=no_dkim_domain from=%s", idtext,
			      from);
		return;
	}
	if (p->sign_condition && !condition_met(msg, p->sign_condition)) {
		imp_log_debug(od->inst, 1, "%s dkim_skipped reason=sign_condition key=%s", idtext,
			      p->sign_condition);
		return;
	}
	size_t len = 0;
	char *copy = NULL;
	const char *bytes = imp_message_bytes(msg, &len);
	if (bytes == NULL) {
		/* A large message, partly in a file: read it whole (we are on the CPU pool). */
		bytes = copy = imp_message_copy(msg, &len);
		if (bytes == NULL) {
			int e = errno;

			for (size_t i = 0; i < p->nsigs; i++)
				od_stats_add(od->stats, d, OD_STAT_FAILED);
			imp_log_panic(od->inst, "%s dkim_failed domain=%s error=\"cannot read the message: "
				      "%s\" (sent unsigned)", idtext, d, strerror(e));
			return;
		}
	}
	/*
	 * Sign what the next hop receives: the SMTP client ends bare CRs and
	 * LFs with CRLF and folds lines over 998 octets (od_wire.h). The
	 * prepended fields are all CRLF and short, so they change nothing.
	 */
	size_t wlen = 0;
	errno = 0;
	char *wire = od_wire_view(bytes, len, &wlen);
	if (wire == NULL && errno == ENOMEM) {
		for (size_t i = 0; i < p->nsigs; i++)
			od_stats_add(od->stats, d, OD_STAT_FAILED);
		imp_log_panic(od->inst, "%s dkim_failed domain=%s error=\"out of memory\" (sent "
			      "unsigned)", idtext, d);
		free(copy);
		return;
	}
	if (wire) {
		bytes = wire;
		len = wlen;
	}
	/*
	 * Every signature over the same bytes, then all prepended: h= never
	 * names DKIM-Signature (profile_build), so each verifies alone.
	 */
	for (size_t i = 0; i < p->nsigs; i++)
		sign_one(od, msg, idtext, p, &p->sigs[i], d, bytes, len, &fields[i]);
	free(wire);
	free(copy);
	for (size_t i = 0; i < p->nsigs; i++) {
		if (fields[i] == NULL)
			continue;
		/* dkim_sign gives "DKIM-Signature: value\r\n", folded: keep its folding. */
		char *v = fields[i] + strlen("DKIM-Signature: ");
		size_t n = strlen(v);

		if (n >= 2)
			v[n - 2] = '\0';
		if (imp_header_prepend(msg, "DKIM-Signature", v) == 0) {
			od_stats_add(od->stats, d, OD_STAT_SIGNED);
		} else {
			od_stats_add(od->stats, d, OD_STAT_FAILED);
			imp_log_panic(od->inst, "%s dkim_failed domain=%s error=\"cannot add the field\" "
				      "(sent unsigned)", idtext, d);
		}
		free(fields[i]);
	}
}

/* ---- life cycle --------------------------------------------------------------- */

/* ---- the console: signing_stats ------------------------------------------------- */

struct stat_row {
	const char *domain;	/* valid while the command runs: a copy */
	struct od_counts c;
};

struct stat_rows {
	struct stat_row *v;
	size_t n, cap;
	bool oom;
};

static void collect_row(void *arg, const char *domain, const struct od_counts *c)
{
	struct stat_rows *r = arg;

	if (r->oom)
		return;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct stat_row *v = realloc(r->v, cap * sizeof(*v));

		if (v == NULL) {
			r->oom = true;
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	char *d = strdup(domain);
	if (d == NULL) {
		r->oom = true;
		return;
	}
	r->v[r->n++] = (struct stat_row){ d, *c };
}

static int row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct stat_row *)a)->domain, ((const struct stat_row *)b)->domain);
}

/* print_counts - one DKIM block of Momentum's signing_stats text. */
static void print_counts(struct imp_cli *cli, const struct od_counts *c)
{
	imp_cli_printf(cli, "        DKIM\n"
			    "                TotalMessagesSigned    %10llu\n"
			    "                FailedSigningAttempts  %10llu\n"
			    "                SkippedNoKey           %10llu\n",
		       (unsigned long long)c->signed_ok, (unsigned long long)c->failed,
		       (unsigned long long)c->no_key);
}

static void json_counts(struct imp_cli *cli, const struct od_counts *c)
{
	imp_cli_printf(cli, "\"signed\":%llu,\"failed\":%llu,\"no_key\":%llu",
		       (unsigned long long)c->signed_ok, (unsigned long long)c->failed,
		       (unsigned long long)c->no_key);
}

/*
 * cmd_signing_stats - Momentum's `signing_stats` (Global, then Per
 * Domain, summed over the generation's opendkim instances, domains in
 * name order) and `signing_stats reset`. Scheduler thread.
 */
static int cmd_signing_stats(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct od_group *g = closure;
	struct stat_rows r = { NULL, 0, 0, false };
	struct od_counts total = { 0, 0, 0 };
	size_t out = 0;

	if (argc == 2 && strcmp(argv[1], "reset") == 0) {
		for (size_t i = 0; i < g->n; i++)
			od_stats_reset(g->v[i]->stats);
		if (imp_cli_json(cli))
			imp_cli_printf(cli, "{\"reset\":true}\n");
		else
			imp_cli_printf(cli, "Signing statistics reset.\n");
		return 0;
	}
	if (argc > 1)
		return imp_cli_error(cli, "usage: signing_stats [reset]");
	for (size_t i = 0; i < g->n; i++)
		od_stats_each(g->v[i]->stats, collect_row, &r);
	if (r.oom) {
		for (size_t i = 0; i < r.n; i++)
			free((char *)r.v[i].domain);
		free(r.v);
		return imp_cli_error(cli, "signing_stats: out of memory");
	}
	if (r.n)
		qsort(r.v, r.n, sizeof(*r.v), row_cmp);
	/* Merge the rows of one domain that several instances signed for. */
	for (size_t i = 0; i < r.n; i++) {
		total.signed_ok += r.v[i].c.signed_ok;
		total.failed += r.v[i].c.failed;
		total.no_key += r.v[i].c.no_key;
		if (out && strcmp(r.v[out - 1].domain, r.v[i].domain) == 0) {
			r.v[out - 1].c.signed_ok += r.v[i].c.signed_ok;
			r.v[out - 1].c.failed += r.v[i].c.failed;
			r.v[out - 1].c.no_key += r.v[i].c.no_key;
			free((char *)r.v[i].domain);
		} else {
			r.v[out++] = r.v[i];
		}
	}
	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"global\":{");
		json_counts(cli, &total);
		imp_cli_printf(cli, "},\"domains\":[");
		for (size_t i = 0; i < out; i++) {
			imp_cli_printf(cli, "%s{\"domain\":", i ? "," : "");
			imp_cli_json_string(cli, r.v[i].domain);
			imp_cli_printf(cli, ",");
			json_counts(cli, &r.v[i].c);
			imp_cli_printf(cli, "}");
		}
		imp_cli_printf(cli, "]}\n");
	} else {
		imp_cli_printf(cli, "Signing Statistics\n\nGlobal\n");
		print_counts(cli, &total);
		imp_cli_printf(cli, "Per Domain\n");
		for (size_t i = 0; i < out; i++) {
			imp_cli_printf(cli, "        DomainName  %s\n", r.v[i].domain);
			print_counts(cli, &r.v[i].c);
		}
	}
	for (size_t i = 0; i < out; i++)
		free((char *)r.v[i].domain);
	free(r.v);
	return 0;
}

/*
 * od_console_join - put od in its generation's signing_stats group: the
 * first instance makes the group and registers the command, the others
 * join. Another module owning the name leaves od without a command (a
 * paniclog line), which is no reason to refuse signing.
 */
static int od_console_join(struct od *od, struct imp_error *err)
{
	struct od_group *g = imp_cli_closure(od->inst, "signing_stats");
	bool fresh = g == NULL;

	if (fresh) {
		g = calloc(1, sizeof(*g));
		if (g == NULL) {
			imp_error_set(err, "out of memory");
			return -1;
		}
	}
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 4;
		struct od **v = realloc(g->v, cap * sizeof(*v));

		if (v == NULL) {
			if (fresh)
				free(g);
			imp_error_set(err, "out of memory");
			return -1;
		}
		g->v = v;
		g->cap = cap;
	}
	if (fresh) {
		int rc = imp_cli_register(od->inst, "signing_stats",
					  "DKIM signing statistics per domain: signing_stats [reset]",
					  cmd_signing_stats, g);
		if (rc < 0) {
			imp_log_panic(od->inst, "console command signing_stats not available: %s",
				      strerror(-rc));
			free(g->v);
			free(g);
			return 0;
		}
	}
	g->v[g->n++] = od;
	od->group = g;
	return 0;
}

/* od_console_leave - take od out of its group; the last one out frees it (fini). */
static void od_console_leave(struct od *od)
{
	struct od_group *g = od->group;

	if (g == NULL)
		return;
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i] == od) {
			g->v[i] = g->v[--g->n];
			break;
		}
	if (g->n == 0) {
		free(g->v);
		free(g);
	}
	od->group = NULL;
}

/* od_init - build the profiles, the key cache and the counters; subscribe. */
static int od_init(struct imp_instance *inst, struct imp_error *err)
{
	struct od *od = calloc(1, sizeof(*od));

	if (od == NULL) {
		imp_error_set(err, "out of memory");
		return -1;
	}
	pthread_mutex_init(&od->report_lock, NULL);
	od->inst = inst;
	od->keys = od_keycache_new((size_t)imp_option_int(inst, "keycache_size"),
				   (uint64_t)imp_option_int(inst, "pos_keycache_ttl"),
				   (uint64_t)imp_option_int(inst, "neg_keycache_ttl"));
	od->stats = od_stats_new();
	if (od->keys == NULL || od->stats == NULL) {
		imp_error_set(err, "out of memory");
		goto fail;
	}
	if (od_profiles_build(&od->profiles, inst, err) < 0)
		goto fail;
	if (imp_hook_sign(inst, od_sign, od, IMP_ORDER_DEFAULT) < 0 ||
	    (od->profiles.nconditions &&
	     imp_hook_validate(inst, IMP_PHASE_DATA_SPOOL, od_condition, od, IMP_ORDER_FIRST) < 0)) {
		imp_error_set(err, "cannot subscribe to the sign hook");
		goto fail;
	}
	/* Last: nothing after this can fail, so the command never outlives a refused init. */
	if (od_console_join(od, err) < 0)
		goto fail;
	imp_instance_set_data(inst, od);
	return 0;
fail:
	od_free(od);
	return -1;
}

struct fini_ctx {
	const struct imp_instance *inst;
	size_t lines, more;
	struct od_counts total;
};

static void fini_line(void *arg, const char *domain, const struct od_counts *c)
{
	struct fini_ctx *f = arg;

	f->total.signed_ok += c->signed_ok;
	f->total.failed += c->failed;
	f->total.no_key += c->no_key;
	if (f->lines++ < OD_FINI_DOMAIN_LINES)
		imp_log_panic(f->inst, "signing_stats domain=%s signed=%llu failed=%llu no_key=%llu",
			      domain, (unsigned long long)c->signed_ok, (unsigned long long)c->failed,
			      (unsigned long long)c->no_key);
	else
		f->more++;
}

/* od_fini - write the counters to the paniclog, then free everything. */
static void od_fini(struct imp_instance *inst)
{
	struct od *od = imp_instance_data(inst);
	struct fini_ctx f = { inst, 0, 0, { 0, 0, 0 } };

	if (od == NULL)
		return;
	size_t n = od_stats_each(od->stats, fini_line, &f);
	imp_log_panic(inst, "signing_stats total domains=%zu signed=%llu failed=%llu no_key=%llu%s",
		      n, (unsigned long long)f.total.signed_ok, (unsigned long long)f.total.failed,
		      (unsigned long long)f.total.no_key, f.more ? " (more domains than listed)" : "");
	od_console_leave(od);
	od_free(od);
	imp_instance_set_data(inst, NULL);
}

/* ---- for the console ------------------------------------------------------------ */

size_t opendkim_signing_stats(const struct imp_instance *inst,
			      void (*fn)(void *arg, const char *domain, const struct od_counts *c),
			      void *arg)
{
	struct od *od = imp_instance_data(inst);

	return od ? od_stats_each(od->stats, fn, arg) : 0;
}

void opendkim_signing_stats_reset(const struct imp_instance *inst)
{
	struct od *od = imp_instance_data(inst);

	if (od)
		od_stats_reset(od->stats);
}

IMP_MODULE_DEFINE(.name = "opendkim", .version = "1.0",
		  .description = "DKIM signing (rsa-sha256, ed25519-sha256), Momentum's opendkim",
		  .options = od_options, .noptions = sizeof(od_options) / sizeof(od_options[0]),
		  .init = od_init, .fini = od_fini,
		  .substanzas = od_substanzas, .nsubstanzas = 1,
		  .scoped_options = od_scoped, .nscoped_options = 1);
