/*
 * http.c - the HTTP_Listener's sockets, connections and requests (http.h)
 *
 * Owner: the scheduler thread, for everything in this file: the
 * listeners (one evhttp each, so each Listen has its own TLS and limits),
 * the table of connections that have sent a request, each request being
 * answered. evhttp runs one request per connection at a time (it reads
 * the next one once the answer is sent), so a connection waits, at most,
 * for one command answering later.
 *
 * The path of a request (on_request): the connection is counted on its
 * first request (HTTP_Max_Connections; past it: 503 and close), the
 * client authenticated (an API_Key from Authorization; with no key
 * configured only a loopback client is let in; a PUBLIC route, the
 * status page, needs no key; a key only a crypt(3) hash can open is
 * checked on the CPU pool, the request held meanwhile, at most
 * AUTH_JOBS_MAX at once), the path routed (http_parse.c over
 * http_routes), the key's role checked against the route, and the
 * route's handler run.
 *
 * Failure handling, so one bad client never hurts the others or the
 * daemon: what evhttp itself refuses (a request line or headers past
 * HTTP_Max_Header_Size, a body past HTTP_Max_Body_Size, a malformed
 * request) it answers (400/413) and closes; everything this file refuses
 * gets a JSON error {"errors":[{"message": ...}]} with 401, 403, 404,
 * 405 or 503 and the connection stays usable; a client idle for
 * HTTP_Timeout is closed; a client that leaves while its command is
 * answering abandons the command (api_console_abandon) or tells the
 * injection job holding it (http_req_hold).
 *
 * Bind errors at start-up fail http_new (main.c makes them fatal); on a
 * reload they are paniclog lines and the rest still applies.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "api/api_console.h"
#include "api/api_runtime.h"
#include "config/config.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/pool.h"
#include "core/strmap.h"
#include "core/tls.h"
#include "http/http.h"
#include "http/http_auth.h"
#include "http/http_int.h"
#include "log/log.h"
#include "msgs/msgs.h"

struct http_server;

struct http_listener {
	struct http_server *srv;
	struct evhttp *http;
	SSL_CTX *ssl;			/* NULL: plain HTTP */
	char *address;			/* canonical "ip:port" */
	size_t nconns;
	int64_t max_conns;
	bool keep_alive;
};

struct http_conn {
	struct http_listener *l;
	struct evhttp_connection *evcon;
	char id[32];			/* the key in srv->conns ("%p" of evcon) */
	struct http_req *req;		/* the request being answered, or NULL */
};

struct http_server {
	struct loop *sched;
	struct http_listener **ls;
	size_t nls;
	struct strmap *conns;		/* "%p" of an evhttp_connection -> struct http_conn */
};

const char *http_status_text(int code)
{
	switch (code) {
	case 200: return "OK";
	case 302: return "Found";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return code < 300 ? "OK" : code < 500 ? "Client Error" : "Server Error";
	}
}

/* ---- requests -------------------------------------------------------------------- */

/* req_free - a request's own memory; the evhttp request is libevent's. */
static void req_free(struct http_req *r)
{
	if (r->conn && r->conn->req == r)
		r->conn->req = NULL;
	free(r);
}

void http_reply(struct http_req *r, int code, const char *ctype, const char *body, size_t len)
{
	struct evbuffer *buf;
	struct evkeyvalq *h;

	if (r->answered)
		abort();	/* a handler answered twice: a bug, not a client's doing */
	r->answered = true;
	r->pending = NULL;
	r->abandon = NULL;
	h = evhttp_request_get_output_headers(r->ev);
	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	/* Every answer is what its Content-Type says: no browser guesses HTML in JSON. */
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	if (code == 401)
		evhttp_add_header(h, "WWW-Authenticate", "Basic realm=\"impetus\"");
	if (r->conn == NULL || !r->conn->l->keep_alive)
		evhttp_add_header(h, "Connection", "close");
	buf = evbuffer_new();
	evbuffer_add(buf, body, len);
	evhttp_send_reply(r->ev, code, http_status_text(code), buf);
	evbuffer_free(buf);
	r->ev = NULL;
	if (!r->in_handler)
		req_free(r);
}

