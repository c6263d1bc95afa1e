/*
 * http_inject.c - POST /api/v1/transmissions and POST /api/inject/v1
 *
 * One request, one message per recipient, and the answer only once
 * every accepted message is durable in the spool. The work is split so
 * neither the scheduler nor memory carries a whole large request:
 *
 *   scheduler  the handler copies the body and holds the request;
 *   CPU pool   parse_run: JSON, checks, templates compiled
 *              (transmission_parse) -> http.tx_parsed;
 *   scheduler  the binding checked against the configuration, then one
 *              render job at a time;
 *   CPU pool   chunk_run: up to CHUNK recipients rendered and built
 *              (transmission_render) and handed to imp_inject, which
 *              copies each message and returns -> http.tx_chunk;
 *   scheduler  imp_inject's answers (on_injected) count the durable
 *              messages; the next chunk starts while fewer than WINDOW
 *              messages are waiting for the spool, so at most about
 *              CHUNK + WINDOW messages exist at once whatever the size
 *              of the request; when every recipient is rendered and
 *              every message answered, the reply goes out.
 *
 * Answers: 200 with the counts (and the refused recipients, by index,
 * address, field and reason); 400 for a body that is not JSON; 422 for a
 * request that cannot make a single message (a bad field, a template that
 * does not compile, every recipient refused); 503 with Retry-After when
 * the spool failed or the daemon is stopping: the recipients accepted
 * before that are durable and will be delivered, the others are listed as
 * refused so the client retries exactly those. A client that leaves
 * before the answer does not stop the messages already handed over; the
 * rest are not made, and the paniclog says how many were accepted.
 *
 * Ownership: struct tx_job is the scheduler's, except that while a job
 * runs on the pool (parse_run, chunk_run) the job owns the fields named
 * "pool" below and the scheduler does not touch them; the post back is
 * the hand-over. The transmission is read only by one pool job at a time.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>
#include <impetus/inject.h>

#include "api/api_runtime.h"
#include "config/config.h"
#include "core/id.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/pool.h"
#include "http/http.h"
#include "http/http_int.h"
#include "log/log.h"
#include "message/transmission.h"
#include "msgs/msgs.h"

#define CHUNK 64		/* recipients rendered by one pool job */
#define WINDOW 512		/* messages handed to the spool and not yet durable */
#define RETRY_AFTER "10"	/* seconds, for a 503 */

/* One refused recipient. */
struct tx_refusal {
	size_t index;
	char *address;
	char *field;
	char *text;
};

struct tx_job {
	struct tx_job *prev, *next_job;	/* the jobs in flight (jobs) */
	struct http_req *r;		/* NULL once the client left */
	enum tx_shape shape;
	char *body;			/* pool (parse_run): the request, freed once parsed */
	size_t len;
	struct transmission *tx;	/* pool (parse_run), then read by chunk_run */
	struct tx_err err;		/* pool (parse_run): why the request was refused */
	uint64_t id;
	char *hostname;			/* for Message-ID */
	size_t n;			/* recipients */
	size_t next;			/* pool (chunk_run): the next recipient to render */
	size_t submitted;		/* handed to imp_inject */
	size_t answered;		/* imp_inject answers received */
	size_t accepted;		/* durable (or built, in a sandbox) */
	bool rendering;			/* a chunk job is on the pool */
	bool stop;			/* render no more: spool trouble, shutdown, client gone */
	int spool_err;			/* the first imp_inject failure (negative errno) */
	struct tx_err fatal;		/* a content error before any message: the 422 */
	struct tx_refusal *refused;
	size_t nrefused, cap;
};

/* One message handed to imp_inject: whose it is, for its answer. */
struct tx_sent {
	struct tx_job *j;
	size_t index;
	char rcpt[];
};

/* What one chunk job did (pool), handed to the scheduler. */
struct tx_chunk {
	struct tx_job *j;
	size_t submitted;		/* imp_inject returned 0 */
	size_t built;			/* sandbox: built and not injected */
	int shutdown;			/* imp_inject said -ESHUTDOWN (or -ENOTCONN) */
	bool fatal;			/* j->fatal is set: stop and answer 422 */
	struct tx_refusal *refused;
	size_t nrefused, cap;
};

