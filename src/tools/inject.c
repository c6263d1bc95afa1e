/*
 * inject.c - `impetus inject`: message files, directories of them and
 * mboxes into the daemon, through its ESMTP listener
 *
 * Every message gets the same envelope options (-f SENDER; -r RCPT and/or
 * -t, recipients from its own To/Cc/Bcc); an mbox message without -f
 * takes its sender from its "From " line. One connection carries them
 * all; each transaction is pipelined (MAIL, RCPT..., DATA in one write)
 * when the daemon offers PIPELINING. On a terminal, stderr shows a
 * progress bar with the rate; otherwise stdout gets one line per message
 * ("ok NAME ID" or "refused NAME: REPLY"). A summary ends the run, and
 * each refused message is named on stderr with the reason.
 *
 * Exit: 0 all injected, 1 something was refused (or the daemon could not
 * be reached), 2 usage. Ownership: everything is this process's.
 */
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/mem.h"
#include "tools/submit.h"
#include "tools/tools.h"

#define EXIT_USAGE 2
#define FILE_MAX (UINT64_C(1) << 31)

struct inj {
	const char *from;		/* -f, or NULL */
	bool extract;			/* -t */
	bool mbox;			/* --mbox: every file is an mbox */
	bool quiet;			/* -q: no per-message lines */
	struct strlist rcpts;		/* -r */
	char *addr;			/* the listener */
	const char *hostname;
	char *user_addr;
	struct submit s;
	bool connected;
	bool tty;
	/* progress */
	size_t total, done, ok;
	struct strlist refused;		/* "NAME: reason" */
	struct timespec start, last_draw;
};

/* now_since - seconds elapsed since t on the monotonic clock. */
static double now_since(const struct timespec *t)
{
	struct timespec n;

	clock_gettime(CLOCK_MONOTONIC, &n);
	return (double)(n.tv_sec - t->tv_sec) + (double)(n.tv_nsec - t->tv_nsec) / 1e9;
}

/* ==================== the work list ==================== */

struct item {
	char *name;		/* shown in lines and errors */
	char *path;		/* the file */
	bool mbox;
};

struct items {
	struct item *v;
	size_t n, cap;
};

/* items_add - one file (or "-") onto the work list. */
static void items_add(struct items *l, const char *name, const char *path, bool mbox)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = (struct item){ xstrdup(name), xstrdup(path), mbox };
}

/* cmp_str - qsort order of a directory's file names. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* read_path - the whole file (or stdin for "-"); -errno. */
static int read_path(const char *path, struct str *out)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char buf[65536];
	size_t n;
	int rc = 0;

	if (f == NULL)
		return -errno;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		str_append(out, buf, n);
		if (out->len > FILE_MAX) {
			rc = -EFBIG;
			break;
		}
	}
	if (rc == 0 && ferror(f))
		rc = -EIO;
	if (f != stdin)
		fclose(f);
	return rc;
}

/* is_mbox - whether bytes look like an mbox: they start with a "From " line. */
static bool is_mbox(const struct str *s)
{
	return s->len >= 5 && memcmp(s->s, "From ", 5) == 0;
}

/* ==================== one transaction ==================== */

/* progress - redraw the bar (a terminal) at most ten times a second, and at the end. */
static void progress(struct inj *j, bool final)
{
	if (!j->tty || (!final && now_since(&j->last_draw) < 0.1))
		return;
	clock_gettime(CLOCK_MONOTONIC, &j->last_draw);
	double t = now_since(&j->start);
	double rate = t > 0 ? (double)j->done / t : 0;
	int width = 30, fill = j->total ? (int)((double)width * (double)j->done / (double)j->total) : 0;
	char bar[64];

	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr, "\r[%s] %zu/%zu  %.1f msg/s  %zu refused ", bar, j->done, j->total, rate,
		j->refused.n);
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

