/*
 * submit.h - the tools' SMTP client: `impetus sendmail` and `impetus
 * inject` talk to the daemon's ESMTP listener through it
 *
 * Blocking, one connection, a timeout on every read and write (a daemon
 * that stops answering is an error, never a hang). Also what both tools
 * share about the configuration: where the listener is, the hostname,
 * the spool directory.
 *
 * Ownership: a struct submit is its caller's. Failures: negative errno
 * from connect (the caller decides whether that means "daemon down"),
 * -1 replies for a broken connection or a malformed reply.
 */
#ifndef IMPETUS_TOOLS_SUBMIT_H
#define IMPETUS_TOOLS_SUBMIT_H

#include <stdbool.h>
#include <stdio.h>

#include "core/str.h"

struct conf;

#define SUBMIT_TIMEOUT 300		/* seconds, per read or write (RFC 5321 4.5.3.2) */
#define SUBMIT_REPLY_MAX 65536

struct submit {
	int fd;
	FILE *trace;			/* -v: the dialogue, or NULL */
	struct str in;			/* bytes read and not yet consumed */
	bool pipelining, eightbit, dsn, smtputf8;
	size_t max_size;		/* SIZE from EHLO, 0 = none said */
};

/* Where an installed system keeps the configuration the tools read by default. */
#ifndef IMPETUS_SYSTEM_CONF
#define IMPETUS_SYSTEM_CONF "/etc/impetus/impetus.conf"
#endif

/*
 * submit_conf_load - the configuration the submission tools read: path
 * when given, else $IMPETUS_CONFIG, else IMPETUS_SYSTEM_CONF when that
 * file exists, else the embedded default. NULL with err.
 */
struct conf *submit_conf_load(const char *path, struct str *err);

/*
 * submit_listener - the first ESMTP Listen of the configuration, as
 * "host:port" to connect to (a wildcard address becomes loopback). NULL
 * with err when there is none.
 */
char *submit_listener(const struct conf *c, struct str *err);

/* submit_connect - connect to "ip:port" / "[v6]:port"; 0 or -errno. */
int submit_connect(struct submit *s, const char *addr, struct str *err);

/* submit_reply - read one reply: its code, text (lines joined by "\n") in text; -1 on failure. */
int submit_reply(struct submit *s, struct str *text);

/* submit_write - send bytes (traced when tracing); 0 or -1. */
int submit_write(struct submit *s, const char *p, size_t n);

/* submit_cmd - send "line\r\n" and read the reply: its code, or -1. */
int submit_cmd(struct submit *s, const char *line, struct str *text);

/* submit_hello - read the greeting and say EHLO; 0, or -1 with text explaining. */
int submit_hello(struct submit *s, const char *name, struct str *text);

/* submit_data_encode - msg as DATA bytes: CRLF lines, dot-stuffed, ".\r\n" at the end. */
void submit_data_encode(struct str *out, const char *msg, size_t len);

/* submit_close - QUIT (best effort) and close. */
void submit_close(struct submit *s);

#endif
