/*
 * sendmail.c - `impetus sendmail`: the sendmail command line, installable
 * as /usr/sbin/sendmail (the binary behaves so when its name is
 * "sendmail")
 *
 * Reads one message on stdin, completes its header the way sendmail does
 * (From, Date, Message-ID when missing; X-Authentication-Warning when a
 * user claims another sender with -f), and submits it to the daemon's
 * first ESMTP Listen on loopback. When the daemon does not answer, or
 * answers 4xx, the message goes into the pickup directory
 * (<Spoolbase>/pickup, src/pickup/pickup_file.h) written safely -
 * temporary file, fsync, rename, fsync of the directory - and the
 * daemon imports it when it runs: nothing is lost. docs/sendmail.md has
 * the options, the exit codes and the choices.
 *
 * Failures: a sysexits.h code and one line on stderr ("sendmail: ...").
 * Nothing is printed on success unless -v.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/fsutil.h"
#include "core/mem.h"
#include "message/envelope.h"
#include "message/rfc5322.h"
#include "pickup/pickup_file.h"
#include "tools/submit.h"
#include "tools/tools.h"

#define INPUT_MAX (UINT64_C(1) << 31)	/* a message larger than this is refused at once */

struct sm {
	bool extract;		/* -t */
	bool ignore_dots;	/* -i, -oi */
	bool verbose;		/* -v */
	bool smtp_stdio;	/* -bs */
	const char *from;	/* -f / -r */
	const char *fullname;	/* -F */
	const char *envid;	/* -V */
	const char *conf_path;	/* -C */
	int notify;		/* -N bits, 0 = none */
	int ret;		/* -R */
	int body;		/* -B */
	struct strlist rcpts;
	/* worked out */
	struct conf *conf;
	const char *hostname;
	char *login;
	char *user_addr;	/* login@hostname */
	char *sender;		/* the envelope sender */
	uid_t uid;
};

/* die_usage - the complaint about an argument, then the usage line, on stderr. */
static void die_usage(const char *what, const char *arg)
{
	fprintf(stderr, "sendmail: %s%s%s\n"
		"usage: sendmail [-t] [-i] [-f SENDER] [-F NAME] [-B 7BIT|8BITMIME] [-N DSN] "
		"[-R full|hdrs] [-V ENVID] [-C FILE] [-v] [-bm|-bs] [--] [RECIPIENT...]\n",
		what, arg ? " " : "", arg ? arg : "");
}

/* ==================== options ==================== */

/*
 * opt_arg - the argument of a flag that takes one: the rest of this word
 * ("-fADDR") or the next word ("-f ADDR"). NULL when there is none.
 */
static const char *opt_arg(int argc, char **argv, int *i, size_t at)
{
	if (argv[*i][at])
		return argv[*i] + at;
	if (*i + 1 < argc)
		return argv[++*i];
	return NULL;
}

/* parse_o - a -oX option: -oi counts, the others sendmail knows are ignored. */
static void parse_o(struct sm *m, const char *rest)
{
	if (strcmp(rest, "i") == 0)
		m->ignore_dots = true;
	/* -oem, -oee, -oep, -oeq, -oew, -odb, -odi, -odq, -om, -oA..., -oL.. : nothing to do here. */
}