/* result - count one message's outcome; its line on stdout unless on a terminal or -q. */
static void result(struct inj *j, const char *name, bool ok, const char *text)
{
	j->done++;
	if (ok) {
		j->ok++;
		if (!j->tty && !j->quiet)
			printf("ok %s %s\n", name, text);
	} else {
		struct str r = STR_INIT;

		str_appendf(&r, "%s: %s", name, text);
		for (char *p = r.s; *p; p++)
			if (*p == '\n')
				*p = ' ';
		strlist_add(&j->refused, r.s, r.len);
		if (!j->tty && !j->quiet)
			printf("refused %s\n", r.s);
		str_free(&r);
	}
	progress(j, false);
}

/* connect_daemon - (re)connect and greet; false with the reason in why. */
static bool connect_daemon(struct inj *j, struct str *why)
{
	if (j->connected)
		return true;
	str_clear(why);
	if (submit_connect(&j->s, j->addr, why) < 0)
		return false;
	if (submit_hello(&j->s, j->hostname, why) < 0) {
		submit_close(&j->s);
		return false;
	}
	j->connected = true;
	return true;
}

/* accepted_id - "<id>" from "250 2.0.0 OK id" (or "OK <id>"): the reply's last word. */
static void accepted_id(const char *text, struct str *out)
{
	const char *w = strrchr(text, ' ');
	size_t n;

	w = w ? w + 1 : text;
	n = strcspn(w, "\r\n");
	if (*w == '<')
		str_append(out, w, n);
	else
		str_appendf(out, "<%.*s>", (int)n, w);
}

/*
 * send_one - one message: MAIL, RCPT..., DATA (pipelined when offered),
 * the body, the final reply. Reports the result. A lost connection is
 * retried once on a new one.
 */