static struct tx_job *jobs;	/* scheduler's: every job not yet freed */
static bool stopping;		/* scheduler's: the daemon is shutting down */
static void (*stopped_fn)(void *arg);	/* http_inject_shutdown's: the last job went */
static void *stopped_arg;
static struct event *stop_timer;	/* the grace for the jobs in flight */
static double stop_deadline;		/* the end of that grace (monotonic seconds) */

/* mono_now - CLOCK_MONOTONIC in seconds. */
static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* stopped - the jobs are answered (or the grace is over): the daemon's shutdown goes on. */
static void stopped(void)
{
	void (*fn)(void *) = stopped_fn;

	stopped_fn = NULL;
	if (stop_timer) {
		event_free(stop_timer);
		stop_timer = NULL;
	}
	if (fn)
		fn(stopped_arg);
}

/*
 * on_stop_timer - the grace is over, or the last job went: wait (in
 * steps of 50 ms, within the grace) until the answers are written to
 * their sockets, then let the shutdown go on.
 */
static void on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (mono_now() < stop_deadline && jobs == NULL && http_output_pending() > 0) {
		struct timeval step = { 0, 50000 };

		evtimer_add(stop_timer, &step);
		return;
	}
	if (jobs != NULL || http_output_pending() > 0)
		log_panic("shutdown http injection: grace over with requests unanswered");
	stopped();
}

/* refusal_add - append one refused recipient to a list. */
static void refusal_add(struct tx_refusal **list, size_t *n, size_t *cap, size_t index,
			const char *address, const char *field, const char *text)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 8;
		*list = xrealloc(*list, *cap * sizeof(**list));
	}
	(*list)[(*n)++] = (struct tx_refusal){ index, xstrdup(address), xstrdup(field),
					       xstrdup(text) };
}

/* refusals_free - a list's strings and the list. */
static void refusals_free(struct tx_refusal *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].address);
		free(list[i].field);
		free(list[i].text);
	}
	free(list);
}

/* tx_free_run - CPU pool: free a parsed request (a large JSON tree: not on the scheduler). */
static void tx_free_run(void *arg)
{
	transmission_free(arg);
}

/* job_free - a finished job goes: off the list, its tree freed on the pool while there is one. */
static void job_free(struct tx_job *j)
{
	struct pool *cpu = api_runtime()->cpu_pool;

	if (j->prev)
		j->prev->next_job = j->next_job;
	else
		jobs = j->next_job;
	if (j->next_job)
		j->next_job->prev = j->prev;
	if (jobs == NULL && stopped_fn) {
		/*
		 * The last answer is in libevent's output buffer, written on the
		 * next turns of the loop: the shutdown goes on once it is out
		 * (on_stop_timer), not now (the scheduler could stop first and
		 * the client get a reset).
		 */
		struct timeval soon = { 0, 0 };

		evtimer_del(stop_timer);
		evtimer_add(stop_timer, &soon);
	}
	/* Once the runtime stopped the pools are being freed: free here. */
	if (j->tx && cpu && !api_runtime_stopped())
		pool_submit(cpu, tx_free_run, j->tx);
	else
		transmission_free(j->tx);
	free(j->body);
	free(j->hostname);
	refusals_free(j->refused, j->nrefused);
	free(j);
}

/* ==================== answers (scheduler) ==================== */

/* refused_json - the refused recipients as a JSON array (SparkPost shape) or addresses (Kumo). */
static json_t *refused_json(const struct tx_job *j)
{
	json_t *a = json_array();

	for (size_t i = 0; i < j->nrefused; i++) {
		const struct tx_refusal *f = &j->refused[i];

		if (j->shape == TX_KUMO)
			json_array_append_new(a, json_string(f->address));
		else
			json_array_append_new(a, json_pack("{s:I,s:s,s:s,s:s}", "index",
							   (json_int_t)f->index, "address",
							   f->address, "field", f->field,
							   "message", f->text));
	}
	return a;
}

/* errors_json - Kumo's errors[]: "field: text" strings. */
static json_t *errors_json(const struct tx_job *j)
{
	json_t *a = json_array();

	for (size_t i = 0; i < j->nrefused; i++)
		json_array_append_new(a, json_sprintf("recipients[%zu] %s: %s", j->refused[i].index,
						      j->refused[i].field, j->refused[i].text));
	return a;
}

/* What /metrics shows of these routes (scheduler's, never reset). */
static const int counted_status[HTTP_INJECT_NSTATUS] = { 200, 400, 422, 503 };
static struct http_inject_stats stats;