/* parse_args - sendmail's command line into m; EX_OK, or EX_USAGE after a message. */
static int parse_args(struct sm *m, int argc, char **argv)
{
	int i = 1;

	for (; i < argc; i++) {
		const char *a = argv[i], *v;

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		switch (a[1]) {
		case 't':
			m->extract = true;
			break;
		case 'i':
			m->ignore_dots = true;
			break;
		case 'v':
			m->verbose = true;
			break;
		case 'n':	/* no aliasing */
		case 'm':	/* me too */
		case 'U':	/* initial user submission */
		case 'G':	/* gateway submission */
			break;
		case 'o':
			parse_o(m, a + 2);
			break;
		case 'e':	/* -eX: error mode, as -oeX */
			break;
		case 'd':	/* -d debug */
			break;
		case 'f':
		case 'r':
			if ((v = opt_arg(argc, argv, &i, 2)) == NULL)
				return die_usage("option requires an argument:", a), EX_USAGE;
			m->from = v;
			break;
		case 'F':
			if ((v = opt_arg(argc, argv, &i, 2)) == NULL)
				return die_usage("option requires an argument:", a), EX_USAGE;
			m->fullname = v;
			break;
		case 'C':
			if ((v = opt_arg(argc, argv, &i, 2)) == NULL)
				return die_usage("option requires an argument:", a), EX_USAGE;
			m->conf_path = v;
			break;
		case 'V':
			if ((v = opt_arg(argc, argv, &i, 2)) == NULL || !*v || strlen(v) > 100)
				return die_usage("bad or missing ENVID:", a), EX_USAGE;
			m->envid = v;
			break;
		case 'h':	/* hop count */
		case 'L':	/* syslog tag */
		case 'X':	/* traffic log */
		case 'O':	/* -O option=value */
		case 'A':	/* -Ac / -Am */
			if (a[2] == '\0' && opt_arg(argc, argv, &i, 2) == NULL)
				return die_usage("option requires an argument:", a), EX_USAGE;
			break;
		case 'B':
			if ((v = opt_arg(argc, argv, &i, 2)) == NULL)
				return die_usage("option requires an argument:", a), EX_USAGE;
			if (strcasecmp(v, "8BITMIME") == 0)
				m->body = ENVELOPE_BODY_8BITMIME;
			else if (strcasecmp(v, "7BIT") == 0)
				m->body = ENVELOPE_BODY_7BIT;
			else
				return die_usage("-B wants 7BIT or 8BITMIME, not", v), EX_USAGE;
			break;
		case 'N':
			if ((v = opt_arg(argc, argv, &i, 2)) == NULL ||
			    (m->notify = pickup_notify_parse(v, strlen(v))) < 0)
				return die_usage("-N wants never or a list of success,failure,delay:",
						 v ? v : a), EX_USAGE;
			break;
		case 'R':
			if ((v = opt_arg(argc, argv, &i, 2)) == NULL)
				return die_usage("option requires an argument:", a), EX_USAGE;
			if (strcasecmp(v, "full") == 0)
				m->ret = ENVELOPE_RET_FULL;
			else if (strcasecmp(v, "hdrs") == 0)
				m->ret = ENVELOPE_RET_HDRS;
			else
				return die_usage("-R wants full or hdrs, not", v), EX_USAGE;
			break;
		case 'b':
			if (strcmp(a, "-bm") == 0) {
				break;
			} else if (strcmp(a, "-bs") == 0) {
				m->smtp_stdio = true;
				break;
			} else if (strcmp(a, "-bi") == 0) {
				/* newaliases: impetus reads no aliases file. */
				exit(EX_OK);
			}
			fprintf(stderr, "sendmail: %s is not supported (impetus sendmail submits "
				"mail: -bm, -bs; the queue is `impetus mailq`)\n", a);
			return EX_USAGE;
		case 'q':
			fprintf(stderr, "sendmail: %s: impetusd runs its queue itself "
				"(`impetus flush domain D` for a domain)\n", a);
			return EX_USAGE;
		default:
			return die_usage("unknown option", a), EX_USAGE;
		}
	}
	for (; i < argc; i++)
		if (!addrlist_parse(argv[i], strlen(argv[i]), &m->rcpts))
			return die_usage("malformed recipient", argv[i]), EX_USAGE;
	return EX_OK;
}

/* ==================== the message ==================== */

/* qualify - an address with a domain: a bare local user gets @hostname. */
static char *qualify(const struct sm *m, const char *a)
{
	struct str s = STR_INIT;

	if (*a == '\0' || strchr(a, '@'))
		str_appends(&s, a);
	else
		str_appendf(&s, "%s@%s", a, m->hostname);
	return s.s;
}

