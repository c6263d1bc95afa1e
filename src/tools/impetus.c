/*
 * impetus.c - the operator's command line: `impetus [-s SOCKET] COMMAND [ARGS]`
 *
 * Two kinds of commands. Offline ones work on files without the daemon,
 * from one table of commands (run function, usage line, one-line
 * summary; `impetus --help` prints it; a command with subcommands has its
 * own table of the same shape): `spool ls` replays the spool directory
 * read-only (no lock, nothing modified) and tolerates a daemon writing to
 * it at the same time.
 *
 * Every other command is a console command (docs/console.md): sent as one
 * request line to the daemon's control socket (-s SOCKET, else
 * $IMPETUS_CONTROL, else the first Control_Listener Listen of the
 * configuration: -c FILE, default the embedded one; a Unix socket path or
 * a TCP "ip:port"), its answer printed on stdout, or its error on stderr.
 * The protocol is control/control_proto.h. With no command at all, the
 * interactive shell (impetus_shell.c).
 *
 * Exit codes: 0 success, 1 the command failed (with a message on stderr;
 * a console command's error, or no daemon to ask), 2 usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/util.h>
#include <jansson.h>

#include "config/config.h"
#include "control/control_proto.h"
#include "core/id.h"
#include "core/mem.h"
#include "core/str.h"
#include "spool/spool.h"
#include "tools/impetus_tool.h"
#include "tools/tools.h"

#ifndef IMPETUS_VERSION
#define IMPETUS_VERSION "unknown"
#endif

#define DEFAULT_SPOOLDIR "./var/spool"
#define EXIT_USAGE 2

struct command {
	const char *name;
	int (*run)(int argc, char **argv);	/* argv[0] is the command's name */
	const char *usage;			/* arguments after the name */
	const char *summary;
};

static int cmd_spool(int argc, char **argv);
static int cmd_spool_ls(int argc, char **argv);
static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);
static int cmd_sendmail(int argc, char **argv);
static int cmd_inject(int argc, char **argv);

static const char *conf_opt;	/* -c FILE, for the commands that read the configuration */

static const struct command commands[] = {
	{ "spool", cmd_spool, "SUBCOMMAND [ARGS]", "inspect the spool directory offline" },
	{ "sendmail", cmd_sendmail, "[-t] [-i] [-f FROM] [RCPT...]", "submit stdin as sendmail does (docs/sendmail.md)" },
	{ "inject", cmd_inject, "[-f FROM] [-t|-r RCPT...] PATH...", "inject message files, directories, mboxes" },
	{ NULL, NULL, NULL, NULL },
};

static const struct command spool_commands[] = {
	{ "ls", cmd_spool_ls, "[--json] [--all] [SPOOLDIR]", "list spooled messages, one per line" },
	{ NULL, NULL, NULL, NULL },
};


/* print_table - the usage lines of a command table, aligned. */
static void print_table(FILE *f, const char *prefix, const struct command *t)
{
	for (; t->name; t++) {
		struct str line = STR_INIT;

		str_appendf(&line, "%s%s%s%s", prefix, t->name, t->usage[0] ? " " : "", t->usage);
		fprintf(f, "  %-44s %s\n", str_cstr(&line), t->summary);
		str_free(&line);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: impetus [-s SOCKET] [-c FILE] [--json] COMMAND [ARGS]\n"
		   "       impetus [-s SOCKET] [-c FILE]     (the interactive shell)\n"
		   "       impetus --help | --version\n\n"
		   "console commands (run by the daemon; `impetus help` lists them all):\n"
		   "  help, version, pid, and the modules' commands\n"
		   "  -s SOCKET  the control socket, a path or a TCP \"127.0.0.1:2025\"\n"
		   "             (default $IMPETUS_CONTROL, else the\n"
		   "             Control_Listener of the configuration)\n"
		   "  -c FILE    the configuration to find it in (default: the embedded one)\n\n"
		   "offline commands:\n");
	print_table(f, "", commands);
	print_table(f, "spool ", spool_commands);
}

/* dispatch - run the row of t named argv[0]; usage error when there is none. */
static int dispatch(const struct command *t, const char *what, int argc, char **argv)
{
	for (const struct command *c = t; c->name; c++)
		if (strcmp(c->name, argv[0]) == 0)
			return c->run(argc, argv);
	fprintf(stderr, "impetus: unknown %s '%s' (try impetus --help)\n", what, argv[0]);
	return EXIT_USAGE;
}

/* ==================== spool ls ==================== */

struct ls_ctx {
	bool json;
	size_t messages;
	size_t queued;
};

static const char *state_name(uint8_t state)
{
	switch (state) {
	case ENVELOPE_RCPT_QUEUED:
		return "queued";
	case ENVELOPE_RCPT_DELIVERED:
		return "delivered";
	case ENVELOPE_RCPT_FAILED:
		return "failed";
	}
	return "unknown";
}