static void send_one(struct inj *j, const char *name, const char *sender, const char *msg,
		     size_t len)
{
	struct strlist rcpts = { 0 };
	struct str cmds = STR_INIT, text = STR_INIT, data = STR_INIT;
	int attempt = 0;

	for (size_t i = 0; i < j->rcpts.n; i++)
		strlist_add_unique(&rcpts, j->rcpts.v[i]);
	if (j->extract) {
		struct strlist h = { 0 };

		header_rcpts(msg, len, &h);
		for (size_t i = 0; i < h.n; i++)
			strlist_add_unique(&rcpts, h.v[i]);
		strlist_free(&h);
	}
	if (len == 0) {
		result(j, name, false, "empty message");
		goto out;
	}
	if (rcpts.n == 0) {
		result(j, name, false, "no recipient (none in To, Cc or Bcc)");
		goto out;
	}
	if (memchr(msg, '\0', len)) {
		result(j, name, false, "the message holds a NUL byte");
		goto out;
	}
	submit_data_encode(&data, msg, len);
again:
	if (!connect_daemon(j, &text)) {
		result(j, name, false, text.len ? text.s : "the daemon is not answering");
		goto out;
	}
	str_clear(&cmds);
	str_appendf(&cmds, "MAIL FROM:<%s>%s\r\n", sender, j->s.eightbit ? " BODY=8BITMIME" : "");
	for (size_t i = 0; i < rcpts.n; i++)
		str_appendf(&cmds, "RCPT TO:<%s>\r\n", rcpts.v[i]);
	str_appends(&cmds, "DATA\r\n");
	int mail = -1, data_code = -1, good = 0;
	const char *why = NULL;
	struct str first_bad = STR_INIT;

	if (j->s.pipelining) {
		if (submit_write(&j->s, cmds.s, cmds.len) < 0)
			goto lost;
		mail = submit_reply(&j->s, &text);
		if (mail < 0)
			goto lost;
		if (mail != 250)
			str_appends(&first_bad, text.s);
		for (size_t i = 0; i < rcpts.n; i++) {
			int c = submit_reply(&j->s, &text);

			if (c < 0)
				goto lost;
			if (c == 250 || c == 251)
				good++;
			else if (first_bad.len == 0)
				str_appendf(&first_bad, "<%s>: %s", rcpts.v[i], text.s);
		}
		data_code = submit_reply(&j->s, &text);
		if (data_code < 0)
			goto lost;
	} else {
		struct str line = STR_INIT;

		str_appendf(&line, "MAIL FROM:<%s>%s", sender, j->s.eightbit ? " BODY=8BITMIME" : "");
		mail = submit_cmd(&j->s, line.s, &text);
		if (mail == 250) {
			for (size_t i = 0; i < rcpts.n; i++) {
				str_clear(&line);
				str_appendf(&line, "RCPT TO:<%s>", rcpts.v[i]);
				int c = submit_cmd(&j->s, line.s, &text);

				if (c < 0)
					break;
				if (c == 250 || c == 251)
					good++;
				else if (first_bad.len == 0)
					str_appendf(&first_bad, "<%s>: %s", rcpts.v[i], text.s);
			}
			if (good)
				data_code = submit_cmd(&j->s, "DATA", &text);
		} else if (mail > 0) {
			str_appends(&first_bad, text.s);
		}
		str_free(&line);
		if (mail < 0 || (good && data_code < 0))
			goto lost;
	}
	if (data_code != 354) {
		/* Nothing was sent: the transaction ends here. */
		why = first_bad.len ? first_bad.s : text.s;
		result(j, name, false, why);
		if (submit_cmd(&j->s, "RSET", &text) != 250) {
			submit_close(&j->s);
			j->connected = false;
		}
		str_free(&first_bad);
		goto out;
	}
	if (submit_write(&j->s, data.s, data.len) < 0)
		goto lost;
	int c = submit_reply(&j->s, &text);

	if (c < 0)
		goto lost;
	if (c == 250 && first_bad.len == 0) {
		struct str id = STR_INIT;

		accepted_id(text.s, &id);
		result(j, name, true, id.s);
		str_free(&id);
	} else if (c == 250) {
		/* Accepted for some recipients only: a refusal to name. */
		struct str w = STR_INIT;

		str_appends(&w, "accepted ");
		accepted_id(text.s, &w);
		str_appendf(&w, " for %d of %zu recipients; refused %s", good, rcpts.n, first_bad.s);
		result(j, name, false, w.s);
		str_free(&w);
	} else {
		result(j, name, false, text.s);
	}
	str_free(&first_bad);
	goto out;
lost:
	str_free(&first_bad);
	submit_close(&j->s);
	j->connected = false;
	if (attempt++ == 0)
		goto again;
	result(j, name, false, "the connection to the daemon was lost");
out:
	strlist_free(&rcpts);
	str_free(&cmds);
	str_free(&text);
	str_free(&data);
}

/* mbox_sender - the address of an mbox "From addr date" line. */
static char *mbox_sender(const char *line, size_t n)
{
	size_t b = 5, e;

	while (b < n && line[b] == ' ')
		b++;
	e = b;
	while (e < n && line[e] != ' ' && line[e] != '\r' && line[e] != '\n')
		e++;
	if (e - b == 13 && strncasecmp(line + b, "MAILER-DAEMON", 13) == 0)
		return xstrdup("");
	return xstrndup(line + b, e - b);
}

/*
 * send_mbox - each message of an mbox: split at "From " lines that
 * start the file or follow an empty line, with ">From " (mboxrd, any
 * number of '>') unquoted by one level.
 */