/* address_ok - one an SMTP command line can carry. */
static bool address_ok(const char *a)
{
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p <= ' ' || *p == '<' || *p == '>' || *p == 0x7f)
			return false;
	return strlen(a) <= 512;
}

/* read_input - stdin up to EOF, or a lone "." line unless -i. */
static int read_input(const struct sm *m, struct str *in)
{
	char buf[65536];
	ssize_t r;

	while ((r = read(0, buf, sizeof(buf))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "sendmail: reading the message: %s\n", strerror(errno));
			return EX_IOERR;
		}
		str_append(in, buf, (size_t)r);
		if (in->len > INPUT_MAX) {
			fprintf(stderr, "sendmail: the message is larger than %llu bytes\n",
				(unsigned long long)INPUT_MAX);
			return EX_DATAERR;
		}
	}
	if (!m->ignore_dots) {
		/* A line with only "." ends the message, as sendmail reads it without -i. */
		for (size_t pos = 0; pos < in->len;) {
			const char *nl = memchr(in->s + pos, '\n', in->len - pos);
			size_t n = nl ? (size_t)(nl - in->s - pos) : in->len - pos;

			if ((n == 1 && in->s[pos] == '.') || (n == 2 && in->s[pos] == '.' && in->s[pos + 1] == '\r')) {
				in->len = pos;
				in->s[pos] = '\0';
				break;
			}
			pos += n + 1;
		}
	}
	/* An mbox "From " line is not part of the message. */
	if (in->len > 5 && memcmp(in->s, "From ", 5) == 0) {
		const char *nl = memchr(in->s, '\n', in->len);
		size_t n = nl ? (size_t)(nl - in->s) + 1 : in->len;

		memmove(in->s, in->s + n, in->len - n);
		in->len -= n;
		in->s[in->len] = '\0';
	}
	return EX_OK;
}

/* has_field - whether the header block msg[0..hdrs) has a field called name. */
static bool has_field(const char *msg, size_t hdrs, const char *name)
{
	struct rfc5322_field f;
	size_t pos = 0;

	while (rfc5322_field_next(msg, hdrs, &pos, &f))
		if (f.name_len == strlen(name) && strncasecmp(f.name, name, f.name_len) == 0)
			return true;
	return false;
}

/* phrase - a display name, quoted when it holds a special. */
static void phrase(struct str *out, const char *name)
{
	if (strpbrk(name, "()<>[]:;@\\,.\"") == NULL) {
		str_appends(out, name);
		return;
	}
	str_appendc(out, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '"' || *p == '\\')
			str_appendc(out, '\\');
		str_appendc(out, *p);
	}
	str_appendc(out, '"');
}

/*
 * complete - the message as submitted: our fields first (the warning,
 * then From, Date, Message-ID when missing), the header without Bcc, an
 * empty line when the input had no header, the body.
 */
