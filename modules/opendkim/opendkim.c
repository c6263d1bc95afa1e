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
#include <ctype.h>
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
#include "od_wire.h"
#include "od_stats.h"
#include "opendkim.h"

/* The most signatures one message gets from one instance: one per digest. */
#define OD_DIGESTS_MAX 2
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

/* One signature of a profile. */
struct od_sig {
	enum dkim_alg alg;
	char *selector;
};

/* How mail of one From: domain (or of any, for the instance's own) is signed. */
struct od_profile {
	char *name;			/* the dkim_domain argument, lower case; NULL: the instance's */
	char *base_domain;		/* d= override; NULL: name (or the From domain) */
	enum dkim_canon hc, bc;
	char **headers, **oversign;
	size_t nheaders, noversign;
	struct od_sig sigs[OD_DIGESTS_MAX];
	size_t nsigs;
	char *key;			/* path template */
	uint32_t lifetime;		/* seconds */
	bool body_length_limit;
	char *sign_condition;
	char *identity;
	struct od_profile *hnext;	/* in the name table */
};

struct od {
	struct imp_instance *inst;
	struct od_profile *def;		/* the instance's own settings; signs only with a selector */
	struct od_profile *profiles;	/* the dkim_domain stanzas */
	size_t nprofiles;
	struct od_profile **table;	/* by name */
	size_t ntable;
	char **conditions;		/* the distinct sign_condition keys */
	size_t nconditions;
	struct od_keycache *keys;
	struct od_stats *stats;
	/* The paniclog budget of missing-key lines (no_key_report); CPU pool threads. */
	pthread_mutex_t report_lock;
	uint64_t report_window;		/* imp_now_ms() / OD_REPORT_WINDOW_MS of the budget */
	unsigned reports;		/* lines written in that window */
	uint64_t suppressed;		/* lines not written since the last one */
};

/* lower_dup - a lower-cased copy without one trailing dot. */
static char *lower_dup(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		d[i] = (char)tolower((unsigned char)s[i]);
	if (n > 0 && d[n - 1] == '.')
		n--;
	d[n] = '\0';
	return d;
}

static uint32_t hash_name(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void list_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static void profile_free(struct od_profile *p)
{
	free(p->name);
	free(p->base_domain);
	list_free(p->headers, p->nheaders);
	list_free(p->oversign, p->noversign);
	for (size_t i = 0; i < p->nsigs; i++)
		free(p->sigs[i].selector);
	free(p->key);
	free(p->sign_condition);
	free(p->identity);
}

/*
 * Reading one option of a profile: the dkim_domain stanza's value when it
 * sets it (sub >= 0), else the instance's.
 */
struct od_src {
	struct imp_instance *inst;
	long sub;			/* index of the dkim_domain stanza; -1: the instance */
};

static bool src_set(const struct od_src *s, const char *opt)
{
	return s->sub >= 0 && imp_substanza_option_is_set(s->inst, "dkim_domain", (size_t)s->sub, opt);
}

static const char *src_string(const struct od_src *s, const char *opt)
{
	if (src_set(s, opt))
		return imp_substanza_option_string(s->inst, "dkim_domain", (size_t)s->sub, opt);
	return imp_option_string(s->inst, opt);
}

static const char *const *src_list(const struct od_src *s, const char *opt, size_t *n)
{
	if (src_set(s, opt))
		return imp_substanza_option_list(s->inst, "dkim_domain", (size_t)s->sub, opt, n);
	return imp_option_list(s->inst, opt, n);
}

static int64_t src_int(const struct od_src *s, const char *opt)
{
	if (src_set(s, opt))
		return imp_substanza_option_int(s->inst, "dkim_domain", (size_t)s->sub, opt);
	return imp_option_int(s->inst, opt);
}

static bool src_bool(const struct od_src *s, const char *opt)
{
	if (src_set(s, opt))
		return imp_substanza_option_bool(s->inst, "dkim_domain", (size_t)s->sub, opt);
	return imp_option_bool(s->inst, opt);
}

/* parse_canon - "simple" or "relaxed". */
static int parse_canon(const char *text, enum dkim_canon *out)
{
	if (strcasecmp(text, "simple") == 0)
		*out = DKIM_CANON_SIMPLE;
	else if (strcasecmp(text, "relaxed") == 0)
		*out = DKIM_CANON_RELAXED;
	else
		return -1;
	return 0;
}

/* in_list - whether name is in v (case-insensitive). */
static bool in_list(const char *const *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v[i], name) == 0)
			return true;
	return false;
}

