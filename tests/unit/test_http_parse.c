/*
 * test_http_parse.c - src/http/http_parse.c: routes, command bodies, Authorization
 *
 * Routing over the daemon's own table (http_routes): every route by its
 * method, captures decoded, a trailing slash, 404/405/400 and the Allow
 * bits; POST /api/v1/commands bodies, each refusal naming its field;
 * Authorization values: raw, Bearer, Basic, and what carries no key.
 * Also the Hash check of API_Key (conf_http_hash_ok) and the key check
 * itself (http_auth_key) against a configuration with both hash kinds.
 * And the escaping of GET /metrics label values (http_metrics_label_value).
 */
#include <string.h>

#include "check.h"
#include "config/config.h"
#include "http/http_auth.h"
#include "http/http_int.h"
#include "http/http_parse.h"

/* route - the pattern routed to (or "" and the status); captures joined with '|' into caps. */
static const char *route(enum http_method m, const char *path, int *status, unsigned *allow,
			 char *caps, size_t capslen)
{
	struct http_match mt;
	struct str err = STR_INIT;
	const struct http_route *r = http_route_find(http_routes, http_nroutes, m, path, &mt,
						     status, allow, &err);

	caps[0] = '\0';
	if (r == NULL) {
		CHECK(err.len > 0 && strchr(err.s, '\n') == NULL);
		str_free(&err);
		return "";
	}
	for (size_t i = 0; i < mt.n; i++) {
		if (i)
			strncat(caps, "|", capslen - strlen(caps) - 1);
		strncat(caps, mt.param[i], capslen - strlen(caps) - 1);
	}
	str_free(&err);
	return r->pattern;
}

static void test_routes(void)
{
	char caps[600];
	int st;
	unsigned allow;

	CHECK_STREQ(route(HTTP_M_GET, "/api/v1/summary", &st, &allow, caps, sizeof(caps)),
		    "/api/v1/summary");
	CHECK_INTEQ(st, 200);
	CHECK_STREQ(route(HTTP_M_GET, "/api/v1/summary/", &st, &allow, caps, sizeof(caps)),
		    "/api/v1/summary");
	CHECK_STREQ(route(HTTP_M_GET, "/api/v1/domains/ex%41mple.com", &st, &allow, caps,
			  sizeof(caps)), "/api/v1/domains/{}");
	CHECK_STREQ(caps, "exAmple.com");
	CHECK_STREQ(route(HTTP_M_POST, "/api/v1/domains/a%2Fb/suspend", &st, &allow, caps,
			  sizeof(caps)), "/api/v1/domains/{}/suspend");
	CHECK_STREQ(caps, "a/b");
	CHECK_STREQ(route(HTTP_M_GET, "/api/v1/messages/00AB", &st, &allow, caps, sizeof(caps)),
		    "/api/v1/messages/{}");
	CHECK_STREQ(route(HTTP_M_POST, "/api/v1/commands", &st, &allow, caps, sizeof(caps)),
		    "/api/v1/commands");
	CHECK_STREQ(route(HTTP_M_GET, "/metrics", &st, &allow, caps, sizeof(caps)), "/metrics");
	CHECK_STREQ(route(HTTP_M_POST, "/metrics", &st, &allow, caps, sizeof(caps)), "");
	CHECK_INTEQ(st, 405);
	/* 405 with the methods the path has. */
	CHECK_STREQ(route(HTTP_M_POST, "/api/v1/summary", &st, &allow, caps, sizeof(caps)), "");
	CHECK_INTEQ(st, 405);
	CHECK_INTEQ(allow, HTTP_M_GET);
	CHECK_STREQ(route(HTTP_M_OTHER, "/api/v1/domains/x/fail", &st, &allow, caps, sizeof(caps)), "");
	CHECK_INTEQ(st, 405);
	CHECK_INTEQ(allow, HTTP_M_POST);
	/* 404. */
	const char *missing[] = { "/index.html", "/api", "/api/v1", "/api/v1/domains", "/api/v1/domains//x",
				  "/api/v1/summary/x", "/api/v1/domains/x/y", "//api/v1/summary",
				  "/a/b/c/d/e/f/g/h/i/j/k" };
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		CHECK_STREQ(route(HTTP_M_GET, missing[i], &st, &allow, caps, sizeof(caps)), "");
		CHECK_INTEQ(st, 404);
	}
	/* 400: not a path. */
	char longseg[400] = "/api/v1/domains/";
	memset(longseg + strlen(longseg), 'a', 256);
	const char *bad[] = { "", "api/v1/summary", "/api/v1/domains/%", "/api/v1/domains/%4",
			      "/api/v1/domains/%zz", "/api/v1/domains/a%00", "/api/v1/domains/a%0a",
			      "/api/v1/domains/..", "/api/v1/domains/%2e", "/api/v1/domains/a\tb",
			      longseg };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_STREQ(route(HTTP_M_GET, bad[i], &st, &allow, caps, sizeof(caps)), "");
		CHECK_INTEQ(st, 400);
	}
	/* 255 bytes is the longest capture. */
	longseg[strlen("/api/v1/domains/") + 255] = '\0';
	CHECK_STREQ(route(HTTP_M_GET, longseg, &st, &allow, caps, sizeof(caps)), "/api/v1/domains/{}");
	CHECK_INTEQ((int)strlen(caps), 255);
}