/*
 * put_field - append s with control bytes replaced, so a hostile address
 * can never add a column or a line to the tab-separated output.
 */
static void put_field(struct str *out, const char *s)
{
	for (; s && *s; s++)
		str_appendc(out, ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s);
}

/* jstr - a JSON string; bytes that are not UTF-8 become '?' rather than losing the field. */
static json_t *jstr(const char *s)
{
	json_t *j;
	char *copy;

	if (s == NULL)
		return json_null();
	j = json_string(s);
	if (j)
		return j;
	copy = xstrdup(s);
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j ? j : json_null();
}

static void ls_json(const struct envelope *msg)
{
	char idbuf[ID_BUF_SIZE];
	json_t *o = json_object(), *rcpts = json_array();
	char *text;

	json_object_set_new(o, "id", json_string(id_format(msg->id, idbuf)));
	json_object_set_new(o, "size", json_integer((json_int_t)msg->loc.length));
	json_object_set_new(o, "received", json_integer((json_int_t)msg->received));
	json_object_set_new(o, "sender", jstr(msg->sender));
	for (size_t i = 0; i < msg->nrcpt; i++) {
		const struct envelope_rcpt *r = &msg->rcpts[i];
		json_t *jr = json_object();

		json_object_set_new(jr, "address", jstr(r->addr));
		json_object_set_new(jr, "state", json_string(state_name(r->state)));
		json_object_set_new(jr, "retries", json_integer((json_int_t)r->retries));
		json_object_set_new(jr, "next_attempt", json_integer((json_int_t)r->next_attempt));
		for (size_t k = 0; k < msg->nfailures; k++) {
			/* What its DSN will say (RCPT_FAILURE), when the spool kept it. */
			const struct envelope_failure *f = &msg->failures[k];
			json_t *jf;

			if (f->rcpt != i)
				continue;
			jf = json_object();
			json_object_set_new(jf, "action", json_string(
				f->action == ENVELOPE_FAILURE_RELAYED ? "relayed" : "failed"));
			json_object_set_new(jf, "code", json_integer(f->code));
			json_object_set_new(jf, "stage", json_integer(f->stage));
			json_object_set_new(jf, "when", json_integer((json_int_t)f->when));
			json_object_set_new(jf, "response", jstr(f->response));
			json_object_set_new(jf, "remote", jstr(f->remote));
			json_object_set_new(jf, "current", json_boolean(envelope_failure_current(msg, f)));
			json_object_set_new(jr, "dsn", jf);
		}
		json_array_append_new(rcpts, jr);
	}
	json_object_set_new(o, "recipients", rcpts);
	if (envelope_report_due(msg))
		json_object_set_new(o, "dsn_owed", json_true());	/* all final, report not yet sent */
	json_object_set_new(o, "client_ip", jstr(msg->client_ip));
	json_object_set_new(o, "protocol", jstr(msg->protocol));
	json_object_set_new(o, "binding", jstr(msg->binding));
	if (vctx_count(msg->vctx) > 0) {
		/* The message's validation context, in insertion order. */
		json_t *v = json_object();

		for (size_t i = 0; i < msg->vctx->n; i++)
			json_object_set_new(v, msg->vctx->v[i].key, jstr(msg->vctx->v[i].value));
		json_object_set_new(o, "vctx", v);
	}
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text)
		puts(text);
	free(text);
	json_decref(o);
}

/* ls_text - ID, SIZE, RECEIVED, <SENDER>, then STATE:<RCPT> per recipient, tab-separated. */
static void ls_text(const struct envelope *msg)
{
	char idbuf[ID_BUF_SIZE], when[32];
	struct str line = STR_INIT;
	time_t t = (time_t)msg->received;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof(when), "%" PRId64, msg->received);
	str_appendf(&line, "%s\t%" PRIu64 "\t%s\t<", id_format(msg->id, idbuf), msg->loc.length,
		    when);
	put_field(&line, msg->sender);
	str_appendc(&line, '>');
	for (size_t i = 0; i < msg->nrcpt; i++) {
		str_appendf(&line, "\t%s:<", state_name(msg->rcpts[i].state));
		put_field(&line, msg->rcpts[i].addr);
		str_appendc(&line, '>');
	}
	puts(str_cstr(&line));
	str_free(&line);
}

static void ls_one(void *arg, struct envelope *msg)
{
	struct ls_ctx *c = arg;

	c->messages++;
	for (size_t i = 0; i < msg->nrcpt; i++)
		c->queued += msg->rcpts[i].state == ENVELOPE_RCPT_QUEUED;
	if (c->json)
		ls_json(msg);
	else
		ls_text(msg);
	envelope_free(msg);
}

