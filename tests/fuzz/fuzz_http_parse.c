/*
 * fuzz_http_parse.c - libFuzzer target for the HTTP listener's parsing (src/http/http_parse.c)
 *
 * Byte 0 picks the parser; the rest is what a client sends.
 *   0 mod 3: http_route_find over the daemon's own route table
 *            (http_routes), byte 1 the method, the rest the path;
 *   1 mod 3: http_command_parse, the body of POST /api/v1/commands;
 *   2 mod 3: http_auth_parse, an Authorization header value.
 * Besides memory safety and UB it checks:
 *   - routing: the status is 200 exactly when a route is returned, else
 *     400, 404 or 405 with a one-line reason; 405 only with allowed
 *     methods, never the one asked; a route's captures are as many as
 *     its "{}", non-empty, at most HTTP_PARAM_MAX bytes, without control
 *     bytes; the path rebuilt from the pattern and the captures,
 *     percent-encoded, routes to the same route with the same captures;
 *   - commands: a success has 1..HTTP_CMD_ARGS_MAX words, a console
 *     command name first, arguments without control bytes and within
 *     HTTP_CMD_ARG_MAX; the words written back as JSON parse to the same
 *     words; a failure has a one-line reason;
 *   - Authorization: a key found is 1..HTTP_KEY_MAX bytes without control
 *     bytes; it comes back unchanged through "Basic base64(user:key)" and
 *     "Bearer key".
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/str.h"
#include "http/http_int.h"
#include "http/http_parse.h"

#include "fuzz.h"

static bool one_line(const struct str *s)
{
	return s->len > 0 && memchr(s->s, '\n', s->len) == NULL && memchr(s->s, '\r', s->len) == NULL;
}

static bool clean(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* rebuild - the pattern with its captures, every byte of a capture percent-encoded. */
static void rebuild(const char *pattern, const struct http_match *m, struct str *out)
{
	size_t k = 0;

	for (const char *p = pattern; *p; p++) {
		if (p[0] == '{' && p[1] == '}') {
			for (const unsigned char *c = (const unsigned char *)m->param[k]; *c; c++)
				str_appendf(out, "%%%02X", *c);
			k++;
			p++;
		} else {
			str_appendc(out, *p);
		}
	}
}

static void fuzz_route(const uint8_t *data, size_t size)
{
	static const enum http_method methods[] = { HTTP_M_GET, HTTP_M_POST, HTTP_M_OTHER };
	if (size < 1)
		return;
	enum http_method method = methods[data[0] % 3];
	char *path = fuzz_strndup(data + 1, size - 1);
	struct http_match m, m2;
	struct str err = STR_INIT, again = STR_INIT, err2 = STR_INIT;
	int status, status2;
	unsigned allow, allow2;
	const struct http_route *r = http_route_find(http_routes, http_nroutes, method, path, &m,
						     &status, &allow, &err);

	if (r == NULL) {
		MUST(status == 400 || status == 404 || status == 405);
		MUST(one_line(&err));
		if (status == 405)
			MUST(allow != 0 && (allow & method) == 0);
	} else {
		size_t holes = 0;

		MUST(status == 200 && err.len == 0 && r->method == method);
		for (const char *p = strstr(r->pattern, "{}"); p; p = strstr(p + 2, "{}"))
			holes++;
		MUST(m.n == holes);
		for (size_t i = 0; i < m.n; i++) {
			size_t n = strlen(m.param[i]);

			MUST(n >= 1 && n <= HTTP_PARAM_MAX && clean(m.param[i]));
		}
		rebuild(r->pattern, &m, &again);
		if (again.len <= HTTP_PATH_MAX) {
			const struct http_route *r2 = http_route_find(http_routes, http_nroutes, method,
								      str_cstr(&again), &m2, &status2,
								      &allow2, &err2);
			/* "." and ".." captures are refused when encoded too: no route then. */
			if (r2 != NULL) {
				MUST(r2 == r && m2.n == m.n);
				for (size_t i = 0; i < m.n; i++)
					MUST(strcmp(m2.param[i], m.param[i]) == 0);
			} else {
				MUST(status2 == 400);
			}
		}
	}
	free(path);
	str_free(&err);
	str_free(&err2);
	str_free(&again);
}