void http_reply_error(struct http_req *r, int code, const char *fmt, ...)
{
	struct str msg = STR_INIT;
	va_list ap;

	va_start(ap, fmt);
	str_vappendf(&msg, fmt, ap);
	va_end(ap);
	json_t *doc = json_pack("{s:[{s:s%}]}", "errors", "message", msg.s ? msg.s : "",
				msg.len);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	if (text == NULL)	/* invalid UTF-8 in a message: say so without it */
		text = strdup("{\"errors\":[{\"message\":\"(error message not valid UTF-8)\"}]}");
	http_reply(r, code, "application/json", text, strlen(text));
	free(text);
	json_decref(doc);
	str_free(&msg);
}

const char *http_req_body(struct http_req *r, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
	size_t n = evbuffer_get_length(in);

	/* One spare byte, made NUL, so parsers that want a C string get one. */
	evbuffer_add(in, "", 1);
	*len = n;
	return (const char *)evbuffer_pullup(in, -1);
}

void http_req_drop_body(struct http_req *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);

	evbuffer_drain(in, evbuffer_get_length(in));
}

void http_req_wait(struct http_req *r, struct imp_cli *pending)
{
	r->pending = pending;
}

void http_req_unwait(struct http_req *r)
{
	r->pending = NULL;
}

void http_req_hold(struct http_req *r, void (*abandon)(void *arg), void *arg)
{
	r->abandon = abandon;
	r->abandon_arg = arg;
}

void http_req_set_header(struct http_req *r, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value);
}

/* ---- connections ----------------------------------------------------------------- */

/*
 * on_conn_close - evhttp closes a connection (client gone, timeout, error,
 * shutdown): a request still answering is abandoned and freed; libevent
 * frees its own request.
 */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn *c = arg;
	struct http_server *srv = c->l->srv;

	if (c->req) {
		if (c->req->abandon)
			c->req->abandon(c->req->abandon_arg);
		else
			api_console_abandon(c->req->pending);
		c->req->conn = NULL;
		req_free(c->req);
	}
	strmap_del(srv->conns, c->id);
	c->l->nconns--;
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	free(c);
}

/* conn_of - the connection of a request, counted on its first request; NULL past the limit. */
static struct http_conn *conn_of(struct http_listener *l, struct evhttp_request *ev, bool *over)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
	char id[32];
	struct http_conn *c;

	*over = false;
	snprintf(id, sizeof(id), "%p", (void *)evcon);
	c = strmap_get(l->srv->conns, id);
	if (c)
		return c;
	if ((int64_t)l->nconns >= l->max_conns) {
		*over = true;
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->l = l;
	c->evcon = evcon;
	memcpy(c->id, id, sizeof(id));
	strmap_put(l->srv->conns, c->id, c);
	l->nconns++;
	evhttp_connection_set_closecb(evcon, on_conn_close, c);
	return c;
}

/* is_loopback - 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104. */
static bool is_loopback(const struct sockaddr *sa)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

/* role_allows - whether a key of role may use a route of access. */
static bool role_allows(enum conf_api_key_role role, enum http_access access)
{
	switch (role) {
	case CONF_API_KEY_ADMIN:
		return access == HTTP_ACCESS_READ || access == HTTP_ACCESS_ADMIN;
	case CONF_API_KEY_READ:
		return access == HTTP_ACCESS_READ;
	case CONF_API_KEY_INJECT:
		return access == HTTP_ACCESS_INJECT;
	}
	return false;
}

/*
 * handler_done - after a handler (or the routing before it) returned:
 * free an answered request; answer 500 for one neither answered nor
 * held (a bug, but the client still gets an answer).
 */
static void handler_done(struct http_req *r)
{
	r->in_handler = false;
	if (r->answered) {
		req_free(r);
	} else if (r->pending == NULL && r->abandon == NULL) {
		log_panic("http path=%s error=\"handler did not answer\"",
			  evhttp_request_get_uri(r->ev));
		http_reply_error(r, 500, "internal error: no answer");
	}
}