/* count_answer - one answer of status to a request of shape. */
static void count_answer(enum tx_shape shape, int status)
{
	for (size_t i = 0; i < HTTP_INJECT_NSTATUS; i++)
		if (counted_status[i] == status)
			stats.answers[shape == TX_KUMO][i]++;
}

void http_inject_get_stats(struct http_inject_stats *out, const int **statuses)
{
	*out = stats;
	*statuses = counted_status;
}

/* send_json - answer with doc (taken). */
static void send_json(struct http_req *r, enum tx_shape shape, int status, json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT);

	json_decref(doc);
	if (text == NULL) {
		http_reply_error(r, 500, "the answer could not be written as JSON");
		return;
	}
	count_answer(shape, status);
	if (status == 503)
		http_req_set_header(r, "Retry-After", RETRY_AFTER);
	http_reply(r, status, "application/json", text, strlen(text));
	free(text);
}

/* answer_error - a refused request: {"errors":[{message, field}]}. */
static void answer_error(struct http_req *r, enum tx_shape shape, const struct tx_err *e)
{
	json_t *err = json_pack("{s:s}", "message", e->text);

	if (e->field[0])
		json_object_set_new(err, "field", json_string(e->field));
	send_json(r, shape, e->status ? e->status : 422, json_pack("{s:[o]}", "errors", err));
}

/* finish - every recipient rendered and every message answered: the reply, and the job goes. */
static void finish(struct tx_job *j)
{
	char idbuf[24];
	int status = 200;

	snprintf(idbuf, sizeof(idbuf), "%" PRIu64, j->id);
	if (j->r == NULL) {
		log_panic("http transmission=%s client left before the answer: accepted=%zu "
			  "refused=%zu not_attempted=%zu of %zu recipients", idbuf, j->accepted,
			  j->nrefused, j->n - j->next, j->n);
		job_free(j);
		return;
	}
	struct http_req *r = j->r;

	if (j->fatal.status) {
		answer_error(r, j->shape, &j->fatal);
		job_free(j);
		return;
	}
	if (j->spool_err)
		status = 503;
	else if (j->accepted == 0)
		status = 422;

	json_t *doc;
	if (j->shape == TX_KUMO) {
		doc = json_pack("{s:I,s:I,s:o,s:o}", "success_count", (json_int_t)j->accepted,
				"fail_count", (json_int_t)j->nrefused, "failed_recipients",
				refused_json(j), "errors", errors_json(j));
	} else {
		json_t *res = json_pack("{s:I,s:I,s:s}", "total_rejected_recipients",
					(json_int_t)j->nrefused, "total_accepted_recipients",
					(json_int_t)j->accepted, "id", idbuf);

		if (j->nrefused)
			json_object_set_new(res, "rejected_recipients", refused_json(j));
		doc = json_pack("{s:o}", "results", res);
		if (status != 200) {
			const char *why = j->spool_err ? "the spool could not take the messages; "
				"the refused recipients may be sent again later" :
				"every recipient was refused";

			json_object_set_new(doc, "errors", json_pack("[{s:s}]", "message", why));
		}
	}
	stats.recipients[j->shape == TX_KUMO][0] += j->accepted;
	stats.recipients[j->shape == TX_KUMO][1] += j->nrefused;
	send_json(r, j->shape, status, doc);
	job_free(j);
}

/* on_abandon - the client left (scheduler): make no more messages; answer nobody. */
static void on_abandon(void *arg)
{
	struct tx_job *j = arg;

	j->r = NULL;
	j->stop = true;
}

/* ==================== rendering (pool) ==================== */

/* on_injected - scheduler: one message is durable (err 0) or is not. */
static void on_injected(void *arg, int err, uint64_t id);
static void maybe_more(struct tx_job *j);

