/*
 * conf_auth.c - the SMTP AUTH options: SMTP_Extensions, the Auth*Parameters
 * arrays and the password files they name
 *
 *   SMTP_Extensions = ( "ENHANCEDSTATUSCODES" "AUTH LOGIN PLAIN" )
 *   AuthLoginParameters = [ uri = "file:///etc/impetus/passwd" ]
 *
 * An Auth*Parameters value is read like any option; reading it loads the
 * password file it names (core/passwd.h), so a malformed file fails the
 * load with "conf:line:col: passwd:line: reason" and `impetusd -t` sees
 * it, and a reload reads the file again (the old generation keeps its
 * own copy until its last session ends). The database is freed with the
 * configuration's arena (conf_arena_defer).
 *
 * conf_auth_check, after parsing, refuses a listener that offers a
 * mechanism without a password file for it.
 *
 * Ownership: built while loading, read-only afterwards (any thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/conf_int.h"
#include "core/passwd.h"

/* Extension names Momentum lists in SMTP_Extensions that impetus always offers. */
static const char *const always_offered[] = {
	"ENHANCEDSTATUSCODES", "PIPELINING", "8BITMIME", "SIZE", "DSN", "SMTPUTF8", "CHUNKING",
	"STARTTLS",
};

/* word_at - the next blank-separated word of s from *i: its start and length (0 at the end). */
static size_t word_at(const char *s, size_t *i, const char **w)
{
	while (s[*i] == ' ' || s[*i] == '\t')
		(*i)++;
	*w = s + *i;
	while (s[*i] && s[*i] != ' ' && s[*i] != '\t')
		(*i)++;
	return (size_t)(s + *i - *w);
}

/* mech_bit - a mechanism name as a CONF_AUTH_* bit; 0 when impetus does not have it. */
static unsigned mech_bit(const char *w, size_t n)
{
	if (n == 5 && conf_ascii_caseeq_n(w, "PLAIN", 5))
		return CONF_AUTH_PLAIN;
	if (n == 5 && conf_ascii_caseeq_n(w, "LOGIN", 5))
		return CONF_AUTH_LOGIN;
	return 0;
}

bool conf_extensions_build(const struct conf_item *items, size_t n, struct conf_arena *a,
			   struct conf_setting *s, size_t *bad, struct str *msg)
{
	unsigned *mechs = conf_arena_alloc(a, sizeof(*mechs));

	for (size_t k = 0; k < n; k++) {
		const char *t = items[k].text;
		const char *w;
		size_t i = 0;
		size_t len = word_at(t, &i, &w);
		bool known = false;

		*bad = k;
		if (len == 4 && conf_ascii_caseeq_n(w, "AUTH", 4)) {
			unsigned here = 0;

			while ((len = word_at(t, &i, &w)) > 0) {
				unsigned bit = mech_bit(w, len);

				if (bit == 0) {
					str_appendf(msg, "SMTP_Extensions: AUTH mechanism \"%.*s\" is not "
						    "supported (impetus has LOGIN and PLAIN)",
						    (int)(len > 60 ? 60 : len), w);
					return false;
				}
				here |= bit;
			}
			if (here == 0) {
				str_appendf(msg, "SMTP_Extensions: \"AUTH\" needs its mechanisms, "
					    "e.g. \"AUTH LOGIN PLAIN\"");
				return false;
			}
			*mechs |= here;
			continue;
		}
		for (size_t j = 0; j < sizeof(always_offered) / sizeof(always_offered[0]); j++)
			if (len == strlen(always_offered[j]) &&
			    conf_ascii_caseeq_n(w, always_offered[j], len))
				known = true;
		if (!known || word_at(t, &i, &w) != 0) {
			str_appendf(msg, "SMTP_Extensions: \"%.100s\" is not an extension impetus "
				    "offers (AUTH <mechanisms>, or one of ENHANCEDSTATUSCODES "
				    "PIPELINING 8BITMIME SIZE DSN SMTPUTF8 CHUNKING STARTTLS)", t);
			return false;
		}
	}
	s->extra = mechs;
	return true;
}

/* free_db - conf_arena_defer's shape for passwd_db_free. */
static void free_db(void *p)
{
	passwd_db_free(p);
}

bool conf_params_build(enum conf_opt opt, const struct conf_item *items, size_t n,
		       struct conf_arena *a, struct conf_setting *s, size_t *bad, struct str *msg)
{
	struct conf_auth_params *ap = conf_arena_alloc(a, sizeof(*ap));
	const char **arr = conf_arena_alloc(a, (n ? n : 1) * sizeof(*arr));
	const char *name = conf_option_name(opt);
	const struct conf_item *uri = NULL;