/* filtered - v without the names of skip, copied. */
static char **filtered(const char *const *v, size_t n, const char *const *skip, size_t nskip,
		       size_t *nout)
{
	char **d = calloc(n ? n : 1, sizeof(*d));

	*nout = 0;
	for (size_t i = 0; d && i < n; i++)
		if (!in_list(skip, nskip, v[i]))
			d[(*nout)++] = strdup(v[i]);
	return d;
}

/*
 * profile_build - read one profile's settings (what = "dkim_domain \"x\""
 * or "opendkim" in messages). need_selector: the dkim_domain stanzas
 * must sign; the instance's own settings may lack a selector (then mail
 * of other domains is not signed). Returns 0 or -1 after imp_error_set.
 */
static int profile_build(const struct od_src *s, const char *what, bool need_selector,
			 struct od_profile *p, struct imp_error *err)
{
	const char *t;
	size_t n, nskip, nsel, ndig;

	if (parse_canon(src_string(s, "header_canon"), &p->hc) < 0 ||
	    parse_canon(src_string(s, "body_canon"), &p->bc) < 0) {
		imp_error_set(err, "%s: header_canon and body_canon take simple or relaxed", what);
		return -1;
	}
	const char *const *skip = src_list(s, "skip_headerlist", &nskip);
	const char *const *hl = src_list(s, "headerlist", &n);
	if (n == 0) {
		imp_error_set(err, "%s: headerlist is required (the header fields to sign, From first)",
			      what);
		return -1;
	}
	p->headers = filtered(hl, n, skip, nskip, &p->nheaders);
	const char *const *ov = src_list(s, "oversign_headerlist", &n);
	p->oversign = filtered(ov, n, skip, nskip, &p->noversign);
	if (p->headers == NULL || p->oversign == NULL) {
		imp_error_set(err, "out of memory");
		return -1;
	}
	if (!in_list((const char *const *)p->headers, p->nheaders, "from") &&
	    !in_list((const char *const *)p->oversign, p->noversign, "from")) {
		imp_error_set(err, "%s: From must be signed (RFC 6376 5.4): put it in headerlist "
			      "and not in skip_headerlist", what);
		return -1;
	}
	if (in_list((const char *const *)p->headers, p->nheaders, "dkim-signature") ||
	    in_list((const char *const *)p->oversign, p->noversign, "dkim-signature")) {
		imp_error_set(err, "%s: DKIM-Signature cannot be in headerlist or "
			      "oversign_headerlist", what);
		return -1;
	}

	const char *const *dig = src_list(s, "digest", &ndig);
	if (ndig == 0 || ndig > OD_DIGESTS_MAX) {
		imp_error_set(err, "%s: digest takes rsa-sha256, ed25519-sha256 or both", what);
		return -1;
	}
	const char *const *sel = src_list(s, "selector", &nsel);
	if (nsel == 0 && need_selector) {
		imp_error_set(err, "%s: selector is required", what);
		return -1;
	}
	if (nsel != 0 && nsel != ndig) {
		imp_error_set(err, "%s: %zu digests need %zu selectors, one for each (a DNS key record "
			      "has one key type), not %zu", what, ndig, ndig, nsel);
		return -1;
	}
	for (size_t i = 0; i < ndig; i++) {
		enum dkim_alg a;

		if (strcasecmp(dig[i], "rsa-sha256") == 0)
			a = DKIM_ALG_RSA_SHA256;
		else if (strcasecmp(dig[i], "ed25519-sha256") == 0)
			a = DKIM_ALG_ED25519_SHA256;
		else {
			imp_error_set(err, "%s: digest \"%s\": expected rsa-sha256 or ed25519-sha256%s",
				      what, dig[i], strcasecmp(dig[i], "rsa-sha1") == 0 ?
				      " (rsa-sha1 is forbidden by RFC 8301)" : "");
			return -1;
		}
		for (size_t j = 0; j < i; j++)
			if (p->sigs[j].alg == a) {
				imp_error_set(err, "%s: digest \"%s\" given twice", what, dig[i]);
				return -1;
			}
		if (nsel == 0)
			continue;
		p->sigs[p->nsigs].alg = a;
		p->sigs[p->nsigs].selector = strdup(sel[i]);
		p->nsigs++;
	}

