/*
 * webhook.c - posting the backlog of each Webhook stanza (events thread)
 *
 * Each webhook has a durable backlog (whq.c) under <Spoolbase>/webhooks/
 * <name>/ and at most one POST in flight, made with libevent's evhttp
 * client on the events thread's base (an OpenSSL bufferevent for
 * https://). A batch is the first Batch_Size unacknowledged events, sent
 * when that many are waiting or when the oldest has waited Batch_Timeout
 * seconds. A 2xx answer moves the cursor (fsynced) and the next batch
 * goes at once; anything else (no connection, Request_Timeout, a non-2xx
 * status) keeps the cursor, and the same events are sent again after
 * Webhook_Retry_Interval, doubling per failure up to
 * Webhook_Max_Retry_Interval. So every event is delivered at least once;
 * a crash between a 2xx and the cursor's rename sends that batch again.
 *
 * Bounds. Memory: one batch per webhook (read from disk when it is sent).
 * Disk: Max_Backlog bytes per webhook; past it new events for that
 * webhook are dropped and counted (paniclog once a second with the
 * count). Nothing here is on the mail path: a stuck target only grows its
 * own backlog.
 *
 * Reload: webhooks are matched by name; a new name opens its backlog, a
 * changed one takes its new settings from the next POST, a removed one
 * stops (its backlog stays on disk, and is sent if the name comes back).
 * The Auth_Header value is never logged.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config/config.h"
#include "core/loop.h"
#include "core/mem.h"
#include "events/events_int.h"
#include "events/whq.h"
#include "log/log.h"

/*
 * A sender's states. IDLE: nothing due; WAITING: the batch timer runs
 * (fewer than Batch_Size events, the oldest younger than Batch_Timeout);
 * POSTING: one POST in flight; BACKOFF: the retry timer runs after a
 * failure. The backlog being unusable (q_ok false, "broken") is apart:
 * no state applies then. Transitions are not traced: one per batch would
 * flood the paniclog; failures and recoveries are logged where they happen.
 */
enum wh_state { WH_IDLE, WH_WAITING, WH_POSTING, WH_BACKOFF };