	/* items are key, value, key, value: the parser checked the shape. */
	for (size_t k = 0; k + 1 < n; k += 2) {
		const char *key = items[k].text, *val = items[k + 1].text;

		*bad = k;
		for (size_t j = 0; j < k; j += 2)
			if (conf_ascii_caseeq(items[j].text, key)) {
				str_appendf(msg, "%s: duplicate key \"%.60s\"", name, key);
				return false;
			}
		if (conf_ascii_caseeq(key, "uri")) {
			uri = &items[k + 1];
		} else if (conf_ascii_caseeq(key, "log_authentication")) {
			int64_t b;

			if (conf_scalar_parse(CONF_T_BOOL, val, &b) != 0) {
				*bad = k + 1;
				str_appendf(msg, "%s: \"%.60s\" is not a valid boolean for "
					    "log_authentication", name, val);
				return false;
			}
			ap->log = b != 0;
		} else {
			str_appendf(msg, "%s: unknown key \"%.60s\" (impetus knows uri and "
				    "log_authentication)", name, key);
			return false;
		}
		arr[k] = conf_arena_strdup(a, key);
		arr[k + 1] = conf_arena_strdup(a, val);
	}
	s->v.u.list.v = arr;
	s->v.u.list.n = n;
	if (uri == NULL) {
		*bad = n;
		str_appendf(msg, "%s needs uri = \"file:///path/to/passwd\"", name);
		return false;
	}
	*bad = (size_t)(uri - items);
	if (strncmp(uri->text, "file://", 7) != 0 || uri->text[7] != '/') {
		str_appendf(msg, "%s: uri \"%.200s\" is not supported (impetus reads "
			    "\"file:///absolute/path\" password files)", name, uri->text);
		return false;
	}
	ap->path = conf_arena_strdup(a, uri->text + 7);

	struct str err = STR_INIT;

	ap->db = passwd_db_load(ap->path, &err);
	if (ap->db == NULL) {
		str_appendf(msg, "%s: %s", name, str_cstr(&err));
		str_free(&err);
		return false;
	}
	str_free(&err);
	conf_arena_defer(a, free_db, ap->db);
	s->extra = ap;
	return true;
}

/* params_of - the loaded parameters of opt at listener l, or NULL when unset. */
static const struct conf_auth_params *params_of(const struct conf *c, const struct conf_listener *l,
						enum conf_opt opt)
{
	return conf_setting_of(conf_listener_get(c, l, opt))->extra;
}

void conf_listener_auth(const struct conf *c, const struct conf_listener *l, struct conf_auth *out)
{
	const unsigned *mechs = conf_setting_of(conf_listener_get(c, l, CONF_OPT_SMTP_EXTENSIONS))->extra;
	const struct conf_auth_params *lp = params_of(c, l, CONF_OPT_AUTHLOGINPARAMETERS);
	const struct conf_auth_params *pp = params_of(c, l, CONF_OPT_AUTHPLAINPARAMETERS);

	memset(out, 0, sizeof(*out));
	out->mechs = mechs ? *mechs : 0;
	out->allow_plaintext = conf_listener_get(c, l, CONF_OPT_AUTH_ALLOW_PLAINTEXT)->u.b;
	if (out->mechs & CONF_AUTH_PLAIN) {
		const struct conf_auth_params *p = pp ? pp : lp;

		out->plain_db = p ? p->db : NULL;
		out->plain_log = p ? p->log : false;
	}
	if (out->mechs & CONF_AUTH_LOGIN) {
		const struct conf_auth_params *p = lp ? lp : pp;

		out->login_db = p ? p->db : NULL;
		out->login_log = p ? p->log : false;
	}
}

/* check_one - listener l (NULL: the ESMTP_Listener level) offers no mechanism without a file. */
static bool check_one(const struct conf *c, const struct conf_listener *l, struct str *err)
{
	struct conf_auth a;

	conf_listener_auth(c, l, &a);
	if (((a.mechs & CONF_AUTH_PLAIN) && a.plain_db == NULL) ||
	    ((a.mechs & CONF_AUTH_LOGIN) && a.login_db == NULL)) {
		const struct conf_setting *s =
			conf_setting_of(conf_listener_get(c, l, CONF_OPT_SMTP_EXTENSIONS));

		str_appendf(err, "%s:%d:%d: SMTP_Extensions offers AUTH but %s%s%s has no "
			    "AuthLoginParameters or AuthPlainParameters (a password file)",
			    s->v.file, s->v.line, s->col, l ? "Listen \"" : "the ESMTP_Listener",
			    l ? conf_listener_address(l) : "", l ? "\"" : "");
		return false;
	}
	return true;
}

bool conf_auth_check(const struct conf *c, struct str *err)
{
	size_t n = conf_listener_count(c);

	for (size_t i = 0; i < n; i++)
		if (!check_one(c, conf_listener_at(c, i), err))
			return false;
	return n > 0 || check_one(c, NULL, err);
}