static int cmd_spool_ls(int argc, char **argv)
{
	struct ls_ctx c = { 0 };
	struct str err = STR_INIT;
	const char *dir = NULL;
	bool all = false;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			c.json = true;
		} else if (strcmp(argv[i], "--all") == 0) {
			all = true;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: impetus spool ls [--json] [--all] [SPOOLDIR]\n"
			       "List the messages in the spool (default %s), read-only.\n"
			       "  --json  one JSON object per line\n"
			       "  --all   also messages that are finished but not yet reclaimed\n",
			       DEFAULT_SPOOLDIR);
			return 0;
		} else if (argv[i][0] == '-' || dir) {
			fprintf(stderr, "impetus: spool ls: unexpected argument '%s'\n"
				"usage: impetus spool ls [--json] [--all] [SPOOLDIR]\n", argv[i]);
			return EXIT_USAGE;
		} else {
			dir = argv[i];
		}
	}
	if (dir == NULL)
		dir = DEFAULT_SPOOLDIR;
	rc = spool_scan(dir, all, ls_one, &c, &err);
	fflush(stdout);
	if (rc < 0) {
		fprintf(stderr, "impetus: spool ls: %s\n", str_cstr(&err));
		str_free(&err);
		return 1;
	}
	str_free(&err);
	fprintf(stderr, "%zu message%s, %zu recipient%s queued\n", c.messages,
		c.messages == 1 ? "" : "s", c.queued, c.queued == 1 ? "" : "s");
	return 0;
}

/* ==================== top level ==================== */

static int cmd_spool(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		FILE *f = argc < 2 ? stderr : stdout;

		fprintf(f, "usage: impetus spool SUBCOMMAND [ARGS]\n\nsubcommands:\n");
		print_table(f, "spool ", spool_commands);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	return dispatch(spool_commands, "spool subcommand", argc - 1, argv + 1);
}

/* cmd_sendmail - `impetus sendmail ...` (sendmail.c), with -c FILE passed on. */
static int cmd_sendmail(int argc, char **argv)
{
	return sendmail_main(argc, argv, conf_opt);
}

/* cmd_inject - `impetus inject ...` (inject.c), with -c FILE passed on. */
static int cmd_inject(int argc, char **argv)
{
	return inject_main(argc, argv, conf_opt);
}

