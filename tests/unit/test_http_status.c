/*
 * test_http_status.c - src/http/http_status.c: the status page's routes and its CSP
 *
 * GET / and GET /status are routed to the status handlers as PUBLIC
 * routes (no key), nothing else is; http_status_csp hashes exactly the
 * text of the one inline script and style (hashes checked against
 * values computed with Python's hashlib), refuses a page with neither or
 * two of either, and accepts the page compiled into the daemon.
 */
#include <string.h>

#include "check.h"
#include "core/str.h"
#include "http/http_int.h"
#include "http/http_parse.h"

/* find - the route of method and path, or NULL; status in *st. */
static const struct http_route *find(enum http_method m, const char *path, int *st)
{
	struct http_match mt;
	struct str err = STR_INIT;
	unsigned allow;
	const struct http_route *r = http_route_find(http_routes, http_nroutes, m, path, &mt, st,
						     &allow, &err);

	str_free(&err);
	return r;
}

static void test_routes(void)
{
	int st;
	const struct http_route *r;
	size_t public = 0;

	r = find(HTTP_M_GET, "/", &st);
	CHECK(r != NULL && r->fn == http_status_root && r->access == HTTP_ACCESS_PUBLIC);
	r = find(HTTP_M_GET, "/status", &st);
	CHECK(r != NULL && r->fn == http_status_page && r->access == HTTP_ACCESS_PUBLIC);
	r = find(HTTP_M_GET, "/status/", &st);
	CHECK(r != NULL && r->fn == http_status_page);
	CHECK(find(HTTP_M_POST, "/status", &st) == NULL);
	CHECK_INTEQ(st, 405);
	CHECK(find(HTTP_M_GET, "/status/x", &st) == NULL);
	CHECK_INTEQ(st, 404);
	/* The only routes open without a key are the two pages: they hold no data. */
	for (size_t i = 0; i < http_nroutes; i++)
		if (http_routes[i].access == HTTP_ACCESS_PUBLIC) {
			public++;
			CHECK(http_routes[i].fn == http_status_page || http_routes[i].fn == http_status_root);
		}
	CHECK_INTEQ(public, 2);
}

static void test_csp(void)
{
	struct str csp = STR_INIT;

	CHECK_INTEQ(http_status_csp("<html><style>p{}</style><script>alert(1)</script></html>", &csp), 0);
	CHECK_STREQ(str_cstr(&csp),
		    "default-src 'none'; script-src 'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='; "
		    "style-src 'sha256-gG2yISYereRMiG2lMXrbiUgi0Ubw9p7QCeWcroOvy9Y='; connect-src 'self'; "
		    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
	str_clear(&csp);
	/* Empty elements hash the empty string. */
	CHECK_INTEQ(http_status_csp("<style></style><script></script>", &csp), 0);
	CHECK(strstr(str_cstr(&csp), "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='; style") != NULL);
	str_clear(&csp);
	/* Refused: a part missing, unclosed, or twice (the CSP would allow only one). */
	CHECK_INTEQ(http_status_csp("<style>p{}</style>", &csp), -1);
	CHECK_INTEQ(http_status_csp("<script>x</script>", &csp), -1);
	CHECK_INTEQ(http_status_csp("<style>p{}</style><script>x", &csp), -1);
	CHECK_INTEQ(http_status_csp("<style></style><script>a</script><script>b</script>", &csp), -1);
	CHECK_INTEQ(http_status_csp("<style></style><style></style><script></script>", &csp), -1);
	CHECK_INTEQ(http_status_csp("", &csp), -1);
	CHECK_INTEQ((long)csp.len, 0);
	/* The page compiled in is well formed. */
	CHECK(strstr(http_status_html(), "<title>impetus status</title>") != NULL);
	CHECK_INTEQ(http_status_csp(http_status_html(), &csp), 0);
	str_free(&csp);
}

int main(void)
{
	test_routes();
	test_csp();
	return check_done();
}
