/*
 * smtp_params.c - struct imp_params: the ESMTP parameters of an outbound
 * MAIL FROM or RCPT TO, as the client_params hook changes them
 *
 * The format functions of smtp_client.c write impetusd's own parameters
 * (SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT); when someone
 * subscribed, smtpc_params_run reads them back into a struct imp_params,
 * lets each subscriber in order set, remove or read them, and writes the
 * result in place. Everything a module sets is checked against the
 * grammar of RFC 5321 4.1.2 before it is kept, so a bad parameter is
 * refused (-EINVAL) at the call and never reaches the wire:
 *
 *   esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 *   esmtp-value   = 1*(%d33-60 / %d62-126)    ; no "=", SP or control
 *
 * plus our own caps: keywords up to PARAM_KEY_MAX bytes, values up to
 * PARAM_VALUE_MAX, at most PARAM_MAX parameters, so a command stays well
 * within what servers accept.
 *
 * Ownership: a struct imp_params lives on the stack of
 * smtpc_params_run, on the connection's I/O loop, for the duration of
 * the subscriber calls. Failures: -EINVAL, -ENOSPC, -ENOENT to the
 * module; nothing else.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "core/mem.h"
#include "core/str.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_client_int.h"

#define PARAM_MAX 32
#define PARAM_KEY_MAX 64
#define PARAM_VALUE_MAX 500

struct imp_params {
	struct {
		char *key;
		char *value;	/* NULL for a bare KEY */
	} v[PARAM_MAX];
	size_t n;
	const struct smtp_caps *caps;
};

/* key_ok - an esmtp-keyword within our length cap. */
static bool key_ok(const char *k)
{
	size_t n = 0;

	if (k == NULL || !((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') ||
			   (k[0] >= '0' && k[0] <= '9')))
		return false;
	for (; k[n]; n++) {
		char c = k[n];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
	}
	return n <= PARAM_KEY_MAX;
}

/* value_ok - an esmtp-value within our length cap (NULL: a bare keyword, fine). */
static bool value_ok(const char *v)
{
	size_t n = 0;

	if (v == NULL)
		return true;
	for (; v[n]; n++) {
		unsigned char c = (unsigned char)v[n];
		if (c < 33 || c > 126 || c == '=')
			return false;
	}
	return n >= 1 && n <= PARAM_VALUE_MAX;
}

static ssize_t find(const struct imp_params *p, const char *key)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcasecmp(p->v[i].key, key) == 0)
			return (ssize_t)i;
	return -1;
}

int imp_params_set(struct imp_params *p, const char *key, const char *value)
{
	if (p == NULL || !key_ok(key) || !value_ok(value))
		return -EINVAL;
	ssize_t i = find(p, key);
	if (i >= 0) {
		free(p->v[i].value);
		p->v[i].value = value ? xstrdup(value) : NULL;
		return 0;
	}
	if (p->n == PARAM_MAX)
		return -ENOSPC;
	p->v[p->n].key = xstrdup(key);
	p->v[p->n].value = value ? xstrdup(value) : NULL;
	p->n++;
	return 0;
}

int imp_params_remove(struct imp_params *p, const char *key)
{
	ssize_t i = key ? find(p, key) : -1;

	if (i < 0)
		return -ENOENT;
	free(p->v[i].key);
	free(p->v[i].value);
	memmove(&p->v[i], &p->v[i + 1], (p->n - (size_t)i - 1) * sizeof(p->v[0]));
	p->n--;
	return 0;
}

const char *imp_params_get(const struct imp_params *p, const char *key)
{
	ssize_t i = key ? find(p, key) : -1;

	if (i < 0)
		return NULL;
	return p->v[i].value ? p->v[i].value : "";
}

bool imp_params_peer_has(const struct imp_params *p, const char *capability)
{
	size_t n = capability ? strlen(capability) : 0;

	if (n == 0 || p->caps == NULL)
		return false;
	/* keywords is "KW1 KW2 ": match a whole word. */
	for (const char *w = p->caps->keywords; *w;) {
		const char *end = strchr(w, ' ');
		size_t len = end ? (size_t)(end - w) : strlen(w);
		if (len == n && strncasecmp(w, capability, n) == 0)
			return true;
		if (end == NULL)
			break;
		w = end + 1;
	}
	return false;
}

/* params_read - what the format functions wrote after at: " KEY[=VALUE]" each. */
static void params_read(struct imp_params *p, const char *s)
{
	while (*s) {
		while (*s == ' ')
			s++;
		size_t len = strcspn(s, " ");
		if (len == 0)
			break;
		const char *eq = memchr(s, '=', len);
		char *key = xstrndup(s, eq ? (size_t)(eq - s) : len);
		char *value = eq ? xstrndup(eq + 1, len - (size_t)(eq - s) - 1) : NULL;
		if (p->n < PARAM_MAX) {
			p->v[p->n].key = key;
			p->v[p->n].value = value;
			p->n++;
		} else {
			free(key);
			free(value);
		}
		s += len;
	}
}

void smtpc_params_run(struct str *out, size_t at, const struct smtp_batch *b,
		      size_t rcpt_index, const struct smtp_caps *caps)
{
	const struct api_hook *h = b->params_hook;
	struct imp_params p = { .caps = caps };

	params_read(&p, out->s + at);
	for (size_t i = 0; i < h->n; i++) {
		imp_client_params_fn fn = (imp_client_params_fn)h->v[i].fn;
		fn(h->v[i].closure, b->view, rcpt_index, &p);
	}
	str_truncate(out, at);
	for (size_t i = 0; i < p.n; i++) {
		str_appendc(out, ' ');
		str_appends(out, p.v[i].key);
		if (p.v[i].value) {
			str_appendc(out, '=');
			str_appends(out, p.v[i].value);
		}
		free(p.v[i].key);
		free(p.v[i].value);
	}
}