static void send_mbox(struct inj *j, const char *name, const struct str *box)
{
	size_t pos = 0, count = 0;

	while (pos < box->len) {
		const char *nl = memchr(box->s + pos, '\n', box->len - pos);
		size_t fl = nl ? (size_t)(nl - box->s - pos) + 1 : box->len - pos;
		char *sender = mbox_sender(box->s + pos, fl);
		struct str msg = STR_INIT, label = STR_INIT;
		size_t p = pos + fl;
		bool blank_before = false;

		while (p < box->len) {
			const char *e = memchr(box->s + p, '\n', box->len - p);
			size_t ll = e ? (size_t)(e - box->s - p) + 1 : box->len - p;
			const char *l = box->s + p;

			if (blank_before && ll >= 5 && memcmp(l, "From ", 5) == 0)
				break;
			size_t q = 0;

			while (q < ll && l[q] == '>')
				q++;
			if (q > 0 && ll - q >= 5 && memcmp(l + q, "From ", 5) == 0)
				str_append(&msg, l + 1, ll - 1);
			else
				str_append(&msg, l, ll);
			blank_before = (ll == 1 && l[0] == '\n') || (ll == 2 && l[0] == '\r');
			p += ll;
		}
		/* The empty line before the next "From " belongs to the mbox, not the message. */
		if (p < box->len && msg.len && msg.s[msg.len - 1] == '\n') {
			msg.len -= (msg.len >= 2 && msg.s[msg.len - 2] == '\r') ? 2 : 1;
			msg.s[msg.len] = '\0';
		}
		count++;
		str_appendf(&label, "%s:%zu", name, count);
		if (count > 1)
			j->total++;
		send_one(j, label.s, j->from ? j->from : sender, msg.s ? msg.s : "", msg.len);
		free(sender);
		str_free(&msg);
		str_free(&label);
		pos = p;
	}
}

/* ==================== main ==================== */

static void inject_usage(FILE *f)
{
	fprintf(f, "usage: impetus inject [-f SENDER] [-t] [-r RCPT]... [--mbox] [-q] "
		   "[--server HOST:PORT] PATH...\n"
		   "Inject message files (RFC 5322), directories of them, or mboxes through the\n"
		   "daemon's ESMTP listener (the first Listen of -c FILE, $IMPETUS_CONFIG,\n"
		   IMPETUS_SYSTEM_CONF " or the embedded default).\n"
		   "  -f SENDER   envelope sender (default: an mbox's From line, else you@Hostname)\n"
		   "  -r RCPT     an envelope recipient (repeat for more)\n"
		   "  -t          also the recipients of each message's To, Cc and Bcc\n"
		   "  --mbox      read every file as an mbox (else: when it starts with \"From \")\n"
		   "  -q          no line per message (the summary and refusals still print)\n"
		   "  --server    HOST:PORT to submit to instead of the configured listener\n"
		   "  PATH        a file, a directory (its files, in name order), or - for stdin\n");
}