static void complete(const struct sm *m, const struct str *in, bool warn, struct str *out)
{
	const char *msg = in->s ? in->s : "";
	size_t hdrs = rfc5322_header_end(msg, in->len), pos = 0, kept = 0;
	struct rfc5322_field f;
	char date[RFC5322_DATE_SIZE];
	const char *eol = "\n";

	if (warn)
		str_appendf(out, "X-Authentication-Warning: %s: %s set sender to %s using -f%s",
			    m->hostname, m->login, *m->sender ? m->sender : "<>", eol);
	if (!has_field(msg, hdrs, "From")) {
		const char *name = m->fullname;
		struct passwd *pw = getpwuid(m->uid);
		char *gecos = NULL;

		if (name == NULL && getenv("NAME") && *getenv("NAME"))
			name = getenv("NAME");
		if (name == NULL && pw && pw->pw_gecos && *pw->pw_gecos) {
			gecos = xstrndup(pw->pw_gecos, strcspn(pw->pw_gecos, ","));
			name = *gecos ? gecos : NULL;
		}
		str_appends(out, "From: ");
		if (name) {
			phrase(out, name);
			str_appendf(out, " <%s>%s", *m->sender ? m->sender : m->user_addr, eol);
		} else {
			str_appendf(out, "%s%s", *m->sender ? m->sender : m->user_addr, eol);
		}
		free(gecos);
	}
	if (!has_field(msg, hdrs, "Date"))
		str_appendf(out, "Date: %s%s", rfc5322_format_date((int64_t)time(NULL), true, date), eol);
	if (!has_field(msg, hdrs, "Message-ID")) {
		struct timeval tv;
		uint32_t r = 0;

		gettimeofday(&tv, NULL);
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (uint32_t)tv.tv_usec;
		str_appendf(out, "Message-ID: <%lld.%06ld.%ld.%08x@%s>%s", (long long)tv.tv_sec,
			    (long)tv.tv_usec, (long)getpid(), r, m->hostname, eol);
	}
	/* The header as given, without Bcc (the recipients are in the envelope). */
	while (rfc5322_field_next(msg, hdrs, &pos, &f)) {
		size_t start = (size_t)(f.name - msg);

		if (f.name_len == 3 && strncasecmp(f.name, "Bcc", 3) == 0) {
			str_append(out, msg + kept, start - kept);
			kept = pos;
		}
	}
	str_append(out, msg + kept, hdrs - kept);
	if (hdrs == 0 && !(in->len > 0 && (msg[0] == '\n' || (msg[0] == '\r' && in->len > 1 && msg[1] == '\n'))))
		str_appends(out, eol);	/* no header: the body needs its separator */
	str_append(out, msg + hdrs, in->len - hdrs);
}

/* ==================== submission ==================== */

enum outcome { SUBMITTED, RETRY_LATER, REFUSED };

/* xtext - RFC 3461 xtext of s. */
static void xtext(struct str *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
			str_appendf(out, "+%02X", *p);
		else
			str_appendc(out, (char)*p);
	}
}

/*
 * smtp_submit - one transaction with the daemon. REFUSED (with *code
 * set, and *at_rcpt when a recipient was refused) on a 5xx, RETRY_LATER when the daemon cannot be reached or says
 * 4xx, SUBMITTED on the final 250.
 */
static enum outcome smtp_submit(const struct sm *m, const char *addr, const struct str *msg,
				int *code, bool *at_rcpt)
{
	struct submit s;
	struct str err = STR_INIT, text = STR_INIT, line = STR_INIT, data = STR_INIT;
	enum outcome rc = RETRY_LATER;
	int c;

	if (submit_connect(&s, addr, &err) < 0) {
		if (m->verbose)
			fprintf(stderr, "sendmail: %s\n", err.s);
		goto out_noconn;
	}
	s.trace = m->verbose ? stderr : NULL;
	if (submit_hello(&s, m->hostname, &text) < 0)
		goto out;
	str_appendf(&line, "MAIL FROM:<%s>", m->sender);
	if (m->body == ENVELOPE_BODY_8BITMIME && s.eightbit)
		str_appends(&line, " BODY=8BITMIME");
	if (s.dsn && m->ret)
		str_appends(&line, m->ret == ENVELOPE_RET_FULL ? " RET=FULL" : " RET=HDRS");
	if (s.dsn && m->envid) {
		str_appends(&line, " ENVID=");
		xtext(&line, m->envid);
	}
	c = submit_cmd(&s, line.s, &text);
	if (c != 250)
		goto reply;
	for (size_t i = 0; i < m->rcpts.n; i++) {
		str_clear(&line);
		str_appendf(&line, "RCPT TO:<%s>", m->rcpts.v[i]);
		if (s.dsn && m->notify) {
			const char *sep = "";

			str_appends(&line, " NOTIFY=");
			if (m->notify & ENVELOPE_NOTIFY_NEVER)
				str_appends(&line, "NEVER");
			if (m->notify & ENVELOPE_NOTIFY_SUCCESS)
				str_appendf(&line, "%sSUCCESS", sep), sep = ",";
			if (m->notify & ENVELOPE_NOTIFY_FAILURE)
				str_appendf(&line, "%sFAILURE", sep), sep = ",";
			if (m->notify & ENVELOPE_NOTIFY_DELAY)
				str_appendf(&line, "%sDELAY", sep);
		}
		c = submit_cmd(&s, line.s, &text);
		if (c != 250 && c != 251) {
			fprintf(stderr, "sendmail: recipient <%s>: %s\n", m->rcpts.v[i], text.s);
			*at_rcpt = true;
			goto reply;
		}
	}
	c = submit_cmd(&s, "DATA", &text);
	if (c != 354)
		goto reply;
	submit_data_encode(&data, msg->s ? msg->s : "", msg->len);
	if (submit_write(&s, data.s, data.len) < 0)
		goto out;
	c = submit_reply(&s, &text);
	if (c == 250) {
		rc = SUBMITTED;
		goto out;
	}
reply:
	*code = c;
	if (c >= 500) {
		rc = REFUSED;
		fprintf(stderr, "sendmail: the daemon refused the message: %s\n", text.s);
	} else if (m->verbose) {
		fprintf(stderr, "sendmail: the daemon answered %d: %s\n", c, text.s);
	}
out:
	submit_close(&s);
out_noconn:
	str_free(&err);
	str_free(&text);
	str_free(&line);
	str_free(&data);
	return rc;
}