	t = src_string(s, "key");
	if (t == NULL && p->nsigs > 0) {
		imp_error_set(err, "%s: key is required (the private key file, %%{d} and %%{s} "
			      "expand)", what);
		return -1;
	}
	if (t && imp_macro_needs(t) < 0) {
		imp_error_set(err, "%s: key \"%s\": bad macro syntax", what, t);
		return -1;
	}
	p->key = t ? strdup(t) : NULL;
	p->lifetime = (uint32_t)(src_int(s, "lifetime") * 3600);
	p->body_length_limit = src_bool(s, "body_length_limit");
	t = src_string(s, "sign_condition");
	p->sign_condition = t && *t ? strdup(t) : NULL;
	t = src_string(s, "identity");
	if (t && imp_macro_needs(t) < 0) {
		imp_error_set(err, "%s: identity \"%s\": bad macro syntax", what, t);
		return -1;
	}
	p->identity = t && *t ? strdup(t) : NULL;
	if (s->sub >= 0) {
		t = imp_substanza_option_string(s->inst, "dkim_domain", (size_t)s->sub, "base_domain");
		p->base_domain = t && *t ? lower_dup(t, strlen(t)) : NULL;
	}
	return 0;
}

/* table_find - the dkim_domain profile named exactly name (lower case), or NULL. */
static const struct od_profile *table_find(const struct od *od, const char *name, size_t len)
{
	char buf[DKIM_NAME_MAX + 1];

	if (od->ntable == 0 || len > DKIM_NAME_MAX)
		return NULL;
	memcpy(buf, name, len);
	buf[len] = '\0';
	for (const struct od_profile *p = od->table[hash_name(buf) & (od->ntable - 1)]; p;
	     p = p->hnext)
		if (strcmp(p->name, buf) == 0)
			return p;
	return NULL;
}

/* add_condition - remember a sign_condition key once. */
static void add_condition(struct od *od, const char *key)
{
	for (size_t i = 0; i < od->nconditions; i++)
		if (strcmp(od->conditions[i], key) == 0)
			return;
	char **v = realloc(od->conditions, (od->nconditions + 1) * sizeof(*v));

	if (v == NULL)
		return;
	od->conditions = v;
	od->conditions[od->nconditions++] = strdup(key);
}

static void od_free(struct od *od)
{
	if (od == NULL)
		return;
	if (od->def) {
		profile_free(od->def);
		free(od->def);
	}
	for (size_t i = 0; i < od->nprofiles; i++)
		profile_free(&od->profiles[i]);
	free(od->profiles);
	free(od->table);
	list_free(od->conditions, od->nconditions);
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
	for (size_t i = 0; i < od->nconditions; i++) {
		struct sess_ctx conn = { s, IMP_VCTX_CONN }, mess = { s, IMP_VCTX_MESS };
		const char *key = od->conditions[i];

		if (ctx_key_true(sess_get, &mess, key) || ctx_key_true(sess_get, &conn, key)) {
			snprintf(mark, sizeof(mark), "%s%s", OD_COND_PREFIX, key);
			imp_message_vctx_set(msg, mark, "1");
		}
	}
	return IMP_CONTINUE;
}