/* find_route - the route of r's method and path (http_route_find over http_routes). */
static const struct http_route *find_route(struct http_req *r, struct http_match *m, int *status,
					   unsigned *allow, struct str *err)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->ev);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

	return http_route_find(http_routes, http_nroutes, r->method, path && *path ? path : "/", m,
			       status, allow, err);
}

/* route_authorized - route, authorise and run a request whose key (index, -1: none) is known. */
static void route_authorized(struct http_req *r, const struct conf *conf, long key)
{
	struct evhttp_request *ev = r->ev;
	struct http_match m;
	struct str err = STR_INIT;
	int status;
	unsigned allow;
	const struct http_route *route = find_route(r, &m, &status, &allow, &err);

	if (route == NULL) {
		if (status == 405)
			evhttp_add_header(evhttp_request_get_output_headers(ev), "Allow",
					  allow == (HTTP_M_GET | HTTP_M_POST) ? "GET, POST" :
					  allow & HTTP_M_GET ? "GET" : "POST");
		http_reply_error(r, status, "%s", str_cstr(&err));
		str_free(&err);
		return;
	}
	str_free(&err);
	if (key >= 0 && !role_allows(conf_http_key_role(conf, (size_t)key), route->access)) {
		http_reply_error(r, 403, "API key \"%s\" (role %s) may not use %s %s", r->key_name,
				 conf_enum_word(CONF_OPT_API_KEY_ROLE, conf_http_key_role(conf, (size_t)key)),
				 r->method == HTTP_M_GET ? "GET" : "POST", route->pattern);
		return;
	}
	route->fn(r, route, &m);
}

/* is_public - whether the request goes to a PUBLIC route (the status page: no key needed). */
static bool is_public(struct http_req *r)
{
	struct http_match m;
	struct str err = STR_INIT;
	int status;
	unsigned allow;
	const struct http_route *route = find_route(r, &m, &status, &allow, &err);

	str_free(&err);
	return route != NULL && route->access == HTTP_ACCESS_PUBLIC;
}

/*
 * A key only a crypt(3) hash can open: checked on the CPU pool
 * (http_auth_slow), the request held meanwhile. At most
 * AUTH_JOBS_MAX checks run at once, so a flood of wrong keys costs a
 * bounded share of the pool and answers 503 beyond it.
 */
#define AUTH_JOBS_MAX 4

struct auth_job {
	struct http_req *r;		/* NULL once the client left */
	char key[HTTP_KEY_MAX + 1];
	char **hashes;
	size_t n;
	long match;			/* pool: the index in hashes[], or -1 */
};

static size_t auth_jobs;		/* scheduler's: checks on the pool */

static void auth_job_free(struct auth_job *j)
{
	for (size_t i = 0; i < j->n; i++)
		free(j->hashes[i]);
	free(j->hashes);
	explicit_bzero(j->key, sizeof(j->key));
	free(j);
	auth_jobs--;
}

/* auth_run - CPU pool: crypt(3) against each hash left. */
static void auth_run(void *arg)
{
	struct auth_job *j = arg;

	j->match = http_auth_slow(j->key, j->hashes, j->n);
	msgs_post(api_runtime()->scheduler, MSGS_HTTP_AUTH_CHECKED, j);
}

static void auth_abandon(void *arg)
{
	((struct auth_job *)arg)->r = NULL;
}

void http_on_auth_checked(void *arg)
{
	struct auth_job *j = arg;
	struct http_req *r = j->r;
	struct conf *conf;
	long key = -1;

	if (r == NULL) {
		auth_job_free(j);
		return;
	}
	r->abandon = NULL;
	conf = api_runtime_conf();
	if (conf && j->match >= 0) {
		/* By hash, not index: a reload may have come meanwhile. */
		for (size_t i = 0; i < conf_http_key_count(conf) && key < 0; i++) {
			const char *h = conf_http_key_hash(conf, i);

			if (h && strcmp(h, j->hashes[j->match]) == 0)
				key = (long)i;
		}
		if (key >= 0)
			http_auth_remember(j->key, j->hashes[j->match]);
	}
	auth_job_free(j);
	if (conf == NULL)
		http_reply_error(r, 503, "no configuration is running");
	else if (key < 0)
		http_reply_error(r, 401, "the API key is not valid");
	else {
		/* As on_request: the handler runs with the request held until it returns. */
		r->key_name = conf_http_key_name(conf, (size_t)key);
		r->in_handler = true;
		route_authorized(r, conf, key);
		handler_done(r);
	}
	conf_unref(conf);
}