/*
 * pickup_write - leave the message in <Spoolbase>/pickup: a temporary
 * ".tmp." file, written and fsynced, renamed to its final name, the
 * directory fsynced. The name (time, pid, random) is unique, and is what
 * the daemon records to import it exactly once.
 */
static int pickup_write(const struct sm *m, const struct str *msg, char **where)
{
	struct str dir = STR_INIT, tmp = STR_INIT, final = STR_INIT, file = STR_INIT;
	struct pickup_file f = { 0 };
	struct pickup_span *spans = xcalloc(m->rcpts.n, sizeof(*spans));
	struct timeval tv;
	uint32_t r = 0;
	int fd = -1, rc;

	/*
	 * impetusd makes the drop box at start; when it never ran, we do, as
	 * it would: the spool searchable (not readable) by others, the drop
	 * box writable by all, sticky (the umask would narrow mkdir's mode).
	 */
	str_appendf(&dir, "%s/pickup", conf_str(m->conf, CONF_OPT_SPOOLBASE));
	if (access(dir.s, F_OK) < 0) {
		rc = fs_mkdir_p(conf_str(m->conf, CONF_OPT_SPOOLBASE), 0711);
		if (rc == 0 && mkdir(dir.s, 01733) < 0 && errno != EEXIST)
			rc = -errno;
		if (rc == 0)
			chmod(dir.s, 01733);
		if (rc < 0)
			goto out;
	}
	gettimeofday(&tv, NULL);
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)tv.tv_usec ^ (uint32_t)getpid();
	str_appendf(&final, "%s/%lld.%06ld.%ld.%08x", dir.s, (long long)tv.tv_sec, (long)tv.tv_usec,
		    (long)getpid(), r);
	str_appendf(&tmp, "%s/.tmp.%lld.%06ld.%ld.%08x", dir.s, (long long)tv.tv_sec,
		    (long)tv.tv_usec, (long)getpid(), r);

	f.uid = (int64_t)m->uid;
	f.sender = (struct pickup_span){ m->sender, strlen(m->sender) };
	for (size_t i = 0; i < m->rcpts.n; i++)
		spans[i] = (struct pickup_span){ m->rcpts.v[i], strlen(m->rcpts.v[i]) };
	f.rcpts = spans;
	f.nrcpts = m->rcpts.n;
	f.notify = (uint8_t)m->notify;
	f.ret = (uint8_t)m->ret;
	f.body_type = (uint8_t)m->body;
	if (m->envid)
		f.envid = (struct pickup_span){ m->envid, strlen(m->envid) };
	pickup_file_format(&file, &f);
	str_append(&file, msg->s ? msg->s : "", msg->len);

	fd = open(tmp.s, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	/* Readable by the daemon's user; nobody else can list the directory to find it. */
	if (fchmod(fd, 0644) < 0)
		rc = -errno;
	else if ((rc = fs_pwrite_all(fd, file.s, file.len, 0)) == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp.s);
		goto out;
	}
	if (close(fd) < 0 || rename(tmp.s, final.s) < 0) {
		fd = -1;
		rc = -errno;
		unlink(tmp.s);
		goto out;
	}
	fd = -1;
	/*
	 * Not durable, not left: exit 75 must mean the caller still holds the
	 * message, so a retry cannot make a second copy.
	 */
	rc = fs_fsync_dir(dir.s);
	if (rc < 0)
		unlink(final.s);
	else
		*where = xstrdup(final.s);
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		*where = xstrdup(dir.s);
	free(spans);
	str_free(&dir);
	str_free(&tmp);
	str_free(&final);
	str_free(&file);
	return rc;
}

