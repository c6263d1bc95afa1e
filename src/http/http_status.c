/*
 * http_status.c - GET /status, the live status page, and GET / that points to it
 *
 * The page is src/http/status.html, one self-contained file (inline
 * <style> and <script>, no external resource: mail machines often have
 * no internet), pulled into .rodata by the assembler's .incbin as
 * etc/impetus.conf is (src/config/conf_default.c): no generator, no copy
 * to keep in sync; CMake rebuilds this file when the page changes. The
 * page holds no data: its script polls the admin API (summary, bindings,
 * mailq, suspended, bounces/recent, and rates for the charts of the last
 * hour) and asks for a key when that answers 401, so the route is
 * HTTP_ACCESS_PUBLIC (http.c lets it through without a key; without any
 * API_Key configured it is loopback-only like every route).
 *
 * Content-Security-Policy: nothing may load but the page itself and
 * fetch() to its own origin; the inline script and style are allowed by
 * their SHA-256 (computed once, from the embedded text, so editing the
 * page never leaves a stale hash behind), inline event handlers and any
 * other script are not. That is a second wall: the page inserts data
 * with textContent only (domain names come from mail, bounce replies
 * from remote servers).
 *
 * Owner: the scheduler thread (the handlers, and the CSP computed on
 * first use into a static). Failure: a page without exactly the
 * <style>/<script> the CSP hashes is a build mistake; the route answers
 * 500 saying so rather than serve a page its own CSP would break.
 */
#include <string.h>

#include <event2/http.h>
#include <openssl/evp.h>

#include "core/str.h"
#include "http/http_int.h"

#ifndef IMPETUS_SOURCE_DIR
#error "IMPETUS_SOURCE_DIR must name the source root (CMake defines it)"
#endif

__asm__(
	"	.pushsection .rodata\n"
	"	.balign 16\n"
	"	.type impetus_status_html, %object\n"
	"impetus_status_html:\n"
	"	.incbin \"" IMPETUS_SOURCE_DIR "/src/http/status.html\"\n"
	"	.byte 0\n"
	"	.size impetus_status_html, . - impetus_status_html\n"
	"	.popsection\n");

/* Defined by the assembly above; file-local, so no name can clash. */
extern const char impetus_status_html[] __attribute__((visibility("hidden")));

const char *http_status_html(void)
{
	return impetus_status_html;
}

/* element_hash - "'sha256-<base64>'" of the text between open and close in html; -1 if absent or twice. */
static int element_hash(const char *html, const char *open, const char *close, struct str *out)
{
	const char *a = strstr(html, open);
	const char *b = a ? strstr(a + strlen(open), close) : NULL;
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];

	if (b == NULL || strstr(b + strlen(close), open) != NULL)
		return -1;
	a += strlen(open);
	if (EVP_Digest(a, (size_t)(b - a), d, &n, EVP_sha256(), NULL) != 1)
		return -1;
	EVP_EncodeBlock(b64, d, (int)n);
	str_appendf(out, "'sha256-%s'", (const char *)b64);
	return 0;
}

int http_status_csp(const char *html, struct str *csp)
{
	struct str script = STR_INIT, style = STR_INIT;
	int rc = -1;

	if (element_hash(html, "<script>", "</script>", &script) < 0 ||
	    element_hash(html, "<style>", "</style>", &style) < 0)
		goto out;
	/*
	 * img-src data: is the favicon (href="data:,", so the browser does not
	 * ask for /favicon.ico and log a 404); connect-src 'self' is fetch()
	 * to the admin API; form-action 'none' because the key form is handled
	 * by the script and must never submit (the key would land in a URL).
	 */
	str_appendf(csp, "default-src 'none'; script-src %s; style-src %s; connect-src 'self'; "
		    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		    str_cstr(&script), str_cstr(&style));
	rc = 0;
out:
	str_free(&script);
	str_free(&style);
	return rc;
}

/* page_csp - the CSP of the embedded page, computed on first use; NULL if the page is malformed. */
static const char *page_csp(void)
{
	static struct str csp = STR_INIT;	/* scheduler thread only; lives as long as the process */
	static int state;			/* 0 not yet, 1 ok, -1 malformed */

	if (state == 0)
		state = http_status_csp(impetus_status_html, &csp) == 0 ? 1 : -1;
	return state == 1 ? str_cstr(&csp) : NULL;
}

void http_status_page(struct http_req *r, const struct http_route *route,
		      const struct http_match *m)
{
	const char *csp = page_csp();
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);

	if (csp == NULL) {
		http_reply_error(r, 500, "src/http/status.html has no single <script> and <style> "
				 "to hash for its Content-Security-Policy");
		return;
	}
	evhttp_add_header(h, "Content-Security-Policy", csp);
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	http_reply(r, 200, "text/html; charset=utf-8", impetus_status_html,
		   strlen(impetus_status_html));
}

void http_status_root(struct http_req *r, const struct http_route *route,
		      const struct http_match *m)
{
	static const char body[] = "the status page is at /status\n";

	evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Location", "/status");
	http_reply(r, 302, "text/plain; charset=utf-8", body, sizeof(body) - 1);
}