/* auth_defer - check given on the CPU pool and route the request then. */
static void auth_defer(struct http_req *r, const struct conf *conf, const char *given)
{
	struct pool *cpu = api_runtime()->cpu_pool;

	if (auth_jobs >= AUTH_JOBS_MAX || cpu == NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Retry-After", "1");
		http_reply_error(r, 503, "too many API key checks in progress; try again");
		return;
	}
	struct auth_job *j = xcalloc(1, sizeof(*j));

	auth_jobs++;
	j->r = r;
	snprintf(j->key, sizeof(j->key), "%s", given);
	j->hashes = http_auth_slow_hashes(conf, given, &j->n);
	http_req_hold(r, auth_abandon, j);
	pool_submit(cpu, auth_run, j);
}

/* route_request - authenticate, then route, authorise and run one request (conf held by the caller). */
static void route_request(struct http_req *r, const struct conf *conf)
{
	struct evhttp_request *ev = r->ev;
	struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(ev), "Authorization");
	long key = -1;

	if (conf_http_key_count(conf) == 0) {
		if (!is_loopback(evhttp_connection_get_addr(evcon))) {
			http_reply_error(r, 403, "no API_Key is configured: this listener answers "
					 "loopback clients only");
			return;
		}
	} else if (!is_public(r)) {
		/* A client without a valid key learns nothing else: 401 before any 404 or 405. */
		char given[HTTP_KEY_MAX + 1];
		size_t nslow;

		if (auth == NULL) {
			http_reply_error(r, 401, "an API key is required (Authorization: <key>, or "
					 "HTTP Basic with the key as password)");
			return;
		}
		if (http_auth_parse(auth, given) < 0) {
			explicit_bzero(given, sizeof(given));
			http_reply_error(r, 401, "the API key is not valid");
			return;
		}
		key = http_auth_quick(conf, given, &nslow);
		if (key == HTTP_AUTH_SLOW)
			auth_defer(r, conf, given);
		else if (key < 0)
			http_reply_error(r, 401, "the API key is not valid");
		explicit_bzero(given, sizeof(given));
		if (key < 0)
			return;
		r->key_name = conf_http_key_name(conf, (size_t)key);
	}
	route_authorized(r, conf, key);
}

/* on_request - evhttp's callback for every request of a listener. */
static void on_request(struct evhttp_request *ev, void *arg)
{
	struct http_listener *l = arg;
	bool over;
	struct http_conn *c = conn_of(l, ev, &over);
	struct http_req *r = xcalloc(1, sizeof(*r));

	r->ev = ev;
	r->conn = c;
	r->in_handler = true;
	switch (evhttp_request_get_command(ev)) {
	case EVHTTP_REQ_GET: r->method = HTTP_M_GET; break;
	case EVHTTP_REQ_POST: r->method = HTTP_M_POST; break;
	default: r->method = HTTP_M_OTHER; break;
	}
	if (c == NULL && over) {
		http_reply_error(r, 503, "too many HTTP connections (HTTP_Max_Connections %lld)",
				 (long long)l->max_conns);
	} else {
		struct conf *conf = api_runtime_conf();

		c->req = r;
		if (conf == NULL)
			http_reply_error(r, 503, "no configuration is running");
		else
			route_request(r, conf);
		conf_unref(conf);
	}
	handler_done(r);
}

/* ---- listeners ------------------------------------------------------------------- */

/* bev_tls - a TLS server bufferevent for a new connection of a listener with a certificate. */
static struct bufferevent *bev_tls(struct event_base *base, void *arg)
{
	struct http_listener *l = arg;
	SSL *ssl = SSL_new(l->ssl);
	struct bufferevent *bev;