int inject_main(int argc, char **argv, const char *conf_path)
{
	struct inj j = { 0 };
	struct items items = { 0 };
	struct str err = STR_INIT;
	struct conf *conf = NULL;
	const char *server = NULL;
	int i, rc = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || strcmp(a, "-") == 0)
			break;
		if (strcmp(a, "-t") == 0) {
			j.extract = true;
		} else if (strcmp(a, "--mbox") == 0) {
			j.mbox = true;
		} else if (strcmp(a, "-q") == 0) {
			j.quiet = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			inject_usage(stdout);
			return 0;
		} else if ((strcmp(a, "-f") == 0 || strcmp(a, "-r") == 0 ||
			    strcmp(a, "--server") == 0) && i + 1 < argc) {
			const char *v = argv[++i];

			if (a[1] == '-')
				server = v;
			else if (strpbrk(v, "<> \t\r\n")) {
				fprintf(stderr, "impetus inject: bad address '%s'\n", v);
				strlist_free(&j.rcpts);
				return EXIT_USAGE;
			} else if (a[1] == 'f')
				j.from = v;
			else
				strlist_add(&j.rcpts, v, strlen(v));
		} else {
			fprintf(stderr, "impetus inject: unknown option or missing argument '%s'\n", a);
			inject_usage(stderr);
			strlist_free(&j.rcpts);
			return EXIT_USAGE;
		}
	}
	if (i >= argc || (j.rcpts.n == 0 && !j.extract)) {
		fprintf(stderr, "impetus inject: %s\n", i >= argc ? "no PATH to inject" :
			"no recipient: give -r RCPT or -t");
		inject_usage(stderr);
		strlist_free(&j.rcpts);
		return EXIT_USAGE;
	}
	conf = submit_conf_load(conf_path, &err);
	if (conf == NULL) {
		fprintf(stderr, "impetus inject: %s\n", err.s);
		rc = 1;
		goto out;
	}
	j.hostname = conf_hostname(conf);
	j.addr = server ? xstrdup(server) : submit_listener(conf, &err);
	if (j.addr == NULL) {
		fprintf(stderr, "impetus inject: %s\n", err.s);
		rc = 1;
		goto out;
	}
	{
		struct passwd *pw = getpwuid(getuid());
		struct str u = STR_INIT;

		str_appendf(&u, "%s@%s", pw ? pw->pw_name : "root", j.hostname);
		j.user_addr = u.s;
	}

	/* The work list: files as named, a directory's regular files in name order. */
	for (; i < argc; i++) {
		struct stat st;

		if (strcmp(argv[i], "-") == 0) {
			items_add(&items, "-", "-", j.mbox);
			continue;
		}
		if (stat(argv[i], &st) < 0) {
			items_add(&items, argv[i], argv[i], j.mbox);	/* refused when read */
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			items_add(&items, argv[i], argv[i], j.mbox);
			continue;
		}
		DIR *d = opendir(argv[i]);
		struct dirent *de;
		struct strlist names = { 0 };

		while (d && (de = readdir(d)) != NULL) {
			struct str p = STR_INIT;

			if (de->d_name[0] == '.')
				continue;
			str_appendf(&p, "%s/%s", argv[i], de->d_name);
			if (stat(p.s, &st) == 0 && S_ISREG(st.st_mode))
				strlist_add(&names, p.s, p.len);
			str_free(&p);
		}
		if (d)
			closedir(d);
		else
			items_add(&items, argv[i], argv[i], j.mbox);
		qsort(names.v, names.n, sizeof(*names.v), cmp_str);
		for (size_t k = 0; k < names.n; k++)
			items_add(&items, names.v[k], names.v[k], j.mbox);
		strlist_free(&names);
	}

	j.tty = isatty(2) && !j.quiet;
	j.total = items.n;
	clock_gettime(CLOCK_MONOTONIC, &j.start);
	for (size_t k = 0; k < items.n; k++) {
		struct str buf = STR_INIT;
		int r = read_path(items.v[k].path, &buf);

		if (r < 0) {
			struct str why = STR_INIT;

			str_appendf(&why, "cannot read: %s", strerror(-r));
			result(&j, items.v[k].name, false, why.s);
			str_free(&why);
		} else if (items.v[k].mbox || is_mbox(&buf)) {
			send_mbox(&j, items.v[k].name, &buf);
		} else {
			send_one(&j, items.v[k].name, j.from ? j.from : j.user_addr,
				 buf.s ? buf.s : "", buf.len);
		}
		str_free(&buf);
	}
	progress(&j, true);
	if (j.connected)
		submit_close(&j.s);
	double t = now_since(&j.start);

	fflush(stdout);
	fprintf(stderr, "impetus inject: %zu of %zu message%s injected in %.2f s (%.1f msg/s), "
		"%zu refused\n", j.ok, j.done, j.done == 1 ? "" : "s", t,
		t > 0 ? (double)j.ok / t : 0.0, j.refused.n);
	for (size_t k = 0; k < j.refused.n; k++)
		fprintf(stderr, "impetus inject: refused %s\n", j.refused.v[k]);
	rc = j.refused.n ? 1 : 0;
out:
	for (size_t k = 0; k < items.n; k++) {
		free(items.v[k].name);
		free(items.v[k].path);
	}
	free(items.v);
	strlist_free(&j.rcpts);
	strlist_free(&j.refused);
	free(j.addr);
	free(j.user_addr);
	conf_unref(conf);
	str_free(&err);
	return rc;
}
