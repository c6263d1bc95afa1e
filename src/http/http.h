/*
 * http.h - the HTTP_Listener: impetus's REST side, in the daemon
 *
 * http_new binds every Listen of HTTP_Listener and serves it with
 * libevent's evhttp on the scheduler loop (why there, and not on an I/O
 * loop: docs/http-api.md, "Threads"): authentication by API key
 * (http_auth.h), routing (http_parse.h) and the routes' handlers
 * (http_admin.c: the console's commands as JSON) all run on the
 * scheduler thread, so a command reads scheduler-owned state without a
 * lock and without a hop between threads, exactly as the console does.
 *
 * A reload (http_reload) applies a new generation: Listen stanzas added
 * are bound, removed ones closed, kept ones get the new limits and TLS
 * certificate. API keys are read from the running configuration on every
 * request, so a reload changes them at once.
 */
#ifndef IMPETUS_HTTP_HTTP_H
#define IMPETUS_HTTP_HTTP_H

#include "core/str.h"

struct conf;
struct loop;
struct http_server;

/*
 * http_new - bind conf's HTTP listeners and serve them on sched
 * (scheduler thread, before its loop runs). Returns NULL with err set
 * ("HTTP_Listener Listen 127.0.0.1:2081: cannot listen: Address already
 * in use", a TLS file that does not load); a conf without HTTP_Listener
 * gives a server with no socket. Without any API_Key the listeners
 * answer loopback clients only (http_announce says so).
 */
struct http_server *http_new(struct loop *sched, const struct conf *conf, struct str *err);
/*
 * http_announce - the paniclog lines of the listeners and of who may use
 * them (API keys, or loopback only): once the logs are open (main.c).
 */
void http_announce(const struct http_server *s, const struct conf *conf);
/* http_reload - follow a new generation (scheduler thread); errors go to the paniclog. */
void http_reload(struct http_server *s, const struct conf *conf);
/* http_free - close every connection and socket (scheduler thread); commands still answering finish into the void. */
void http_free(struct http_server *s);
/*
 * http_inject_shutdown - the daemon is stopping (scheduler): injection
 * requests get 503 from now on; those in flight make no more messages
 * and answer 503, listing what was not attempted, once the messages
 * already handed over are answered. done(arg) runs when every request
 * in flight is answered, or after grace seconds (now, when none is).
 */
/* http_output_pending - connections with answer bytes not yet written (scheduler). */
size_t http_output_pending(void);
void http_inject_shutdown(int grace, void (*done)(void *arg), void *arg);

#endif
