/*
 * http_parse.c - routes, JSON command bodies and Authorization headers (http_parse.h)
 *
 * Pure functions over the bytes a client sent; no state. Every reader
 * checks lengths before it copies and refuses what it cannot represent
 * exactly (a capture that would be cut, a NUL inside a JSON string), so
 * a request means one thing or is refused with a reason.
 */
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "core/base64.h"
#include "core/mem.h"
#include "http/http_parse.h"

/* ---- paths ---------------------------------------------------------------------- */

/* hexval - the value of a hex digit, or -1. */
static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * decode_segment - percent-decode seg[0..len) into out (cap bytes with
 * the NUL); -1 for bad escapes, a decoded NUL or control byte, or no room.
 */
static int decode_segment(const char *seg, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)seg[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return -1;
			hi = hexval((unsigned char)seg[i + 1]);
			lo = hexval((unsigned char)seg[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f)
			return -1;
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/*
 * shown - at most 100 bytes of path for an error message, each control
 * or non-ASCII byte as "?": the message stays one line of valid UTF-8
 * whatever the client sent.
 */
static const char *shown(const char *path, char buf[101])
{
	size_t i;

	for (i = 0; i < 100 && path[i]; i++) {
		unsigned char c = (unsigned char)path[i];

		buf[i] = (char)(c < 0x20 || c >= 0x7f ? '?' : c);
	}
	buf[i] = '\0';
	return buf;
}

/* method_bit_name - for messages. */
static const char *method_name(enum http_method m)
{
	return m == HTTP_M_GET ? "GET" : m == HTTP_M_POST ? "POST" : "this method";
}

/*
 * match_one - whether the decoded segments fit pattern; captures into m.
 * segs are NUL-terminated decoded segments.
 */
static bool match_one(const char *pattern, char segs[][HTTP_PARAM_MAX + 1], size_t nsegs,
		      struct http_match *m)
{
	const char *p = pattern;
	size_t k = 0;

	m->n = 0;
	if (*p == '/')
		p++;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t plen = end ? (size_t)(end - p) : strlen(p);

		if (k >= nsegs)
			return false;
		if (plen == 2 && p[0] == '{' && p[1] == '}') {
			if (segs[k][0] == '\0' || m->n >= HTTP_ROUTE_PARAMS_MAX)
				return false;
			memcpy(m->param[m->n++], segs[k], strlen(segs[k]) + 1);
		} else if (strlen(segs[k]) != plen || memcmp(segs[k], p, plen) != 0) {
			return false;
		}
		k++;
		p += plen;
		if (*p == '/')
			p++;
	}
	return k == nsegs;
}

const struct http_route *http_route_find(const struct http_route *routes, size_t n,
					 enum http_method method, const char *path,
					 struct http_match *m, int *status, unsigned *allow,
					 struct str *err)
{
	/* Decoded segments; a path has at most HTTP_PATH_MAX / 2 of them, but no route more than 8. */
	enum { SEGS_MAX = 8 };
	static char segs[SEGS_MAX + 1][HTTP_PARAM_MAX + 1];	/* scheduler thread only */
	size_t nsegs = 0, len;
	const char *p;
	char sbuf[101];

	*allow = 0;
	*status = 400;
	if (path == NULL || path[0] != '/') {
		str_appends(err, "the request path must start with \"/\"");
		return NULL;
	}
	len = strlen(path);
	if (len > HTTP_PATH_MAX) {
		str_appendf(err, "the request path is longer than %d bytes", HTTP_PATH_MAX);
		return NULL;
	}
	p = path + 1;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t slen = end ? (size_t)(end - p) : strlen(p);

		if (nsegs > SEGS_MAX) {
			*status = 404;
			str_appendf(err, "no such route: %s", shown(path, sbuf));
			return NULL;
		}
		if (decode_segment(p, slen, segs[nsegs], sizeof(segs[nsegs])) < 0) {
			str_appends(err, "bad path: a segment has a bad %-escape, a control byte, or "
					 "is longer than 255 bytes");
			return NULL;
		}
		if (strcmp(segs[nsegs], ".") == 0 || strcmp(segs[nsegs], "..") == 0) {
			str_appends(err, "bad path: \".\" and \"..\" segments are not allowed");
			return NULL;
		}
		nsegs++;
		p += slen;
		if (*p == '/') {
			p++;
			if (*p == '\0') {
				/* A trailing slash: "/api/v1/summary/" is the same route. */
				break;
			}
		}
	}
	if (nsegs > SEGS_MAX) {
		*status = 404;
		str_appendf(err, "no such route: %s", shown(path, sbuf));
		return NULL;
	}
	const struct http_route *hit = NULL;
	for (size_t i = 0; i < n; i++) {
		struct http_match tmp;

		if (!match_one(routes[i].pattern, segs, nsegs, &tmp))
			continue;
		*allow |= routes[i].method;
		if (routes[i].method == method && hit == NULL) {
			hit = &routes[i];
			*m = tmp;
		}
	}
	if (hit) {
		*status = 200;
		return hit;
	}
	if (*allow) {
		*status = 405;
		str_appendf(err, "%s is not allowed on %s (allowed: %s%s%s)", method_name(method),
			    shown(path, sbuf), *allow & HTTP_M_GET ? "GET" : "",
			    (*allow & HTTP_M_GET) && (*allow & HTTP_M_POST) ? ", " : "",
			    *allow & HTTP_M_POST ? "POST" : "");
		return NULL;
	}
	*status = 404;
	str_appendf(err, "no such route: %s", shown(path, sbuf));
	return NULL;
}

/* ---- POST /api/v1/commands --------------------------------------------------------- */

