/*
 * http_admin.c - the admin API: the console's commands over HTTP, and the route table
 *
 * One implementation, two transports: every admin route runs a console
 * command (api_console_start, the same call the Control_Listener makes)
 * with JSON output, and sends its answer as application/json. The route
 * table below says which command each route runs; "{}" in a command
 * takes the path's captures in order. A command's error line becomes
 * {"errors":[{"message": line}]} with the status of error_status().
 *
 * Commands that answer later (imp_cli_defer) hold the request
 * (http_req_wait); the answer goes out from on_done. Owner: the
 * scheduler thread, like the console.
 *
 * Adding routes: injection routes (POST, HTTP_ACCESS_INJECT, cmd NULL,
 * their own fn) go in http_routes[] too; http.c authenticates, routes
 * and checks the key's role before any fn runs.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "api/api_console.h"
#include "api/api_runtime.h"
#include "config/config.h"
#include "core/mem.h"
#include "http/http_int.h"

static void admin_command(struct http_req *r, const struct http_route *route,
			  const struct http_match *m);
static void admin_generic(struct http_req *r, const struct http_route *route,
			  const struct http_match *m);

const struct http_route http_routes[] = {
	{ HTTP_M_GET, "/", HTTP_ACCESS_PUBLIC, http_status_root, NULL },	/* -> /status */
	{ HTTP_M_GET, "/status", HTTP_ACCESS_PUBLIC, http_status_page, NULL },
	{ HTTP_M_GET, "/api/v1/summary", HTTP_ACCESS_READ, admin_command, "summary" },
	{ HTTP_M_GET, "/api/v1/mailq", HTTP_ACCESS_READ, admin_command, "mailq" },
	{ HTTP_M_GET, "/api/v1/bindings", HTTP_ACCESS_READ, admin_command, "binding summary" },
	/* History for the status page (api_history_cmd.c). */
	{ HTTP_M_GET, "/api/v1/rates", HTTP_ACCESS_READ, admin_command, "rates" },
	{ HTTP_M_GET, "/api/v1/bounces/recent", HTTP_ACCESS_READ, admin_command, "bounces recent" },
	{ HTTP_M_GET, "/api/v1/suspended", HTTP_ACCESS_READ, admin_command, "suspended" },
	{ HTTP_M_GET, "/api/v1/domains/{}", HTTP_ACCESS_READ, admin_command, "domain {}" },
	{ HTTP_M_POST, "/api/v1/domains/{}/suspend", HTTP_ACCESS_ADMIN, admin_command,
	  "suspend domain {}" },
	{ HTTP_M_POST, "/api/v1/domains/{}/resume", HTTP_ACCESS_ADMIN, admin_command,
	  "resume domain {}" },
	{ HTTP_M_POST, "/api/v1/domains/{}/flush", HTTP_ACCESS_ADMIN, admin_command,
	  "flush domain {}" },
	{ HTTP_M_POST, "/api/v1/domains/{}/fail", HTTP_ACCESS_ADMIN, admin_command,
	  "fail domain {}" },
	{ HTTP_M_GET, "/api/v1/messages/{}", HTTP_ACCESS_READ, admin_command,
	  "message details {}" },
	{ HTTP_M_POST, "/api/v1/config/reload", HTTP_ACCESS_ADMIN, admin_command,
	  "config reload" },
	{ HTTP_M_POST, "/api/v1/commands", HTTP_ACCESS_ADMIN, admin_generic, NULL },
	{ HTTP_M_GET, "/metrics", HTTP_ACCESS_READ, http_metrics, NULL },
	{ HTTP_M_POST, "/api/v1/transmissions", HTTP_ACCESS_INJECT, http_transmissions, NULL },
	{ HTTP_M_POST, "/api/inject/v1", HTTP_ACCESS_INJECT, http_inject_kumo, NULL },
};
const size_t http_nroutes = sizeof(http_routes) / sizeof(http_routes[0]);

