/*
 * http_parse.h - the pure parsing of the HTTP listener: routes, JSON
 * command bodies, Authorization headers
 *
 * Nothing here touches a socket, a loop or the configuration: each
 * function takes bytes the client sent and answers with a result or a
 * one-line error meant for the client, so the whole surface that reads
 * untrusted input is fuzzed in one target (tests/fuzz/fuzz_http_parse.c).
 * The route table itself lives in http_admin.c (http_routes); injection
 * routes are added there too.
 *
 * Limits are named constants below; input past them is an error, never
 * a truncation that would change the meaning.
 */
#ifndef IMPETUS_HTTP_HTTP_PARSE_H
#define IMPETUS_HTTP_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"

#define HTTP_PATH_MAX 2048		/* bytes of a request path, encoded */
#define HTTP_ROUTE_PARAMS_MAX 4		/* "{}" captures per route */
#define HTTP_PARAM_MAX 255		/* bytes of one decoded capture */
#define HTTP_CMD_ARGS_MAX 64		/* command name + arguments of POST /api/v1/commands */
#define HTTP_CMD_ARG_MAX 1024		/* bytes of one argument */
#define HTTP_KEY_MAX 512		/* bytes of an API key as sent */

/* Methods a route can answer (bits, so a path can list what it allows). */
enum http_method {
	HTTP_M_GET = 1,
	HTTP_M_POST = 2,
	HTTP_M_OTHER = 4,	/* anything else: never routed */
};

/*
 * Who may use a route. A key's role (conf_api_key_role) maps onto these:
 * read -> READ; admin -> READ and ADMIN; inject -> INJECT. PUBLIC routes
 * need no key (the status page: it holds no data, the API behind it
 * does); without any API_Key they are still loopback-only, as all routes.
 */
enum http_access {
	HTTP_ACCESS_READ,	/* GET admin routes */
	HTTP_ACCESS_ADMIN,	/* admin routes that change something */
	HTTP_ACCESS_INJECT,	/* injection routes (POST) */
	HTTP_ACCESS_PUBLIC,	/* no key needed: static pages without data */
};

struct http_req;
struct http_route;
struct http_match;

/* A route's handler: runs on the scheduler thread, must answer req now or later. */
typedef void (*http_route_fn)(struct http_req *req, const struct http_route *r,
			      const struct http_match *m);

/*
 * One route: a method and a path pattern of literal segments and "{}"
 * captures ("/api/v1/domains/{}/suspend"). cmd is what the admin
 * handlers run (the console command and its fixed words, "{}" taking
 * the captures in order); injection routes leave it NULL.
 */
struct http_route {
	enum http_method method;
	const char *pattern;
	enum http_access access;
	http_route_fn fn;
	const char *cmd;
};

/* The captures of a matched path, percent-decoded, NUL-terminated. */
struct http_match {
	size_t n;
	char param[HTTP_ROUTE_PARAMS_MAX][HTTP_PARAM_MAX + 1];
};

/*
 * http_route_find - the route of routes[0..n-1] for (method, path), with
 * its captures in m. Returns the route; NULL with *status 404 (no route
 * has this path; err says so) or 405 (the path exists with other
 * methods; *allow gets their bits), or 400 for a path that is not one
 * (too long, bad percent-encoding, a NUL, "." or ".." segments, a
 * capture past HTTP_PARAM_MAX or with a control byte).
 */
const struct http_route *http_route_find(const struct http_route *routes, size_t n,
					 enum http_method method, const char *path,
					 struct http_match *m, int *status, unsigned *allow,
					 struct str *err);

/* A parsed POST /api/v1/commands body: argv[0] the command, NULL-terminated. */
struct http_command {
	int argc;
	char *argv[HTTP_CMD_ARGS_MAX + 1];	/* heap; http_command_free */
};

/*
 * http_command_parse - {"command": "name", "args": ["a", ...]} (args
 * optional; strings only, each without control bytes; the name as the
 * console's: [a-z0-9_]{1,32}). Returns 0, or -1 with a one-line reason
 * naming the field ("args[2]: not a string") in err.
 */
int http_command_parse(const char *body, size_t len, struct http_command *out, struct str *err);
void http_command_free(struct http_command *c);

/*
 * http_auth_parse - the API key an Authorization header carries: the
 * value itself ("Authorization: <key>", SparkPost's way), "Bearer
 * <key>", or "Basic base64(user:key)" (any user; the password is the
 * key). Returns 0 with the key in key (NUL-terminated, at most
 * HTTP_KEY_MAX bytes), -1 for a header that carries none (empty, bad
 * base64, no ":", a control byte, too long).
 */
int http_auth_parse(const char *header, char key[HTTP_KEY_MAX + 1]);

#endif
