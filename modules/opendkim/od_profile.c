/*
 * od_profile.c - the opendkim module's signing profiles (see od_profile.h)
 *
 * Options are read through a struct od_src, "this dkim_domain stanza,
 * else the instance": Momentum's inheritance. Every check a signature
 * would otherwise fail on per message is made here once, at init, so a
 * bad configuration stops start-up (or a reload) with the reason.
 */
#include "od_profile.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <impetus/impetus.h>

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
static const struct od_profile *table_find(const struct od_profiles *ps, const char *name, size_t len)
{
	char buf[DKIM_NAME_MAX + 1];

	if (ps->ntable == 0 || len > DKIM_NAME_MAX)
		return NULL;
	memcpy(buf, name, len);
	buf[len] = '\0';
	for (const struct od_profile *p = ps->table[hash_name(buf) & (ps->ntable - 1)]; p;
	     p = p->hnext)
		if (strcmp(p->name, buf) == 0)
			return p;
	return NULL;
}

/* add_condition - remember a sign_condition key once. */
static void add_condition(struct od_profiles *ps, const char *key)
{
	for (size_t i = 0; i < ps->nconditions; i++)
		if (strcmp(ps->conditions[i], key) == 0)
			return;
	char **v = realloc(ps->conditions, (ps->nconditions + 1) * sizeof(*v));

	if (v == NULL)
		return;
	ps->conditions = v;
	ps->conditions[ps->nconditions++] = strdup(key);
}

int od_profiles_build(struct od_profiles *ps, struct imp_instance *inst, struct imp_error *err)
{
	size_t nd = imp_substanza_count(inst, "dkim_domain");
	struct od_src src = { inst, -1 };
	char what[DKIM_NAME_MAX + 32];

	ps->def = calloc(1, sizeof(*ps->def));
	ps->profiles = calloc(nd ? nd : 1, sizeof(*ps->profiles));
	ps->ntable = 16;
	while (ps->ntable < nd * 2)
		ps->ntable *= 2;
	ps->table = calloc(ps->ntable, sizeof(*ps->table));
	if (ps->def == NULL || ps->profiles == NULL || ps->table == NULL)
		goto oom;
	if (profile_build(&src, "opendkim", false, ps->def, err) < 0)
		return -1;
	if (ps->def->sign_condition)
		add_condition(ps, ps->def->sign_condition);
	for (size_t i = 0; i < nd; i++) {
		const char *arg = imp_substanza_arg(inst, "dkim_domain", i);
		struct od_profile *p = &ps->profiles[i];

		src.sub = (long)i;
		snprintf(what, sizeof(what), "dkim_domain \"%.253s\"", arg);
		ps->nprofiles = i + 1;
		p->name = lower_dup(arg, strlen(arg));
		if (p->name == NULL)
			goto oom;
		if (*p->name == '\0' || strlen(p->name) > DKIM_NAME_MAX) {
			imp_error_set(err, "%s: not a domain name", what);
			return -1;
		}
		if (profile_build(&src, what, true, p, err) < 0)
			return -1;
		if (table_find(ps, p->name, strlen(p->name))) {
			imp_error_set(err, "%s: the domain has two dkim_domain stanzas", what);
			return -1;
		}
		uint32_t h = hash_name(p->name) & (uint32_t)(ps->ntable - 1);
		p->hnext = ps->table[h];
		ps->table[h] = p;
		if (p->sign_condition)
			add_condition(ps, p->sign_condition);
	}
	return 0;
oom:
	imp_error_set(err, "out of memory");
	return -1;
}

void od_profiles_free(struct od_profiles *ps)
{
	if (ps->def) {
		profile_free(ps->def);
		free(ps->def);
	}
	for (size_t i = 0; i < ps->nprofiles; i++)
		profile_free(&ps->profiles[i]);
	free(ps->profiles);
	free(ps->table);
	list_free(ps->conditions, ps->nconditions);
	memset(ps, 0, sizeof(*ps));
}

/* od_profiles_for - in the order of od_profile.h. */
const struct od_profile *od_profiles_for(const struct od_profiles *ps, const char *from,
					 char *dbuf, size_t dlen)
{
	const struct od_profile *p = table_find(ps, from, strlen(from));

	/* The nearest parent domain's stanza covers its subdomains. */
	for (const char *dot = strchr(from, '.'); p == NULL && dot; dot = strchr(dot + 1, '.'))
		p = table_find(ps, dot + 1, strlen(dot + 1));
	if (p) {
		snprintf(dbuf, dlen, "%s", p->base_domain ? p->base_domain : p->name);
		return p;
	}
	if (ps->def->nsigs == 0)
		return NULL;
	snprintf(dbuf, dlen, "%s", ps->def->base_domain ? ps->def->base_domain : from);
	return ps->def;
}
