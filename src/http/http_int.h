/*
 * http_int.h - what the files of src/http/ share: one request being answered
 *
 * http.c owns the listeners, the connections and struct http_req; a
 * route's handler (http_admin.c, later the injection routes) gets a
 * request and must answer it with http_reply*, now or later. Answering
 * later: the handler calls http_req_wait with the console handle it
 * waits on and returns; the answer comes from the callback, on the
 * scheduler thread. When the client leaves first, http.c abandons the
 * handle (api_console_abandon) and frees the request: the callback never
 * runs, so a handler never sees a request that is gone.
 *
 * Owner: the scheduler thread, for everything here.
 */
#ifndef IMPETUS_HTTP_HTTP_INT_H
#define IMPETUS_HTTP_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http_parse.h"

struct evhttp_request;
struct imp_cli;
struct http_conn;
struct str;

struct http_req {
	struct evhttp_request *ev;	/* libevent's; gone once answered or the client left */
	struct http_conn *conn;
	enum http_method method;
	const char *key_name;		/* the API_Key used (valid while the handler runs); NULL: no keys */
	bool in_handler;		/* the handler has not returned yet */
	bool answered;
	struct imp_cli *pending;	/* a command answering later */
	void (*abandon)(void *arg);	/* a held request: what to tell its job when the client leaves */
	void *abandon_arg;
};

/* The routes (http_admin.c): the admin API, and where the injection routes go. */
extern const struct http_route http_routes[];
extern const size_t http_nroutes;

/* http_metrics - GET /metrics, the Prometheus text format (http_metrics.c). */
void http_metrics(struct http_req *r, const struct http_route *route, const struct http_match *m);
/* http_metrics_label_value - append v escaped as a label value (\\, \", \n), without quotes. */
void http_metrics_label_value(struct str *o, const char *v);

/* http_status_page - GET /status, the live status page (http_status.c; a PUBLIC route). */
void http_status_page(struct http_req *r, const struct http_route *route,
		      const struct http_match *m);
/* http_status_root - GET /: 302 to /status. */
void http_status_root(struct http_req *r, const struct http_route *route,
		      const struct http_match *m);
/* http_status_html - the page's HTML, as compiled in (src/http/status.html). */
const char *http_status_html(void);
/*
 * http_status_csp - the Content-Security-Policy of a page: its one inline
 * <script> and <style> allowed by SHA-256, nothing else loaded but
 * fetch() to its origin. -1 when html lacks either, or has two.
 */
int http_status_csp(const char *html, struct str *csp);

/* http_reply - answer with code and body of content type ctype (exactly once). */
void http_reply(struct http_req *r, int code, const char *ctype, const char *body, size_t len);
/* http_reply_error - code with {"errors":[{"message": ...}]} (the message JSON-escaped). */
void http_reply_error(struct http_req *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* http_req_body - the request body, made contiguous (NUL-terminated); its length in *len. */
const char *http_req_body(struct http_req *r, size_t *len);
/* http_req_drop_body - free the request body (after the handler copied what it needs). */
void http_req_drop_body(struct http_req *r);
/* http_req_wait - the handler answers later, when pending finishes (see above). */
void http_req_wait(struct http_req *r, struct imp_cli *pending);
/* http_req_unwait - the awaited answer came (before http_reply, from the console callback). */
void http_req_unwait(struct http_req *r);
/*
 * http_req_hold - the handler answers later from a job of its own; if the
 * client leaves first, abandon(arg) runs (scheduler) and the request is
 * freed: the job must not touch it after that.
 */
void http_req_hold(struct http_req *r, void (*abandon)(void *arg), void *arg);
/* http_req_set_header - add a response header (before http_reply). */
void http_req_set_header(struct http_req *r, const char *name, const char *value);

/* The injection routes (http_inject.c). */
#define HTTP_INJECT_NSTATUS 4
/* Counts since start: [0] transmissions, [1] KumoMTA's inject; statuses as http_inject_get_stats says. */
struct http_inject_stats {
	uint64_t answers[2][HTTP_INJECT_NSTATUS];
	uint64_t recipients[2][2];	/* [api][0] accepted, [1] refused */
};
/* http_inject_get_stats - a copy of the counts, and the status of each answers column. Scheduler. */
void http_inject_get_stats(struct http_inject_stats *out, const int **statuses);
void http_transmissions(struct http_req *r, const struct http_route *route,
			const struct http_match *m);
void http_inject_kumo(struct http_req *r, const struct http_route *route,
		      const struct http_match *m);

/* http_status_text - the reason phrase of a status code. */
const char *http_status_text(int code);

#endif