/* chunk_run - pool: render, build and hand over up to CHUNK recipients. */
static void chunk_run(void *arg)
{
	struct tx_chunk *c = arg;
	struct tx_job *j = c->j;
	struct msg_build_opts o = { .hostname = j->hostname, .now = (int64_t)time(NULL) };
	size_t end = j->next + CHUNK < j->n ? j->next + CHUNK : j->n;

	for (; j->next < end; j->next++) {
		size_t i = j->next;
		struct tx_msg m;
		struct tx_err e;

		if (transmission_render(j->tx, i, j->id, &o, &m, &e) < 0) {
			tx_msg_free(&m);
			if (i == 0 && strncmp(e.field, "content", 7) == 0) {
				/* The content itself is wrong: the request is, not the recipient. */
				j->fatal = e;
				c->fatal = true;
				j->next = j->n;
				break;
			}
			refusal_add(&c->refused, &c->nrefused, &c->cap, i,
				    transmission_rcpt(j->tx, i), e.field, e.text);
			continue;
		}
		if (transmission_sandbox(j->tx)) {
			c->built++;
			tx_msg_free(&m);
			continue;
		}
		const char *rcpt = m.rcpt;
		size_t rlen = strlen(rcpt);
		struct tx_sent *sent = xmalloc(sizeof(*sent) + rlen + 1);

		sent->j = j;
		sent->index = i;
		memcpy(sent->rcpt, rcpt, rlen + 1);
		struct imp_inject req = {
			.sender = transmission_sender(j->tx), .rcpts = &rcpt, .nrcpts = 1,
			.data = m.data.s, .len = m.data.len, .binding = transmission_binding(j->tx),
			.protocol = "http", .flags = IMP_INJECT_SIGN | IMP_INJECT_LOG,
			.vctx = m.vctx, .nvctx = m.nvctx,
		};
		int rc = imp_inject(&req, on_injected, sent);

		if (rc != 0)
			free(sent);
		if (rc == 0) {
			c->submitted++;
		} else if (rc == -ESHUTDOWN || rc == -ENOTCONN) {
			c->shutdown = rc;
			refusal_add(&c->refused, &c->nrefused, &c->cap, i, m.rcpt, "",
				    "the daemon is stopping");
			j->next++;
			tx_msg_free(&m);
			break;
		} else {
			refusal_add(&c->refused, &c->nrefused, &c->cap, i, m.rcpt, "",
				    rc == -EFBIG ? "the message is larger than Max_Message_Size" :
				    "the message was refused by the injection path");
		}
		tx_msg_free(&m);
	}
	msgs_post(api_runtime()->scheduler, MSGS_HTTP_TX_CHUNK, c);
}

/* start_chunk - scheduler: one more render job. */
static void start_chunk(struct tx_job *j)
{
	struct tx_chunk *c = XNEW(struct tx_chunk);

	c->j = j;
	j->rendering = true;
	pool_submit(api_runtime()->cpu_pool, chunk_run, c);
}

/* refuse_rest - the recipients never rendered, refused with why (spool trouble, shutdown). */
static void refuse_rest(struct tx_job *j, const char *why)
{
	for (size_t i = j->next; i < j->n; i++)
		refusal_add(&j->refused, &j->nrefused, &j->cap, i, transmission_rcpt(j->tx, i), "",
			    why);
	j->next = j->n;
}

/* maybe_more - scheduler: render more, or answer when everything is in. */
static void maybe_more(struct tx_job *j)
{
	if (j->rendering)
		return;
	if (j->stop && j->next < j->n && j->r != NULL)
		refuse_rest(j, j->spool_err == -ESHUTDOWN ? "not attempted: the daemon is stopping" :
			    "not attempted: the spool failed");
	if (j->next < j->n && !j->stop) {
		if (j->submitted - j->answered < WINDOW)
			start_chunk(j);
		return;
	}
	if (j->answered == j->submitted)
		finish(j);
}

void http_inject_on_chunk(void *arg)
{
	struct tx_chunk *c = arg;
	struct tx_job *j = c->j;

	j->rendering = false;
	j->submitted += c->submitted;
	j->accepted += c->built;
	for (size_t i = 0; i < c->nrefused; i++) {
		struct tx_refusal *f = &c->refused[i];

		refusal_add(&j->refused, &j->nrefused, &j->cap, f->index, f->address, f->field,
			    f->text);
	}
	refusals_free(c->refused, c->nrefused);
	if (c->shutdown) {
		j->stop = true;
		if (j->spool_err == 0)
			j->spool_err = -ESHUTDOWN;
	}
	if (c->fatal)
		j->stop = true;
	free(c);
	maybe_more(j);
}