/*
 * error_status - the HTTP status of a command's error line. The console
 * has one kind of error, a line; these are the lines that mean
 * something other than "your request was wrong" (400), matched on the
 * wording of src/queue/queue_console.c and src/api/api_console_ops.c
 * (test_http_admin.py fails if that wording drifts).
 */
static int error_status(const char *msg)
{
	static const struct {
		const char *text;
		int status;
	} kinds[] = {
		{ "no queue for domain", 404 },		/* domain: nothing queued */
		{ "is not queued", 404 },		/* message: no such message */
		{ "unknown binding", 404 },
		{ "the queue is not running", 503 },
		{ "not available", 503 },
		{ "the resolver is not running", 503 },
		{ "config reload failed", 422 },	/* the file on disk is wrong */
	};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strstr(msg, kinds[i].text) != NULL)
			return kinds[i].status;
	return 400;
}

/* answer - a finished command's answer: its JSON (or its text wrapped as {"output"}), or its error. */
static void answer(struct http_req *r, bool ok, const char *body, size_t len)
{
	if (!ok) {
		struct str msg = STR_INIT;

		str_append(&msg, body, len);
		http_reply_error(r, error_status(str_cstr(&msg)), "%s", str_cstr(&msg));
		str_free(&msg);
		return;
	}
	json_t *doc = json_loadb(body, len, JSON_DECODE_ANY, NULL);

	if (doc != NULL) {
		json_decref(doc);
		http_reply(r, 200, "application/json", body, len);
		return;
	}
	/* A command without a JSON form (a module's): its text, as one JSON string. */
	doc = json_pack("{s:s%}", "output", body, len);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	if (text == NULL)
		http_reply_error(r, 500, "the command's answer is neither JSON nor UTF-8 text");
	else
		http_reply(r, 200, "application/json", text, strlen(text));
	free(text);
	json_decref(doc);
}

/* on_done - a deferred command's answer, on the scheduler thread. */
static void on_done(void *arg, bool ok, const char *body, size_t len)
{
	struct http_req *r = arg;

	http_req_unwait(r);
	answer(r, ok, body, len);
}

/* run - run argv in the running generation and answer, now or later. */
static void run(struct http_req *r, int argc, const char *const *argv)
{
	struct conf *conf = api_runtime_conf();
	struct api_gen *g = conf ? api_gen_of(conf) : NULL;
	struct str out = STR_INIT;
	struct imp_cli *pending = NULL;
	int rc;

	if (g == NULL) {
		http_reply_error(r, 503, "no configuration is running");
		conf_unref(conf);
		return;
	}
	api_console_origin("http", r->key_name);	/* the AdminAction event's origin */
	rc = api_console_start(g, conf, argc, argv, true, &out, on_done, r, &pending);
	if (rc == 1)
		http_req_wait(r, pending);
	else
		answer(r, rc == 0, out.s ? out.s : "", out.len);
	str_free(&out);
	conf_unref(conf);
}

/* admin_command - a route with a fixed command; "{}" words take the captures. */
static void admin_command(struct http_req *r, const struct http_route *route,
			  const struct http_match *m)
{
	char words[256];
	const char *argv[16];
	int argc = 0;
	size_t k = 0;

	snprintf(words, sizeof(words), "%s", route->cmd);
	for (char *save = NULL, *w = strtok_r(words, " ", &save); w && argc < 15;
	     w = strtok_r(NULL, " ", &save))
		argv[argc++] = strcmp(w, "{}") == 0 && k < m->n ? m->param[k++] : w;
	argv[argc] = NULL;
	run(r, argc, argv);
}

/* admin_generic - POST /api/v1/commands: {"command": "...", "args": [...]}. */
static void admin_generic(struct http_req *r, const struct http_route *route,
			  const struct http_match *m)
{
	struct http_command cmd;
	struct str err = STR_INIT;
	size_t len;
	const char *body = http_req_body(r, &len);

	if (http_command_parse(body, len, &cmd, &err) < 0) {
		http_reply_error(r, 400, "%s", str_cstr(&err));
		str_free(&err);
		return;
	}
	str_free(&err);
	run(r, cmd.argc, (const char *const *)cmd.argv);
	http_command_free(&cmd);
}