static void fuzz_command(const uint8_t *data, size_t size)
{
	struct http_command c, c2;
	struct str err = STR_INIT, err2 = STR_INIT;

	if (http_command_parse((const char *)data, size, &c, &err) < 0) {
		MUST(one_line(&err) && c.argc == 0);
		str_free(&err);
		return;
	}
	MUST(err.len == 0 && c.argc >= 1 && c.argc <= HTTP_CMD_ARGS_MAX && c.argv[c.argc] == NULL);
	size_t n0 = strlen(c.argv[0]);
	MUST(n0 >= 1 && n0 <= 32 && strspn(c.argv[0], "abcdefghijklmnopqrstuvwxyz0123456789_") == n0);
	for (int i = 1; i < c.argc; i++)
		MUST(strlen(c.argv[i]) <= HTTP_CMD_ARG_MAX && clean(c.argv[i]));
	/* Round trip. */
	json_t *args = json_array();
	for (int i = 1; i < c.argc; i++)
		json_array_append_new(args, json_string(c.argv[i]));
	json_t *doc = json_pack("{s:s,s:o}", "command", c.argv[0], "args", args);
	MUST(doc != NULL);
	char *text = json_dumps(doc, JSON_COMPACT);
	MUST(text != NULL);
	MUST(http_command_parse(text, strlen(text), &c2, &err2) == 0);
	MUST(c2.argc == c.argc);
	for (int i = 0; i < c.argc; i++)
		MUST(strcmp(c.argv[i], c2.argv[i]) == 0);
	free(text);
	json_decref(doc);
	http_command_free(&c);
	http_command_free(&c2);
	str_free(&err);
	str_free(&err2);
}

static void b64(const char *in, size_t n, struct str *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < n; i += 3) {
		unsigned long w = (unsigned long)(unsigned char)in[i] << 16;
		if (i + 1 < n)
			w |= (unsigned long)(unsigned char)in[i + 1] << 8;
		if (i + 2 < n)
			w |= (unsigned char)in[i + 2];
		str_appendc(out, tab[w >> 18 & 63]);
		str_appendc(out, tab[w >> 12 & 63]);
		str_appendc(out, i + 1 < n ? tab[w >> 6 & 63] : '=');
		str_appendc(out, i + 2 < n ? tab[w & 63] : '=');
	}
}

static void fuzz_auth(const uint8_t *data, size_t size)
{
	char *header = fuzz_strndup(data, size);
	char key[HTTP_KEY_MAX + 1], key2[HTTP_KEY_MAX + 1];

	if (http_auth_parse(header, key) == 0) {
		size_t n = strlen(key);
		struct str h = STR_INIT;

		MUST(n >= 1 && n <= HTTP_KEY_MAX && clean(key));
		str_appends(&h, "Basic ");
		str_appends(&h, "");
		struct str raw = STR_INIT;
		str_appends(&raw, "user:");
		str_appends(&raw, key);
		b64(raw.s, raw.len, &h);
		MUST(http_auth_parse(str_cstr(&h), key2) == 0 && strcmp(key, key2) == 0);
		if (key[0] != ' ' && key[0] != '\t' && key[n - 1] != ' ' && key[n - 1] != '\t') {
			str_clear(&h);
			str_appends(&h, "Bearer ");
			str_appends(&h, key);
			MUST(http_auth_parse(str_cstr(&h), key2) == 0 && strcmp(key, key2) == 0);
		}
		str_free(&h);
		str_free(&raw);
	}
	free(header);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: fuzz_route(data + 1, size - 1); break;
	case 1: fuzz_command(data + 1, size - 1); break;
	default: fuzz_auth(data + 1, size - 1); break;
	}
	return 0;
}