/* cmd - http_command_parse of s; the words joined with '|', or the error, into out. */
static int cmd(const char *s, char *out, size_t outlen)
{
	struct http_command c;
	struct str err = STR_INIT;
	int rc = http_command_parse(s, strlen(s), &c, &err);

	out[0] = '\0';
	if (rc == 0) {
		for (int i = 0; i < c.argc; i++) {
			if (i)
				strncat(out, "|", outlen - strlen(out) - 1);
			strncat(out, c.argv[i], outlen - strlen(out) - 1);
		}
		CHECK(c.argv[c.argc] == NULL);
		http_command_free(&c);
	} else {
		strncat(out, str_cstr(&err), outlen - 1);
	}
	str_free(&err);
	return rc;
}

static void test_commands(void)
{
	char out[512];

	CHECK_INTEQ(cmd("{\"command\":\"pid\"}", out, sizeof(out)), 0);
	CHECK_STREQ(out, "pid");
	CHECK_INTEQ(cmd("{\"command\":\"showqueue\",\"args\":[\"example.com\",\"a b\",\"\"]}", out,
			sizeof(out)), 0);
	CHECK_STREQ(out, "showqueue|example.com|a b|");
	CHECK_INTEQ(cmd("{\"args\":[],\"command\":\"help\"}", out, sizeof(out)), 0);
	CHECK_STREQ(out, "help");
	static const struct {
		const char *body, *err;
	} bad[] = {
		{ "", "the body is empty" },
		{ "{", "bad JSON at line 1" },
		{ "[]", "the body must be a JSON object" },
		{ "{}", "command: missing" },
		{ "{\"command\":1}", "command: not a command name" },
		{ "{\"command\":\"Help\"}", "command: not a command name" },
		{ "{\"command\":\"\"}", "command: not a command name" },
		{ "{\"command\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "command: not a command name" },
		{ "{\"command\":\"pid\",\"args\":\"x\"}", "args: not an array" },
		{ "{\"command\":\"pid\",\"args\":[\"a\",null]}", "args[1]: not a string" },
		{ "{\"command\":\"pid\",\"args\":[\"a\\nb\"]}", "args[0]: longer than" },
		{ "{\"command\":\"pid\",\"args\":[\"a\\u0000b\"]}", "bad JSON" },
		{ "{\"command\":\"pid\",\"verbose\":true}", "unknown field \"verbose\"" },
		{ "{\"command\":\"pid\",\"command\":\"pid\"}", "bad JSON" },
		{ "{\"command\":\"pid\",\"x\\n\":1}", "unknown field \"x?\"" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INTEQ(cmd(bad[i].body, out, sizeof(out)), -1);
		CHECK(strncmp(out, bad[i].err, strlen(bad[i].err)) == 0);
	}
	/* 63 arguments pass, 64 do not. */
	char big[1024] = "{\"command\":\"x\",\"args\":[";
	for (int i = 0; i < 63; i++)
		strcat(big, i ? ",\"a\"" : "\"a\"");
	strcat(big, "]}");
	CHECK_INTEQ(cmd(big, out, sizeof(out)), 0);
	big[strlen(big) - 2] = '\0';
	strcat(big, ",\"a\"]}");
	CHECK_INTEQ(cmd(big, out, sizeof(out)), -1);
	CHECK(strstr(out, "more than 63") != NULL);
}

static void test_auth_header(void)
{
	char key[HTTP_KEY_MAX + 1];

	CHECK_INTEQ(http_auth_parse("abc123", key), 0);
	CHECK_STREQ(key, "abc123");
	CHECK_INTEQ(http_auth_parse("  abc123 ", key), 0);
	CHECK_STREQ(key, "abc123");
	CHECK_INTEQ(http_auth_parse("Bearer abc123", key), 0);
	CHECK_STREQ(key, "abc123");
	CHECK_INTEQ(http_auth_parse("bearer\tabc123", key), 0);
	CHECK_STREQ(key, "abc123");
	CHECK_INTEQ(http_auth_parse("Basic dXNlcjprZXk=", key), 0);	/* user:key */
	CHECK_STREQ(key, "key");
	CHECK_INTEQ(http_auth_parse("BASIC OmE6Yg==", key), 0);	/* ":a:b": user "", key "a:b" */
	CHECK_STREQ(key, "a:b");
	const char *bad[] = { NULL, "", "   ", "Basic", "Basic dXNlcg==", "Basic dXNlcjo=",
			      "Basic dXNlcjprZXk", "Basic dXNl=jprZXk=", "Basic !!!!", "Bearer ",
			      "a\x01" "b" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INTEQ(http_auth_parse(bad[i], key), -1);
	char huge[HTTP_KEY_MAX + 2];
	memset(huge, 'k', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	CHECK_INTEQ(http_auth_parse(huge, key), -1);
	huge[HTTP_KEY_MAX] = '\0';
	CHECK_INTEQ(http_auth_parse(huge, key), 0);
}

static void test_keys(void)
{
	/* sha256("test") and SHA-512 crypt of "open sesame" (openssl passwd -6 -salt abcdefgh). */
	const char *text =
		"HTTP_Listener {\n"
		"  Listen \"127.0.0.1:2081\" { }\n"
		"  API_Key \"a\" { Hash = \"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\" Role = admin }\n"
		"  API_Key \"b\" { Hash = \"$6$abcdefgh$CkjGkP7IIgZVUCNlt.Vi53LOYJLXZ5KzdpzEYCj01XGruA1hxZYJqccTU2zz68oJwAGsd1iPty5F7dHIatUTy/\" }\n"
		"}\n";
	struct str err = STR_INIT;
	struct conf *c = conf_load_string(text, "t.conf", &err);

	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "%s\n", str_cstr(&err));
		str_free(&err);
		return;
	}
	CHECK_INTEQ((int)conf_http_count(c), 1);
	CHECK_STREQ(conf_http_address(c, 0), "127.0.0.1:2081");
	CHECK_INTEQ((int)conf_http_key_count(c), 2);
	CHECK_INTEQ(conf_http_key_role(c, 0), CONF_API_KEY_ADMIN);
	CHECK_INTEQ(conf_http_key_role(c, 1), CONF_API_KEY_READ);
	CHECK_INTEQ((int)conf_http_get(c, 0, CONF_OPT_HTTP_MAX_BODY_SIZE)->u.i, 10 << 20);
	CHECK_INTEQ((int)http_auth_key(c, "test"), 0);
	CHECK_INTEQ((int)http_auth_key(c, "open sesame"), 1);
	CHECK_INTEQ((int)http_auth_key(c, "open sesame"), 1);	/* from the cache */
	CHECK_INTEQ((int)http_auth_key(c, "open sesamE"), -1);
	CHECK_INTEQ((int)http_auth_key(c, "tes"), -1);
	CHECK_INTEQ((int)http_auth_key(c, ""), -1);
	http_auth_cache_clear();
	conf_unref(c);
	str_free(&err);

	CHECK(conf_http_hash_ok("$y$j9T$abc$def"));
	CHECK(conf_http_hash_ok("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"));
	CHECK(!conf_http_hash_ok("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0"));
	CHECK(!conf_http_hash_ok("9g86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"));
	CHECK(!conf_http_hash_ok("plain-key"));
	CHECK(!conf_http_hash_ok("$nodollar"));
	CHECK(!conf_http_hash_ok(""));
	CHECK(!conf_http_hash_ok(NULL));
}

/* test_label_value - GET /metrics label values: the three escapes of the text format, nothing else. */
static void test_label_value(void)
{
	struct str o = STR_INIT;

	http_metrics_label_value(&o, "plain-name_1.x");
	CHECK_STREQ(str_cstr(&o), "plain-name_1.x");
	str_clear(&o);
	http_metrics_label_value(&o, "a\\b\"c\nd\te{}=,");
	CHECK_STREQ(str_cstr(&o), "a\\\\b\\\"c\\nd\te{}=,");
	str_clear(&o);
	http_metrics_label_value(&o, "");
	CHECK_STREQ(str_cstr(&o), "");
	str_free(&o);
}

int main(void)
{
	test_routes();
	test_label_value();
	test_commands();
	test_auth_header();
	test_keys();
	return check_done();
}