static int cmd_version(int argc, char **argv)
{
	printf("impetus %s\n", IMPETUS_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	usage(stdout);
	return 0;
}

/* ==================== console commands ==================== */

/*
 * control_socket - the socket to ask: -s, $IMPETUS_CONTROL, or the first
 * Control_Listener Listen of the configuration. NULL after a message.
 */
static char *control_socket(const char *opt, const char *conf_path)
{
	const char *env = getenv("IMPETUS_CONTROL");
	struct str err = STR_INIT;
	struct conf *c;
	char *path = NULL;

	if (opt)
		return xstrdup(opt);
	if (env && *env)
		return xstrdup(env);
	c = conf_path ? conf_load_file(conf_path, &err) : conf_load_default(&err);
	if (c == NULL) {
		fprintf(stderr, "impetus: %s\n", str_cstr(&err));
	} else if (conf_control_count(c) == 0) {
		fprintf(stderr, "impetus: configuration %s has no Control_Listener; use -s SOCKET\n",
			conf_path ? conf_path : "(default)");
	} else {
		path = xstrdup(conf_control_path(c, 0));
	}
	conf_unref(c);
	str_free(&err);
	return path;
}

/* read_all - read until n bytes or EOF into buf; the count read, or -1. */
static ssize_t read_full(int fd, struct str *buf, size_t want)
{
	char tmp[65536];

	while (buf->len < want) {
		size_t n = want - buf->len < sizeof(tmp) ? want - buf->len : sizeof(tmp);
		ssize_t r = read(fd, tmp, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		str_append(buf, tmp, (size_t)r);
	}
	return (ssize_t)buf->len;
}

/*
 * console_connect - a connection to the control socket at where: a TCP
 * address when it reads as one ("127.0.0.1:2025", "[::1]:2025"), else
 * a Unix socket path. -1 after a message on stderr.
 */
static int console_connect(const char *where)
{
	struct sockaddr_storage ss;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int sslen = sizeof(ss);
	socklen_t len;
	int fd;

	memset(&ss, 0, sizeof(ss));
	if (strchr(where, '/') == NULL && strchr(where, ':') != NULL &&
	    evutil_parse_sockaddr_port(where, (struct sockaddr *)&ss, &sslen) == 0) {
		len = (socklen_t)sslen;
	} else {
		if (strlen(where) >= sizeof(sun.sun_path)) {
			fprintf(stderr, "impetus: socket path %s is too long\n", where);
			return -1;
		}
		memcpy(sun.sun_path, where, strlen(where) + 1);
		memcpy(&ss, &sun, sizeof(sun));
		len = sizeof(sun);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) < 0) {
		fprintf(stderr, "impetus: cannot connect to %s: %s (is impetusd running? "
			"offline commands: impetus --help)\n", where, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int console_call(const char *where, int argc, char **argv, bool json, bool *ok, struct str *body)
{
	struct str req = STR_INIT, in = STR_INIT;
	struct timeval tv = { 120, 0 };
	int fd = -1, rc = -1;

	for (int i = 0; i < argc; i++) {
		if (!ctl_word_ok(argv[i])) {
			fprintf(stderr, "impetus: argument %d (\"%s\") is empty or has a blank or "
				"control character; console arguments are single words\n", i + 1, argv[i]);
			str_free(&req);
			return -2;
		}
		str_appendf(&req, "%s%s", i ? " " : "", argv[i]);
	}
	if (json)
		str_appends(&req, " --json");
	str_appendc(&req, '\n');
	if (req.len > CTL_REQUEST_MAX) {
		fprintf(stderr, "impetus: the command is longer than %d bytes\n", CTL_REQUEST_MAX);
		str_free(&req);
		return -2;
	}
	fd = console_connect(where);
	if (fd < 0)
		goto out;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (size_t off = 0; off < req.len;) {
		ssize_t w = send(fd, req.s + off, req.len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			fprintf(stderr, "impetus: %s: %s\n", where, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	size_t blen = 0, head = 0;
	int h = 0;
	/* The status line first: it ends within CTL_HEADER_MAX. */
	while ((h = ctl_reply_header_parse(in.s ? in.s : "", in.len, ok, &blen, &head)) == 0) {
		size_t before = in.len;

		if (read_full(fd, &in, in.len + 1) < 0 || in.len == before)
			break;
	}
	if (h <= 0) {
		fprintf(stderr, "impetus: %s: %s\n", where,
			h < 0 ? "malformed reply from the daemon" :
			"the daemon closed the connection without answering (did it stop?)");
		goto out;
	}
	if (read_full(fd, &in, head + blen) < 0 || in.len < head + blen) {
		fprintf(stderr, "impetus: %s: reply cut short (%zu of %zu bytes)\n", where,
			in.len > head ? in.len - head : 0, blen);
		goto out;
	}
	str_append(body, in.s + head, blen);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	str_free(&req);
	str_free(&in);
	return rc;
}

/* console - send argv as one request to the daemon and print the answer. */
static int console(const char *where, int argc, char **argv, bool json)
{
	struct str body = STR_INIT;
	bool ok = false;
	int rc = console_call(where, argc, argv, json, &ok, &body);

	if (rc == -2) {
		rc = EXIT_USAGE;
	} else if (rc < 0) {
		rc = 1;
	} else if (ok) {
		fwrite(body.s ? body.s : "", 1, body.len, stdout);
		rc = fflush(stdout) == 0 ? 0 : 1;
	} else {
		fprintf(stderr, "impetus: %.*s\n", (int)body.len, body.s ? body.s : "");
		rc = 1;
	}
	str_free(&body);
	return rc;
}

/* ==================== main ==================== */

int main(int argc, char **argv)
{
	const char *sock_opt = NULL, *conf_path = NULL;
	bool json = false;
	int i = 1;
	const char *base = strrchr(argv[0], '/');

	/* Installed as /usr/sbin/sendmail (a link to impetus): behave as sendmail. */
	base = base ? base + 1 : argv[0];
	if (strcmp(base, "sendmail") == 0)
		return sendmail_main(argc, argv, NULL);

	/* Options before the command only: what follows belongs to the command. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return cmd_help(argc - i, argv + i);
		if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0)
			return cmd_version(argc - i, argv + i);
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
			continue;
		}
		if ((strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc) {
			if (argv[i][1] == 's')
				sock_opt = argv[i + 1];
			else
				conf_path = argv[i + 1];
			i++;
			continue;
		}
		fprintf(stderr, "impetus: unknown option '%s'\n", argv[i]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (i >= argc) {
		/* No command: the interactive shell (or commands line by line from a pipe). */
		char *path = control_socket(sock_opt, conf_path);
		if (path == NULL)
			return 1;
		int rc = impetus_shell(path);
		free(path);
		return rc;
	}
	conf_opt = conf_path;
	for (const struct command *c = commands; c->name; c++)
		if (strcmp(c->name, argv[i]) == 0)
			return c->run(argc - i, argv + i);
	char *path = control_socket(sock_opt, conf_path);
	if (path == NULL)
		return 1;
	int rc = console(path, argc - i, argv + i, json);
	free(path);
	return rc;
}