static void on_injected(void *arg, int err, uint64_t id)
{
	struct tx_sent *sent = arg;
	struct tx_job *j = sent->j;

	(void)id;
	j->answered++;
	if (err == 0) {
		j->accepted++;
	} else {
		/* Not durable: refused, and no more are made (the next would fail too). */
		refusal_add(&j->refused, &j->nrefused, &j->cap, sent->index, sent->rcpt, "",
			    err == -ESHUTDOWN ? "the daemon is stopping" :
			    "the spool failed to store the message");
		if (j->spool_err == 0)
			j->spool_err = err;
		j->stop = true;
	}
	free(sent);
	maybe_more(j);
}

/* ==================== parsing (pool) and the handlers (scheduler) ==================== */

/* parse_run - pool: the JSON parsed and the templates compiled. */
static void parse_run(void *arg)
{
	struct tx_job *j = arg;

	if (transmission_parse(j->shape, j->body, j->len, &j->tx, &j->err) < 0)
		j->tx = NULL;
	free(j->body);
	j->body = NULL;
	msgs_post(api_runtime()->scheduler, MSGS_HTTP_TX_PARSED, j);
}

void http_inject_on_parsed(void *arg)
{
	struct tx_job *j = arg;

	if (j->tx == NULL || j->r == NULL) {
		if (j->r)
			answer_error(j->r, j->shape, &j->err);
		job_free(j);
		return;
	}
	const char *binding = transmission_binding(j->tx);
	struct conf *conf = api_runtime_conf();

	if (binding && conf && !conf_binding_exists(conf, binding)) {
		struct tx_err e = { .status = 422, .field = "options.ip_pool" };

		snprintf(e.text, sizeof(e.text), "no Binding is named \"%s\"", binding);
		utf8_trim(e.text);
		conf_unref(conf);
		answer_error(j->r, j->shape, &e);
		job_free(j);
		return;
	}
	conf_unref(conf);
	j->n = transmission_count(j->tx);
	if (j->stop) {		/* the daemon began stopping while this was parsed */
		refuse_rest(j, "not attempted: the daemon is stopping");
		finish(j);
		return;
	}
	maybe_more(j);
}

/* start - a handler's common part: copy the body, hold the request, parse on the pool. */
static void start(struct http_req *r, enum tx_shape shape)
{
	const struct api_runtime *rt = api_runtime();
	size_t len;
	const char *body = http_req_body(r, &len);

	if (rt->cpu_pool == NULL || rt->scheduler == NULL || api_runtime_stopped() || stopping) {
		http_req_set_header(r, "Retry-After", RETRY_AFTER);
		count_answer(shape, 503);
		http_reply_error(r, 503, "the daemon is not accepting mail now");
		return;
	}
	struct conf *conf = api_runtime_conf();
	struct tx_job *j = XNEW(struct tx_job);

	j->r = r;
	j->shape = shape;
	j->next_job = jobs;
	if (jobs)
		jobs->prev = j;
	jobs = j;
	j->body = xmalloc(len + 1);
	memcpy(j->body, body, len);
	j->body[len] = '\0';
	j->len = len;
	http_req_drop_body(r);	/* libevent's copy goes now, not with the answer */
	j->id = id_next();
	j->hostname = xstrdup(conf ? conf_hostname(conf) : "localhost");
	conf_unref(conf);
	http_req_hold(r, on_abandon, j);
	pool_submit(rt->cpu_pool, parse_run, j);
}

void http_inject_shutdown(int grace, void (*done)(void *arg), void *arg)
{
	struct tx_job *j, *next;

	stopping = true;
	stopped_fn = done;
	stopped_arg = arg;
	if (jobs == NULL) {
		stopped();
		return;
	}
	struct timeval tv = { grace > 0 ? grace : 0, 0 };

	stop_deadline = mono_now() + tv.tv_sec;
	stop_timer = evtimer_new(loop_base(api_runtime()->scheduler), on_stop_timer, NULL);
	evtimer_add(stop_timer, &tv);
	for (j = jobs; j; j = next) {
		next = j->next_job;	/* maybe_more may free j */
		j->stop = true;
		if (j->spool_err == 0)
			j->spool_err = -ESHUTDOWN;
		if (j->n > 0)		/* parsed: else http_inject_on_parsed sees stop */
			maybe_more(j);
	}
}

void http_transmissions(struct http_req *r, const struct http_route *route,
			const struct http_match *m)
{
	(void)route;
	(void)m;
	start(r, TX_SPARKPOST);
}

void http_inject_kumo(struct http_req *r, const struct http_route *route,
		      const struct http_match *m)
{
	(void)route;
	(void)m;
	start(r, TX_KUMO);
}