	if (ssl == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* listener_settings - limits, keep-alive and TLS of Listen i; -1 with err when TLS does not load. */
static int listener_settings(struct http_listener *l, const struct conf *conf, size_t i,
			     struct str *err)
{
	evhttp_set_max_body_size(l->http, conf_http_get(conf, i, CONF_OPT_HTTP_MAX_BODY_SIZE)->u.i);
	evhttp_set_max_headers_size(l->http,
				    conf_http_get(conf, i, CONF_OPT_HTTP_MAX_HEADER_SIZE)->u.i);
	evhttp_set_timeout(l->http, (int)conf_http_get(conf, i, CONF_OPT_HTTP_TIMEOUT)->u.i);
	l->max_conns = conf_http_get(conf, i, CONF_OPT_HTTP_MAX_CONNECTIONS)->u.i;
	l->keep_alive = conf_http_get(conf, i, CONF_OPT_HTTP_KEEP_ALIVE)->u.b;
	const char *cert = conf_http_get(conf, i, CONF_OPT_TLS_CERTIFICATE)->u.s;
	const char *keyf = conf_http_get(conf, i, CONF_OPT_TLS_KEY)->u.s;
	SSL_CTX *ssl = NULL;

	if (cert || keyf) {
		if (cert == NULL || keyf == NULL) {
			str_appendf(err, "HTTP_Listener Listen %s: TLS needs both TLS_Certificate and "
				    "TLS_Key", l->address);
			return -1;
		}
		ssl = tls_server_ctx_new(cert, keyf, err);
		if (ssl == NULL)
			return -1;
	}
	if (l->ssl)
		SSL_CTX_free(l->ssl);	/* open connections keep their own reference */
	l->ssl = ssl;
	evhttp_set_bevcb(l->http, ssl ? bev_tls : NULL, ssl ? l : NULL);
	return 0;
}

/* bind_tcp - a listening socket on Listen i of conf; -1 with err. */
static int bind_tcp(const struct conf *conf, size_t i, struct str *err)
{
	socklen_t len;
	const struct sockaddr *sa = conf_http_sockaddr(conf, i, &len);
	const char *addr = conf_http_address(conf, i);
	int one = 1;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0) {
		str_appendf(err, "HTTP_Listener Listen %s: socket: %s", addr, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, len) < 0 || listen(fd, 128) < 0) {
		str_appendf(err, "HTTP_Listener Listen %s: cannot listen: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* listener_free - close a listener and every connection it has (their commands are abandoned). */
static void listener_free(struct http_listener *l)
{
	evhttp_free(l->http);	/* runs on_conn_close for each connection, l still valid */
	if (l->ssl)
		SSL_CTX_free(l->ssl);
	free(l->address);
	free(l);
}

/* listener_open - bind and serve Listen i of conf; NULL with err. */
static struct http_listener *listener_open(struct http_server *srv, const struct conf *conf,
					   size_t i, struct str *err)
{
	struct http_listener *l = xcalloc(1, sizeof(*l));

	l->srv = srv;
	l->address = xstrdup(conf_http_address(conf, i));
	l->http = evhttp_new(loop_base(srv->sched));
	evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
					    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
					    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(l->http, "application/json");
	evhttp_set_gencb(l->http, on_request, l);
	/*
	 * A body past HTTP_Max_Body_Size is read (and dropped) before the 413
	 * goes out: a client still sending would otherwise get a reset
	 * instead of the answer. HTTP_Timeout bounds how long that takes.
	 */
	evhttp_set_flags(l->http, EVHTTP_SERVER_LINGERING_CLOSE);
	if (listener_settings(l, conf, i, err) < 0)
		goto fail;
	int fd = bind_tcp(conf, i, err);
	if (fd < 0)
		goto fail;
	if (evhttp_accept_socket_with_handle(l->http, fd) == NULL) {
		str_appendf(err, "HTTP_Listener Listen %s: cannot accept on the socket", l->address);
		close(fd);
		goto fail;
	}
	return l;
fail:
	listener_free(l);
	return NULL;
}

/* say_listen - the paniclog line of a listener. */
static void say_listen(const struct http_listener *l)
{
	log_panic("http listen address=%s tls=%s max_connections=%lld keep_alive=%s", l->address,
		  l->ssl ? "yes" : "no", (long long)l->max_conns, l->keep_alive ? "yes" : "no");
}

/* say_access - the paniclog line on who may use the listeners. */
static void say_access(const struct conf *conf)
{
	if (conf_http_count(conf) == 0)
		return;
	if (conf_http_key_count(conf) == 0)
		log_panic("http no API_Key is configured: the HTTP listeners answer loopback "
			  "clients only");
	else
		log_panic("http api_keys=%zu", conf_http_key_count(conf));
}

/* The daemon's one server, for http_output_pending (scheduler's). */
static struct http_server *the_server;

/* count_unsent - one connection's answer bytes not yet written to its socket. */
static void count_unsent(void *ctx, const char *key, void *value)
{
	struct http_conn *c = value;
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);

	(void)key;
	if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		(*(size_t *)ctx)++;
}

size_t http_output_pending(void)
{
	size_t n = 0;

	if (the_server)
		strmap_each(the_server->conns, count_unsent, &n);
	return n;
}

struct http_server *http_new(struct loop *sched, const struct conf *conf, struct str *err)
{
	struct http_server *srv = xcalloc(1, sizeof(*srv));
	size_t n = conf_http_count(conf);

	srv->sched = sched;
	srv->conns = strmap_new();
	srv->ls = xcalloc(n ? n : 1, sizeof(*srv->ls));
	for (size_t i = 0; i < n; i++) {
		struct http_listener *l = listener_open(srv, conf, i, err);

		if (l == NULL) {
			http_free(srv);
			return NULL;
		}
		srv->ls[srv->nls++] = l;
	}
	the_server = srv;
	return srv;
}

void http_announce(const struct http_server *srv, const struct conf *conf)
{
	for (size_t i = 0; i < srv->nls; i++)
		say_listen(srv->ls[i]);
	say_access(conf);
}

/* conf_index - where Listen address is in conf, or SIZE_MAX. */
static size_t conf_index(const struct conf *conf, const char *address)
{
	for (size_t i = 0; i < conf_http_count(conf); i++)
		if (strcmp(conf_http_address(conf, i), address) == 0)
			return i;
	return SIZE_MAX;
}

void http_reload(struct http_server *srv, const struct conf *conf)
{
	size_t n = conf_http_count(conf);
	struct http_listener **next = xcalloc(n ? n : 1, sizeof(*next));
	size_t nnext = 0;
	struct str err = STR_INIT;

	/* Closed first, so an address that moves is free to bind below. */
	for (size_t j = 0; j < srv->nls; j++) {
		struct http_listener *l = srv->ls[j];
		size_t i = conf_index(conf, l->address);

		if (i == SIZE_MAX) {
			log_panic("http listen address=%s removed", l->address);
			listener_free(l);
			continue;
		}
		str_clear(&err);
		if (listener_settings(l, conf, i, &err) < 0)
			log_panic("http listen address=%s error=\"%s\"; keeping its TLS settings",
				  l->address, str_cstr(&err));
		next[nnext++] = l;
	}
	for (size_t i = 0; i < n; i++) {
		bool have = false;

		for (size_t j = 0; j < nnext && !have; j++)
			have = strcmp(next[j]->address, conf_http_address(conf, i)) == 0;
		if (have)
			continue;
		str_clear(&err);
		struct http_listener *l = listener_open(srv, conf, i, &err);
		if (l == NULL) {
			log_panic("http listen address=%s error=\"%s\"; not listening on it",
				  conf_http_address(conf, i), str_cstr(&err));
			continue;
		}
		say_listen(l);
		next[nnext++] = l;
	}
	free(srv->ls);
	srv->ls = next;
	srv->nls = nnext;
	say_access(conf);
	str_free(&err);
}

void http_free(struct http_server *srv)
{
	if (srv == NULL)
		return;
	if (the_server == srv)
		the_server = NULL;
	for (size_t i = 0; i < srv->nls; i++)
		listener_free(srv->ls[i]);
	free(srv->ls);
	strmap_free(srv->conns);
	http_auth_cache_clear();
	free(srv);
}