/* ==================== -bs ==================== */

/*
 * relay_stdio - -bs: the SMTP dialogue on stdin/stdout goes to the
 * daemon's listener byte for byte, until either side closes.
 */
static int relay_stdio(const struct sm *m, const char *addr)
{
	struct submit s;
	struct str err = STR_INIT;
	bool in_open = true;

	if (submit_connect(&s, addr, &err) < 0) {
		printf("421 4.3.2 %s mail system not running (%s); try again later\r\n", m->hostname,
		       err.s);
		fflush(stdout);
		str_free(&err);
		return EX_TEMPFAIL;
	}
	str_free(&err);
	for (;;) {
		struct pollfd p[2] = { { .fd = s.fd, .events = POLLIN }, { .fd = 0, .events = POLLIN } };
		char buf[65536];
		ssize_t r;

		if (poll(p, in_open ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents) {
			r = recv(s.fd, buf, sizeof(buf), 0);
			if (r <= 0)
				break;
			if (fwrite(buf, 1, (size_t)r, stdout) != (size_t)r || fflush(stdout) != 0)
				break;
		}
		if (in_open && p[1].revents) {
			r = read(0, buf, sizeof(buf));
			if (r <= 0) {
				in_open = false;
				shutdown(s.fd, SHUT_WR);
			} else if (submit_write(&s, buf, (size_t)r) < 0) {
				break;
			}
		}
	}
	close(s.fd);
	str_free(&s.in);
	return EX_OK;
}

/* ==================== main ==================== */

/* load - configuration, hostname and the invoking user. */
static int load(struct sm *m)
{
	struct str err = STR_INIT;
	struct passwd *pw;

	m->conf = submit_conf_load(m->conf_path, &err);
	if (m->conf == NULL) {
		fprintf(stderr, "sendmail: %s\n", err.s);
		str_free(&err);
		return EX_CONFIG;
	}
	str_free(&err);
	m->hostname = conf_hostname(m->conf);
	m->uid = getuid();
	pw = getpwuid(m->uid);
	if (pw) {
		m->login = xstrdup(pw->pw_name);
	} else {
		struct str s = STR_INIT;

		str_appendf(&s, "uid%lu", (unsigned long)m->uid);
		m->login = s.s;
	}
	m->user_addr = qualify(m, m->login);
	return EX_OK;
}

/* trusted - root and the daemon's own user may claim any sender. */
static bool trusted(const struct sm *m)
{
	const char *user = conf_str(m->conf, CONF_OPT_USER);
	struct passwd *pw;

	if (m->uid == 0)
		return true;
	pw = user && *user ? getpwnam(user) : NULL;
	return pw && pw->pw_uid == m->uid;
}

int sendmail_main(int argc, char **argv, const char *conf_path)
{
	struct sm m = { .conf_path = conf_path };
	struct str in = STR_INIT, msg = STR_INIT, err = STR_INIT;
	struct strlist qualified = { 0 };
	char *addr = NULL, *where = NULL;
	bool warn = false;
	int rc, code = 0;

	rc = parse_args(&m, argc, argv);
	if (rc != EX_OK)
		goto out;
	rc = load(&m);
	if (rc != EX_OK)
		goto out;
	addr = submit_listener(m.conf, &err);
	if (m.smtp_stdio) {
		if (addr == NULL) {
			printf("421 4.3.5 %s no ESMTP listener configured\r\n", m.hostname);
			rc = EX_CONFIG;
			goto out;
		}
		rc = relay_stdio(&m, addr);
		goto out;
	}

	/* The sender: -f (a bare user qualified, "<>" the null sender), else the user. */
	if (m.from) {
		const char *f = m.from;
		char *bare = NULL;
		size_t n = strlen(f);

		if (n >= 2 && f[0] == '<' && f[n - 1] == '>')
			f = bare = xstrndup(f + 1, n - 2);
		m.sender = qualify(&m, f);
		free(bare);
		if (!address_ok(m.sender)) {
			fprintf(stderr, "sendmail: bad sender address '%s'\n", m.from);
			rc = EX_USAGE;
			goto out;
		}
		warn = !trusted(&m) && strcasecmp(m.sender, m.user_addr) != 0;
	} else {
		m.sender = xstrdup(m.user_addr);
	}

	rc = read_input(&m, &in);
	if (rc != EX_OK)
		goto out;
	if (in.len > 0 && memchr(in.s, '\0', in.len)) {
		fprintf(stderr, "sendmail: the message holds a NUL byte\n");
		rc = EX_DATAERR;
		goto out;
	}
	if (m.extract)
		header_rcpts(in.s ? in.s : "", in.len, &m.rcpts);
	for (size_t i = 0; i < m.rcpts.n; i++) {
		char *q = qualify(&m, m.rcpts.v[i]);

		if (*q == '\0' || !address_ok(q)) {
			fprintf(stderr, "sendmail: bad recipient address '%s'\n", m.rcpts.v[i]);
			free(q);
			rc = EX_NOUSER;
			goto out;
		}
		strlist_add_unique(&qualified, q);
		free(q);
	}
	strlist_free(&m.rcpts);
	m.rcpts = qualified;
	qualified = (struct strlist){ 0 };
	if (m.rcpts.n == 0) {
		fprintf(stderr, "sendmail: no recipients%s\n",
			m.extract ? " (none in To, Cc or Bcc)" : " (give them, or -t)");
		rc = EX_USAGE;
		goto out;
	}
	complete(&m, &in, warn, &msg);

	bool at_rcpt = false;
	enum outcome o = addr ? smtp_submit(&m, addr, &msg, &code, &at_rcpt) : RETRY_LATER;
	if (o == SUBMITTED) {
		rc = EX_OK;
	} else if (o == REFUSED) {
		rc = at_rcpt ? EX_NOUSER : EX_DATAERR;
	} else {
		int w = pickup_write(&m, &msg, &where);

		if (w < 0) {
			fprintf(stderr, "sendmail: the daemon is not answering%s%s and the message "
				"cannot be left in %s: %s\n", addr ? " on " : "", addr ? addr : "",
				where, strerror(-w));
			rc = EX_TEMPFAIL;
		} else {
			if (m.verbose)
				fprintf(stderr, "sendmail: the daemon is not answering; the message "
					"waits in %s\n", where);
			rc = EX_OK;
		}
	}
out:
	strlist_free(&m.rcpts);
	strlist_free(&qualified);
	str_free(&in);
	str_free(&msg);
	str_free(&err);
	free(addr);
	free(where);
	free(m.login);
	free(m.user_addr);
	free(m.sender);
	conf_unref(m.conf);
	fflush(stdout);
	return rc;
}