/* profile_for - the profile of a From domain and the d= it signs with (in dbuf). */
static const struct od_profile *profile_for(const struct od *od, const char *from,
					    char *dbuf, size_t dlen)
{
	const struct od_profile *p = table_find(od, from, strlen(from));

	/* The nearest parent domain's stanza covers its subdomains. */
	for (const char *dot = strchr(from, '.'); p == NULL && dot; dot = strchr(dot + 1, '.'))
		p = table_find(od, dot + 1, strlen(dot + 1));
	if (p) {
		snprintf(dbuf, dlen, "%s", p->base_domain ? p->base_domain : p->name);
		return p;
	}
	if (od->def->nsigs == 0)
		return NULL;
	snprintf(dbuf, dlen, "%s", od->def->base_domain ? od->def->base_domain : from);
	return od->def;
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
		od_stats_add(od->stats, d, OD_STAT_SIGNED);
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
	const struct od_profile *p = profile_for(od, from, d, sizeof(d));
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
		if (imp_header_prepend(msg, "DKIM-Signature", v) < 0)
			imp_log_panic(od->inst, "%s dkim_failed domain=%s error=\"cannot add the field\" "
				      "(sent unsigned)", idtext, d);
		free(fields[i]);
	}
}

/* ---- life cycle --------------------------------------------------------------- */

/* od_init - build the profiles, the key cache and the counters; subscribe. */
static int od_init(struct imp_instance *inst, struct imp_error *err)
{
	struct od *od = calloc(1, sizeof(*od));
	size_t nd = imp_substanza_count(inst, "dkim_domain");
	struct od_src src = { inst, -1 };
	char what[DKIM_NAME_MAX + 32];

	if (od == NULL)
		goto oom;
	pthread_mutex_init(&od->report_lock, NULL);
	od->inst = inst;
	od->def = calloc(1, sizeof(*od->def));
	od->profiles = calloc(nd ? nd : 1, sizeof(*od->profiles));
	od->keys = od_keycache_new((size_t)imp_option_int(inst, "keycache_size"),
				   (uint64_t)imp_option_int(inst, "pos_keycache_ttl"),
				   (uint64_t)imp_option_int(inst, "neg_keycache_ttl"));
	od->stats = od_stats_new();
	if (od->def == NULL || od->profiles == NULL || od->keys == NULL || od->stats == NULL)
		goto oom;
	if (profile_build(&src, "opendkim", false, od->def, err) < 0)
		goto fail;
	if (od->def->sign_condition)
		add_condition(od, od->def->sign_condition);

	od->ntable = 16;
	while (od->ntable < nd * 2)
		od->ntable *= 2;
	od->table = calloc(od->ntable, sizeof(*od->table));
	if (od->table == NULL)
		goto oom;
	for (size_t i = 0; i < nd; i++) {
		const char *arg = imp_substanza_arg(inst, "dkim_domain", i);
		struct od_profile *p = &od->profiles[i];

		src.sub = (long)i;
		snprintf(what, sizeof(what), "dkim_domain \"%.253s\"", arg);
		od->nprofiles = i + 1;
		p->name = lower_dup(arg, strlen(arg));
		if (p->name == NULL)
			goto oom;
		if (*p->name == '\0' || strlen(p->name) > DKIM_NAME_MAX) {
			imp_error_set(err, "%s: not a domain name", what);
			goto fail;
		}
		if (profile_build(&src, what, true, p, err) < 0)
			goto fail;
		if (table_find(od, p->name, strlen(p->name))) {
			imp_error_set(err, "%s: the domain has two dkim_domain stanzas", what);
			goto fail;
		}
		uint32_t h = hash_name(p->name) & (uint32_t)(od->ntable - 1);
		p->hnext = od->table[h];
		od->table[h] = p;
		if (p->sign_condition)
			add_condition(od, p->sign_condition);
	}
	if (imp_hook_sign(inst, od_sign, od, IMP_ORDER_DEFAULT) < 0 ||
	    (od->nconditions &&
	     imp_hook_validate(inst, IMP_PHASE_DATA_SPOOL, od_condition, od, IMP_ORDER_FIRST) < 0)) {
		imp_error_set(err, "cannot subscribe to the sign hook");
		goto fail;
	}
	imp_instance_set_data(inst, od);
	return 0;
oom:
	imp_error_set(err, "out of memory");
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