/* name_ok - a console command name: [a-z0-9_]{1,32}. */
static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || len > 32)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* text_ok - no control byte (a NUL included: JSON's \u0000 would cut the argument). */
static bool text_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

void http_command_free(struct http_command *c)
{
	for (int i = 0; i < c->argc; i++)
		free(c->argv[i]);
	c->argc = 0;
	c->argv[0] = NULL;
}

/* parse_command - http_command_parse before the error is made printable. */
static int parse_command(const char *body, size_t len, struct http_command *out, struct str *err)
{
	json_error_t jerr;
	json_t *root, *cmd, *args;
	const char *key;
	json_t *val;
	int rc = -1;

	out->argc = 0;
	out->argv[0] = NULL;
	if (len == 0) {
		str_appends(err, "the body is empty: send {\"command\": \"...\", \"args\": [...]}");
		return -1;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		str_appendf(err, "bad JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		str_appends(err, "the body must be a JSON object");
		goto out;
	}
	json_object_foreach(root, key, val) {
		if (strcmp(key, "command") != 0 && strcmp(key, "args") != 0) {
			str_appendf(err, "unknown field \"%.64s\" (command, args)", key);
			goto out;
		}
	}
	cmd = json_object_get(root, "command");
	if (cmd == NULL) {
		str_appends(err, "command: missing");
		goto out;
	}
	if (!json_is_string(cmd) ||
	    !name_ok(json_string_value(cmd), json_string_length(cmd))) {
		str_appends(err, "command: not a command name ([a-z0-9_], 1 to 32 characters)");
		goto out;
	}
	args = json_object_get(root, "args");
	if (args != NULL && !json_is_array(args)) {
		str_appends(err, "args: not an array");
		goto out;
	}
	if (args != NULL && json_array_size(args) + 1 > HTTP_CMD_ARGS_MAX) {
		str_appendf(err, "args: more than %d arguments", HTTP_CMD_ARGS_MAX - 1);
		goto out;
	}
	if (args != NULL) {
		size_t i;

		json_array_foreach(args, i, val) {
			if (!json_is_string(val)) {
				str_appendf(err, "args[%zu]: not a string", i);
				goto out;
			}
			if (json_string_length(val) > HTTP_CMD_ARG_MAX ||
			    !text_ok(json_string_value(val), json_string_length(val))) {
				str_appendf(err, "args[%zu]: longer than %d bytes or has a control character",
					    i, HTTP_CMD_ARG_MAX);
				goto out;
			}
		}
	}
	out->argv[out->argc++] = xstrdup(json_string_value(cmd));
	if (args != NULL) {
		size_t i;

		json_array_foreach(args, i, val)
			out->argv[out->argc++] = xstrdup(json_string_value(val));
	}
	out->argv[out->argc] = NULL;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* clean_from - control and non-ASCII bytes of err from off on as "?" (they quote the client). */
static void clean_from(struct str *err, size_t off)
{
	for (size_t i = off; i < err->len; i++)
		if ((unsigned char)err->s[i] < 0x20 || (unsigned char)err->s[i] >= 0x7f)
			err->s[i] = '?';
}

int http_command_parse(const char *body, size_t len, struct http_command *out, struct str *err)
{
	size_t off = err->len;
	int rc = parse_command(body, len, out, err);

	if (rc < 0)
		clean_from(err, off);
	return rc;
}

/* ---- Authorization ---------------------------------------------------------------- */

/* ci_prefix - s starts with word (ASCII case-insensitive) and a blank. */
static bool ci_prefix(const char *s, const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; i < n; i++) {
		char a = s[i], b = word[i];

		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (a != b)
			return false;
	}
	return s[n] == ' ' || s[n] == '\t';
}

int http_auth_parse(const char *header, char key[HTTP_KEY_MAX + 1])
{
	const char *v, *end;
	size_t len;

	if (header == NULL)
		return -1;
	v = header;
	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	len = (size_t)(end - v);
	if (len == 0 || len > 4 * HTTP_KEY_MAX)
		return -1;
	/* A scheme with nothing after it carries no key (not the key "Basic"). */
	if ((len == 5 && strncasecmp(v, "basic", 5) == 0) ||
	    (len == 6 && strncasecmp(v, "bearer", 6) == 0))
		return -1;
	if (ci_prefix(v, "basic")) {
		struct str dec = STR_INIT;
		const char *b = v + 5;
		int rc = -1;

		while (*b == ' ' || *b == '\t')
			b++;
		/* Bounded before decoding: user, ':', key, as long as HTTP_Max_Header_Size allows. */
		if ((size_t)(end - b) <= 4 * HTTP_KEY_MAX + 4 &&
		    base64_decode_strict(b, (size_t)(end - b), &dec)) {
			const char *colon = memchr(dec.s, ':', dec.len);
			size_t klen = colon ? dec.len - (size_t)(colon + 1 - dec.s) : 0;

			if (klen > 0 && klen <= HTTP_KEY_MAX && text_ok(colon + 1, klen) &&
			    text_ok(dec.s, (size_t)(colon - dec.s))) {
				memcpy(key, colon + 1, klen);
				key[klen] = '\0';
				rc = 0;
			}
		}
		if (dec.s)
			explicit_bzero(dec.s, dec.len);
		str_free(&dec);
		return rc;
	}
	if (ci_prefix(v, "bearer")) {
		v += 6;
		while (*v == ' ' || *v == '\t')
			v++;
		len = (size_t)(end - v);
	}
	if (len == 0 || len > HTTP_KEY_MAX || !text_ok(v, len))
		return -1;
	memcpy(key, v, len);
	key[len] = '\0';
	return 0;
}