/* wh_state_name - "idle", "waiting", "posting", "backoff". */
static const char *wh_state_name(enum wh_state st)
{
	static const char *const names[] = { "idle", "waiting", "posting", "backoff" };
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

struct webhook {
	struct events *E;
	char *name;
	bool gone;			/* removed by a reload; freed when its POST ends */

	/* Settings (replaced by a reload). */
	char *target;
	unsigned mask;
	size_t batch_size;
	int64_t batch_timeout_ms;
	char *auth_name, *auth_value;	/* the header; never logged */
	int timeout_s;
	int64_t retry_ms, retry_max_ms;
	uint64_t max_backlog;
	char *host, *path;
	int port;
	bool https;
	SSL_CTX *ssl;			/* https:// only */

	/* The backlog. */
	struct whq q;
	bool q_ok;			/* opened; false: the webhook is broken (paniclog) */
	int64_t first_unsent_ms;	/* when the oldest unsent event came; 0: none waiting */
	uint64_t dropped;		/* over Max_Backlog, not reported yet */
	uint64_t dropped_total;

	/* Sending. */
	struct evhttp_connection *conn;	/* the POST in flight's */
	struct evhttp_request *req;
	enum wh_state state;
	size_t fl_n;
	struct whq_pos fl_end;
	uint64_t fl_bytes;
	struct event *timer;
	unsigned failures;
	char last_error[160];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* stats_refresh - copy each webhook's numbers for the metrics and the console. */
static void stats_refresh(struct events *E)
{
	size_t n = 0;
	struct wh_stat *v = xcalloc(E->nwh ? E->nwh : 1, sizeof(*v));

	for (size_t i = 0; i < E->nwh; i++) {
		struct webhook *w = E->wh[i];
		if (w->gone)
			continue;
		struct wh_stat *s = &v[n++];
		snprintf(s->name, sizeof(s->name), "%s", w->name);
		s->events = w->q_ok ? w->q.events : 0;
		s->bytes = w->q_ok ? w->q.bytes : 0;
		s->dropped = w->dropped_total;
		s->failures = w->failures;
		snprintf(s->state, sizeof(s->state), "%s", w->q_ok ? wh_state_name(w->state) : "broken");
		snprintf(s->last_error, sizeof(s->last_error), "%s", w->last_error);
	}
	pthread_mutex_lock(&E->lock);
	free(E->stats);
	E->stats = v;
	E->nstats = n;
	pthread_mutex_unlock(&E->lock);
}

/* ------------------------------------------------------------------ */
/* settings                                                            */

static void settings_free(struct webhook *w)
{
	free(w->target);
	free(w->auth_name);
	free(w->auth_value);
	free(w->host);
	free(w->path);
	if (w->ssl)
		SSL_CTX_free(w->ssl);
	w->target = w->auth_name = w->auth_value = w->host = w->path = NULL;
	w->ssl = NULL;
}

/*
 * settings_load - stanza i of c into w. Returns false with err when the
 * target cannot be used (a bad URL, a CA file that does not load).
 */
static bool settings_load(struct webhook *w, const struct conf *c, size_t i, struct str *err)
{
	const struct conf_value *ev = conf_webhook_get(c, i, CONF_OPT_WEBHOOK_EVENTS);
	const char *auth = conf_webhook_get(c, i, CONF_OPT_WEBHOOK_AUTH_HEADER)->u.s;
	const char *ca = conf_webhook_get(c, i, CONF_OPT_WEBHOOK_TLS_CA_FILE)->u.s;
	bool verify = conf_webhook_get(c, i, CONF_OPT_WEBHOOK_TLS_VERIFY)->u.b;

	settings_free(w);
	w->target = xstrdup(conf_webhook_get(c, i, CONF_OPT_WEBHOOK_TARGET)->u.s);
	w->mask = 0;
	for (size_t k = 0; ev->u.list.v && k < ev->u.list.n; k++)
		w->mask |= events_type_mask(ev->u.list.v[k]);
	if (ev->u.list.v == NULL || ev->u.list.n == 0)
		w->mask = EV_MASK_ALL;
	w->batch_size = (size_t)conf_webhook_get(c, i, CONF_OPT_WEBHOOK_BATCH_SIZE)->u.i;
	w->batch_timeout_ms = conf_webhook_get(c, i, CONF_OPT_WEBHOOK_BATCH_TIMEOUT)->u.i * 1000;
	w->timeout_s = (int)conf_webhook_get(c, i, CONF_OPT_WEBHOOK_REQUEST_TIMEOUT)->u.i;
	w->retry_ms = conf_webhook_get(c, i, CONF_OPT_WEBHOOK_RETRY_INTERVAL)->u.i * 1000;
	w->retry_max_ms = conf_webhook_get(c, i, CONF_OPT_WEBHOOK_MAX_RETRY_INTERVAL)->u.i * 1000;
	w->max_backlog = (uint64_t)conf_webhook_get(c, i, CONF_OPT_WEBHOOK_MAX_BACKLOG)->u.i;
	if (auth && *auth) {
		/* "Name: value" is a header of its own; anything else is Authorization's value. */
		size_t nl = strspn(auth, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-");
		if (nl > 0 && auth[nl] == ':') {
			w->auth_name = xstrndup(auth, nl);
			w->auth_value = xstrdup(auth + nl + 1 + strspn(auth + nl + 1, " \t"));
		} else {
			w->auth_name = xstrdup("Authorization");
			w->auth_value = xstrdup(auth);
		}
	}

	struct evhttp_uri *u = evhttp_uri_parse(w->target);
	const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
	const char *host = u ? evhttp_uri_get_host(u) : NULL;
	if (u == NULL || scheme == NULL || host == NULL || *host == '\0') {
		str_appendf(err, "Target \"%.200s\" is not a URL with a host", w->target);
		if (u)
			evhttp_uri_free(u);
		return false;
	}
	w->https = strcmp(scheme, "https") == 0;
	w->host = xstrdup(host);
	w->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : w->https ? 443 : 80;
	const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
	struct str p = STR_INIT;
	str_appends(&p, path && *path ? path : "/");
	if (query && *query)
		str_appendf(&p, "?%s", query);
	w->path = str_steal(&p);
	evhttp_uri_free(u);
	if (w->https) {
		w->ssl = SSL_CTX_new(TLS_client_method());
		if (w->ssl == NULL) {
			str_appends(err, "cannot create a TLS context");
			return false;
		}
		SSL_CTX_set_min_proto_version(w->ssl, TLS1_2_VERSION);
		if (verify) {
			SSL_CTX_set_verify(w->ssl, SSL_VERIFY_PEER, NULL);
			int ok = ca && *ca ? SSL_CTX_load_verify_locations(w->ssl, ca, NULL)
					   : SSL_CTX_set_default_verify_paths(w->ssl);
			if (ok != 1) {
				str_appendf(err, "cannot load TLS_CA_File \"%.200s\"", ca ? ca : "");
				ERR_clear_error();
				return false;
			}
		} else {
			SSL_CTX_set_verify(w->ssl, SSL_VERIFY_NONE, NULL);
		}
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* sending                                                             */

static void kick(struct webhook *w);

/* arm - wait ms for a batch to fill (WAITING) or before a retry (BACKOFF). */
static void arm(struct webhook *w, int64_t ms, bool backoff)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	w->state = backoff ? WH_BACKOFF : WH_WAITING;
	evtimer_add(w->timer, &tv);
}

static void webhook_free(struct webhook *w)
{
	if (w->req && w->state == WH_POSTING) {
		/* Shutdown with a POST under way: it is sent again at the next start. */
		evhttp_cancel_request(w->req);
		evhttp_connection_free(w->conn);
	}
	if (w->timer)
		event_free(w->timer);
	if (w->q_ok)
		whq_close(&w->q);
	else
		free(w->q.dir);
	settings_free(w);
	free(w->name);
	free(w);
}

/* retire - a connection whose request ended: freed by the next reap, outside its callbacks. */
static void retire(struct events *E, struct evhttp_connection *c)
{
	E->dead = xrealloc(E->dead, (E->ndead + 1) * sizeof(*E->dead));
	E->dead[E->ndead++] = c;
}

/* reap - free the retired connections (events thread, never inside an evhttp callback). */
static void reap(struct events *E)
{
	for (size_t i = 0; i < E->ndead; i++)
		evhttp_connection_free(E->dead[i]);
	free(E->dead);
	E->dead = NULL;
	E->ndead = 0;
}

/* forget - take w out of E's list. */
static void forget(struct events *E, struct webhook *w)
{
	for (size_t i = 0; i < E->nwh; i++) {
		if (E->wh[i] == w) {
			memmove(E->wh + i, E->wh + i + 1, (E->nwh - i - 1) * sizeof(*E->wh));
			E->nwh--;
			return;
		}
	}
}

/* failed - a POST did not get a 2xx: the same events again after the back-off. */
static void failed(struct webhook *w, const char *why)
{
	int64_t delay = w->retry_ms;

	/* retry * 2^(failures before this one), capped. */
	for (unsigned i = 0; i < w->failures && delay < w->retry_max_ms; i++)
		delay *= 2;
	w->failures++;
	if (delay > w->retry_max_ms)
		delay = w->retry_max_ms;
	snprintf(w->last_error, sizeof(w->last_error), "%s", why);
	log_panic("webhook=%s post failed: %s events=%zu failures=%u retry_in=%" PRId64 "ms",
		  w->name, why, w->fl_n, w->failures, delay);
	arm(w, delay, true);
}

/* on_response - the POST ended (events thread); req is NULL when no answer came. */
static void on_response(struct evhttp_request *req, void *arg)
{
	struct webhook *w = arg;
	struct events *E = w->E;
	int code = req ? evhttp_request_get_response_code(req) : 0;

	w->state = WH_IDLE;
	w->req = NULL;
	/*
	 * This connection cannot be freed inside its own callback: it is
	 * retired and freed by the next tick (reap). (libevent 2.1's
	 * free_on_completion does not free a connection that never connected.)
	 */
	retire(E, w->conn);
	w->conn = NULL;
	if (w->gone) {
		forget(E, w);
		webhook_free(w);
		return;
	}
	if (code >= 200 && code < 300) {
		struct str err = STR_INIT;
		if (whq_ack(&w->q, w->fl_end, w->fl_n, w->fl_bytes, &err) < 0) {
			/* Not moved: the batch goes again (duplicates, never losses). */
			log_panic("webhook=%s %s", w->name, str_cstr(&err));
			snprintf(w->last_error, sizeof(w->last_error), "%s", str_cstr(&err));
		}
		str_free(&err);
		if (w->failures)
			log_panic("webhook=%s recovered after failures=%u", w->name, w->failures);
		w->failures = 0;
		/* What came meanwhile has waited long enough. */
		w->first_unsent_ms = w->q.events ? 1 : 0;
		kick(w);
	} else {
		char why[96];
		if (code)
			snprintf(why, sizeof(why), "status=%d", code);
		else
			snprintf(why, sizeof(why), "no answer (connection refused, reset or timed out)");
		failed(w, why);
	}
	stats_refresh(E);
}

/* new_connection - a connection to the target (TLS for https://); NULL + why. */
static struct evhttp_connection *new_connection(struct webhook *w, char *why, size_t len)
{
	struct event_base *base = loop_base(w->E->loop);
	struct bufferevent *bev = NULL;

	if (w->https) {
		SSL *ssl = SSL_new(w->ssl);
		if (ssl == NULL) {
			snprintf(why, len, "cannot create a TLS session");
			return NULL;
		}
		SSL_set_tlsext_host_name(ssl, w->host);
		if (SSL_CTX_get_verify_mode(w->ssl) & SSL_VERIFY_PEER) {
			unsigned char addr[16];
			if (inet_pton(AF_INET, w->host, addr) == 1 || inet_pton(AF_INET6, w->host, addr) == 1)
				X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), w->host);
			else
				SSL_set1_host(ssl, w->host);
		}
		bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev == NULL) {
			SSL_free(ssl);
			snprintf(why, len, "cannot create a TLS connection");
			return NULL;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	}
	struct evhttp_connection *c = evhttp_connection_base_bufferevent_new(base, NULL, bev, w->host,
									     (unsigned short)w->port);
	if (c == NULL) {
		if (bev)
			bufferevent_free(bev);
		snprintf(why, len, "cannot create a connection");
		return NULL;
	}
	evhttp_connection_set_timeout(c, w->timeout_s);
	evhttp_connection_set_retries(c, 0);
	return c;
}

/* post - send the next batch (events thread). */
static void post(struct webhook *w)
{
	struct str body = STR_INIT, err = STR_INIT;
	char why[128];

	if (whq_read(&w->q, w->batch_size, &body, &w->fl_n, &w->fl_end, &w->fl_bytes, &err) < 0) {
		w->fl_n = 0;
		failed(w, str_cstr(&err));
		goto out;
	}
	if (w->fl_n == 0) {
		/* The count said more than the disk holds (damage was skipped): trust the disk. */
		w->q.events = 0;
		w->q.bytes = 0;
		w->first_unsent_ms = 0;
		goto out;
	}
	w->conn = new_connection(w, why, sizeof(why));
	if (w->conn == NULL) {
		failed(w, why);
		goto out;
	}
	w->req = evhttp_request_new(on_response, w);
	struct evkeyvalq *h = evhttp_request_get_output_headers(w->req);
	char hostport[300], clen[32];
	snprintf(hostport, sizeof(hostport), "%s:%d", w->host, w->port);
	snprintf(clen, sizeof(clen), "%zu", body.len);
	evhttp_add_header(h, "Host", hostport);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Content-Length", clen);
	evhttp_add_header(h, "User-Agent", "impetus-webhook/1");
	evhttp_add_header(h, "Connection", "close");
	if (w->auth_name)
		evhttp_add_header(h, w->auth_name, w->auth_value);
	evbuffer_add(evhttp_request_get_output_buffer(w->req), body.s, body.len);
	if (evhttp_make_request(w->conn, w->req, EVHTTP_REQ_POST, w->path) < 0) {
		/* The request was freed by evhttp; the connection was not used. */
		evhttp_connection_free(w->conn);
		w->conn = NULL;
		w->req = NULL;
		failed(w, "cannot start the request");
		goto out;
	}
	w->state = WH_POSTING;
out:
	str_free(&body);
	str_free(&err);
}

/* kick - post now if a batch is due, else wait for it (events thread). */
static void kick(struct webhook *w)
{
	if (w->gone || !w->q_ok || w->state == WH_POSTING || w->state == WH_BACKOFF ||
	    w->q.events == 0 || w->E->stopping)
		return;
	if (w->state == WH_WAITING) {
		if (w->q.events < w->batch_size)
			return;
		evtimer_del(w->timer);	/* a full batch need not wait */
		w->state = WH_IDLE;
	}
	int64_t now = mono_ms();
	if (w->q.events < w->batch_size && w->first_unsent_ms &&
	    now - w->first_unsent_ms < w->batch_timeout_ms) {
		arm(w, w->batch_timeout_ms - (now - w->first_unsent_ms), false);
		return;
	}
	post(w);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct webhook *w = arg;

	(void)fd;
	(void)what;
	if (w->state == WH_BACKOFF)
		w->first_unsent_ms = 1;		/* due: the retry goes now */
	w->state = WH_IDLE;
	kick(w);
	stats_refresh(w->E);
}

/* ------------------------------------------------------------------ */
/* the events thread's entry points                                    */

void webhooks_append(struct events *E, char t, const char *json, size_t len)
{
	unsigned bit = events_type_bit(t);

	for (size_t i = 0; i < E->nwh; i++) {
		struct webhook *w = E->wh[i];
		if (w->gone || !w->q_ok || !(w->mask & bit))
			continue;
		if (w->q.bytes + w->q.wbuf.len + len + WHQ_HEADER > w->max_backlog ||
		    !whq_append(&w->q, json, len)) {
			w->dropped++;
			w->dropped_total++;
			continue;
		}
		if (w->first_unsent_ms == 0)
			w->first_unsent_ms = mono_ms();
	}
}

void webhooks_flush(struct events *E)
{
	for (size_t i = 0; i < E->nwh; i++) {
		struct webhook *w = E->wh[i];
		struct str err = STR_INIT;
		size_t n = w->q_ok ? w->q.wcount : 0;

		if (n && whq_flush(&w->q, &err) < 0) {
			log_panic("webhook=%s lost events=%zu: %s", w->name, n, str_cstr(&err));
			snprintf(w->last_error, sizeof(w->last_error), "%s", str_cstr(&err));
		}
		str_free(&err);
		kick(w);
	}
	stats_refresh(E);
}

void webhooks_tick(struct events *E)
{
	reap(E);
	for (size_t i = 0; i < E->nwh; i++) {
		struct webhook *w = E->wh[i];
		if (w->dropped) {
			log_panic("webhook=%s dropped events=%" PRIu64 ": backlog over Max_Backlog=%" PRIu64
				  " bytes", w->name, w->dropped, w->max_backlog);
			w->dropped = 0;
		}
	}
	stats_refresh(E);
}

/* find - the webhook called name (gone ones included), or NULL. */
static struct webhook *find(struct events *E, const char *name)
{
	for (size_t i = 0; i < E->nwh; i++)
		if (strcmp(E->wh[i]->name, name) == 0)
			return E->wh[i];
	return NULL;
}

void webhooks_configure(struct events *E, const struct conf *c)
{
	size_t n = conf_webhook_count(c);

	/* Removed: stop (the backlog stays on disk). */
	for (size_t i = 0; i < E->nwh;) {
		struct webhook *w = E->wh[i];
		bool keep = false;
		for (size_t k = 0; k < n && !keep; k++)
			keep = strcmp(conf_webhook_name(c, k), w->name) == 0;
		if (keep || w->gone) {
			i++;
			continue;
		}
		log_panic("webhook=%s removed; backlog events=%" PRIu64 " kept on disk", w->name,
			  w->q_ok ? w->q.events : 0);
		if (w->state == WH_POSTING) {
			w->gone = true;
			i++;
		} else {
			forget(E, w);
			webhook_free(w);
		}
	}
	for (size_t k = 0; k < n; k++) {
		const char *name = conf_webhook_name(c, k);
		struct webhook *w = find(E, name);
		struct str err = STR_INIT;
		bool fresh = w == NULL;

		if (fresh) {
			w = xcalloc(1, sizeof(*w));
			w->E = E;
			w->name = xstrdup(name);
			w->timer = evtimer_new(loop_base(E->loop), on_timer, w);
			E->wh = xrealloc(E->wh, (E->nwh + 1) * sizeof(*E->wh));
			E->wh[E->nwh++] = w;
		}
		w->gone = false;
		if (!settings_load(w, c, k, &err)) {
			log_panic("webhook=%s not started: %s", name, str_cstr(&err));
			snprintf(w->last_error, sizeof(w->last_error), "%s", str_cstr(&err));
			if (w->q_ok)
				whq_close(&w->q);
			w->q_ok = false;
			str_free(&err);
			continue;
		}
		if (!w->q_ok) {
			struct str dir = STR_INIT;
			str_appendf(&dir, "%s/%s", E->dir.s, name);
			free(w->q.dir);
			w->q_ok = whq_open(&w->q, dir.s, &err) == 0;
			if (!w->q_ok) {
				log_panic("webhook=%s not started: %s", name, str_cstr(&err));
				snprintf(w->last_error, sizeof(w->last_error), "%s", str_cstr(&err));
				whq_close(&w->q);
			} else {
				if (w->q.truncated || w->q.skipped)
					log_panic("webhook=%s backlog repaired: torn_bytes=%" PRIu64
						  " damaged_records=%" PRIu64, name, w->q.truncated,
						  w->q.skipped);
				/* Host and port only: a URL may carry a token in its path or query. */
				log_panic("webhook=%s host=%s port=%d tls=%s backlog events=%" PRIu64,
					  name, w->host, w->port, w->https ? "yes" : "no", w->q.events);
				w->first_unsent_ms = w->q.events ? 1 : 0;
			}
			str_free(&dir);
		}
		str_free(&err);
		kick(w);
	}
	stats_refresh(E);
}

void webhooks_free_all(struct events *E)
{
	reap(E);
	for (size_t i = 0; i < E->nwh; i++)
		webhook_free(E->wh[i]);
	free(E->wh);
	E->wh = NULL;
	E->nwh = 0;
}
