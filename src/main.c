/*
 * main.c - impetusd: start-up, signals, privilege drop, shutdown
 *
 * Start-up order: read the configuration (a file or the embedded default);
 * bind the listeners while still privileged; drop to User; open the logs;
 * open the spool, which replays every segment and hands each live message
 * to the queue; start the spool thread and the I/O loops; run the
 * scheduler loop on this thread until SIGTERM.
 *
 * Signals are blocked in every thread but this one and handled as libevent
 * events on the scheduler loop: SIGTERM/SIGINT start a graceful shutdown,
 * SIGHUP reopens the logs and reloads the configuration. SIGPIPE and
 * SIGXFSZ are ignored: a dead peer or a full file is an error return,
 * never a death.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "api/api.h"
#include "api/api_console.h"
#include "api/api_history.h"
#include "api/api_module.h"
#include "api/api_runtime.h"
#include "api/api_services.h"
#include "config/config.h"
#include "control/control.h"
#include "events/events.h"
#include "http/http.h"
#include "dns/dns.h"
#include "core/fsutil.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/pool.h"
#include "core/str.h"
#include "log/log.h"
#include "msgs/msgs.h"
#include "pickup/pickup.h"
#include "queue/queue.h"
#include "smtp/smtp_server.h"
#include "spool/spool.h"

#define HEARTBEAT_SECONDS 60
/*
 * Descriptors beyond one per session and outbound connection: logs, spool
 * segments, event loops' epoll and wake-up descriptors, DNS sockets, the
 * listeners, the accept reserve descriptor, and headroom.
 */
#define FD_RESERVE 1024
/* What "no limit" (0) counts as when sizing RLIMIT_NOFILE. */
#define FD_UNLIMITED_COUNT (1 << 20)

struct daemon {
	const char *conf_path;		/* NULL: embedded default */
	struct conf *conf;
	struct loop *scheduler;
	struct loop **io;
	size_t nio;
	struct spool *spool;
	struct pickup *pickup;		/* the sendmail drop box importer (scheduler) */
	struct pool *io_pool;
	struct pool *cpu_pool;
	struct dns *dns;
	struct queue *queue;
	struct smtp_server *smtp;
	struct control *control;	/* the console's sockets (Control_Listener) */
	struct http_server *http;	/* the HTTP_Listener's sockets */
	struct events *events;		/* event log and webhooks (src/events/) */
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *flush_timer, *heartbeat_timer;
	bool stopping;
	bool spool_stopped;		/* spool_stop ran: late moved notices are dropped */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: impetusd [-c FILE] [-t] [-V] [--list]\n"
		"  -c FILE  configuration file (default: the embedded etc/impetus.conf)\n"
		"  -t       check the configuration and exit 0 (valid) or 1\n"
		"  -V       print the version and exit\n"
		"  --list   print every option (the table of docs/configuration.md) and exit\n");
}

static struct conf *load_conf(const char *path, struct str *err)
{
	return path ? conf_load_file(path, err) : conf_load_default(err);
}

/*
 * warn_readable_secret - the configuration file holds a password for
 * outbound AUTH in clear text (as in Momentum) and others may read it:
 * say so in the paniclog. A plain text search of the main file only (not
 * its includes); a warning, never a refusal to start.
 */
static void warn_readable_secret(const char *path)
{
	static const char opt[] = "outbound_smtp_auth_pass";
	struct stat st;
	struct str text = STR_INIT;
	char buf[8192];
	size_t n;
	FILE *f;

	if (path == NULL || stat(path, &st) != 0 || !(st.st_mode & S_IROTH))
		return;
	f = fopen(path, "r");
	if (f == NULL)
		return;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && text.len < (64u << 20))
		str_append(&text, buf, n);
	fclose(f);
	for (size_t i = 0; i + sizeof(opt) - 1 <= text.len; i++) {
		if (strncasecmp(text.s + i, opt, sizeof(opt) - 1) == 0) {
			log_panic("config file=%s holds Outbound_SMTP_AUTH_Pass and is readable by "
				  "everyone (mode %03o): chmod o-rwx it", path,
				  (unsigned)(st.st_mode & 0777));
			break;
		}
	}
	if (text.s)
		explicit_bzero(text.s, text.cap);
	str_free(&text);
}

/* ------------------------------------------------------------------ */
/* scheduler events                                                    */

static void on_message(void *ctx, struct envelope *msg)
{
	struct daemon *d = ctx;

	queue_accept(d->queue, msg);
}

static void on_recovered(void *ctx, struct envelope *msg)
{
	struct daemon *d = ctx;

	if (d->pickup)
		pickup_note_recovered(d->pickup, msg);
	queue_recovered(d->queue, msg);
}

/*
 * on_spool_moved - compaction relocated a message (scheduler thread): the
 * queue's entries follow. After spool_stop the spool is gone and the next
 * start recovers the copy anyway.
 */
static void on_spool_moved(void *ctx, impetus_id id, const struct envelope_loc *loc)
{
	struct daemon *d = ctx;

	if (!d->spool_stopped)
		queue_moved(d->queue, id, loc);
}

/* on_spool_report - damage found by recovery, write errors: to the paniclog. */
static void on_spool_report(void *ctx, const char *line)
{
	log_panic("%s", line);
}

/* shutdown_grace - Shutdown_Grace of the configuration in force, in seconds. */
static int shutdown_grace(const struct daemon *d)
{
	return (int)conf_int(d->conf, CONF_OPT_SHUTDOWN_GRACE);
}

static void on_queue_done(void *arg)
{
	struct daemon *d = arg;

	log_panic("shutdown outbound=closed");
	loop_stop(d->scheduler);
}

static void on_sessions_done(void *arg)
{
	struct daemon *d = arg;

	log_panic("shutdown sessions=closed");
	queue_shutdown(d->queue, shutdown_grace(d), on_queue_done, d);
}

/* on_injection_done - the HTTP injection requests are answered: close the SMTP sessions. */
static void on_injection_done(void *arg)
{
	struct daemon *d = arg;

	smtp_server_shutdown(d->smtp, shutdown_grace(d), on_sessions_done, d);
}

/* daemon_shutdown - the graceful stop SIGTERM starts (the console's `shutdown` too). */
static void daemon_shutdown(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = true;
	log_panic("shutdown %s", why);
	/* Injection requests in flight are answered first, while the queue still takes mail. */
	http_inject_shutdown(shutdown_grace(d), on_injection_done, d);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
	char why[32];

	snprintf(why, sizeof(why), "signal=%d", (int)sig);
	daemon_shutdown(arg, why);
}

/*
 * daemon_reload - what SIGHUP does (the console's `config reload` too):
 * reopen the logs, load the configuration and its modules, and only when
 * all of that worked switch to it. Returns 0, or -1 with the error in err
 * and the running configuration kept.
 */
static int daemon_reload(struct daemon *d, struct str *err)
{
	log_reopen();
	struct conf *c = load_conf(d->conf_path, err);
	struct api_gen *g = c ? api_modules_load(c, err) : NULL;
	if (g && api_modules_start(g, err) < 0)
		g = NULL;
	if (g == NULL) {
		log_panic("reload failed, keeping the running configuration: %s", str_cstr(err));
		conf_unref(c);
		return -1;
	}
	smtp_server_set_conf(d->smtp, c);	/* and its listeners */
	control_reload(d->control, c);
	http_reload(d->http, c);
	events_set_conf(d->events, c);
	queue_set_conf(d->queue, c);
	api_runtime_set_conf(c);
	conf_unref(d->conf);
	d->conf = c;
	log_panic("reload configuration=%s", d->conf_path ? d->conf_path : "(default)");
	warn_readable_secret(d->conf_path);
	return 0;
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct str err = STR_INIT;

	daemon_reload(arg, &err);
	str_free(&err);
}

/* The console's operations commands (api_console_ops.c) reach the daemon through these. */
static int console_reload(void *ctx, struct str *err)
{
	return daemon_reload(ctx, err);
}

static void console_shutdown(void *ctx)
{
	daemon_shutdown(ctx, "console=shutdown");
}

static struct dns *console_dns(void *ctx)
{
	return ((struct daemon *)ctx)->dns;
}

static const char *console_conf_path(void *ctx)
{
	return ((struct daemon *)ctx)->conf_path;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	log_flush();
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%lld@@@@M", (long long)time(NULL));

	log_line(LOG_MAIN, line, (size_t)n);
}

/* ------------------------------------------------------------------ */
/* start-up helpers                                                    */

/* fd_count_for - descriptors an option's value asks for (0 = no limit). */
static rlim_t fd_count_for(int64_t v)
{
	return v > 0 ? (rlim_t)v : (rlim_t)FD_UNLIMITED_COUNT;
}

/*
 * raise_fd_limit - RLIMIT_NOFILE large enough for the configured limits:
 * the largest Service_Sessions in effect on a listener plus
 * Server_Max_Outbound_Connections plus FD_RESERVE. The soft limit is
 * raised up to the hard limit (no privilege needed); if the hard limit is
 * lower, say so in the paniclog with both numbers, because accept then
 * fails with EMFILE long before Service_Sessions is reached. Start-up
 * only: a reload does not change it.
 */
static void raise_fd_limit(const struct conf *conf)
{
	struct rlimit rl;
	rlim_t sessions = 0;

	/* Each listener checks its own Service_Sessions against all sessions. */
	for (size_t i = 0; i < conf_listener_count(conf); i++) {
		rlim_t n = fd_count_for(conf_listener_get(conf, conf_listener_at(conf, i),
							  CONF_OPT_CONCURRENCY)->u.i);
		if (n > sessions)
			sessions = n;
	}
	rlim_t needed = sessions +
			fd_count_for(conf_int(conf, CONF_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS)) +
			FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_panic("fd_limit getrlimit error=\"%s\"", strerror(errno));
		return;
	}
	rlim_t want = needed < rl.rlim_max ? needed : rl.rlim_max;
	if (rl.rlim_cur < want) {
		struct rlimit nl = { want, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
			rl.rlim_cur = want;
		else
			log_panic("fd_limit setrlimit soft=%llu error=\"%s\"",
				  (unsigned long long)want, strerror(errno));
	}
	if (rl.rlim_cur < needed)
		log_panic("fd_limit too low needed=%llu have=%llu hard=%llu: Service_Sessions and "
			  "Server_Max_Outbound_Connections cannot be reached; raise the hard limit "
			  "(ulimit -Hn, systemd LimitNOFILE=) or lower those options",
			  (unsigned long long)needed, (unsigned long long)rl.rlim_cur,
			  (unsigned long long)rl.rlim_max);
	else
		log_panic("fd_limit needed=%llu have=%llu", (unsigned long long)needed,
			  (unsigned long long)rl.rlim_cur);
}

/* drop_privileges - become User if one is configured and we are root. */
static int drop_privileges(const char *user, struct str *err)
{
	struct passwd *pw;

	if (user == NULL || *user == '\0')
		return 0;
	if (geteuid() != 0) {
		log_panic("User=%s ignored: not running as root", user);
		return 0;
	}
	pw = getpwnam(user);
	if (pw == NULL) {
		str_appendf(err, "User \"%s\" does not exist", user);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		str_appendf(err, "cannot become user %s: %s", user, strerror(errno));
		return -1;
	}
	return 0;
}

static size_t io_loop_count(const struct conf *c)
{
	int64_t n = conf_int(c, CONF_OPT_EVENT_LOOPS);

	if (n <= 0) {
		/*
		 * Half the cores: the scheduler, the spool thread and the pools
		 * need the rest, and fewer loops each find more ready sockets per
		 * wake-up (issue 10: on 2 cores one loop relayed with 15-25 % less
		 * CPU per message than two).
		 */
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		n = cores >= 2 ? cores / 2 : 1;
	}
	return (size_t)n;
}

/* start_dns - the delivery resolver on the scheduler loop, from the configuration. */
static int start_dns(struct daemon *d, struct str *err)
{
	const struct conf_value *servers = conf_get(d->conf, CONF_OPT_DNS_SERVERS, NULL, NULL);
	struct str list = STR_INIT;
	struct dns_options o = { 0 };

	for (size_t i = 0; i < servers->u.list.n; i++)
		str_appendf(&list, "%s%s", i ? "," : "", servers->u.list.v[i]);
	o.servers = list.len ? list.s : NULL;
	o.resolv_conf = conf_str(d->conf, CONF_OPT_RESOLV_CONF);
	o.min_ttl = (uint32_t)conf_int(d->conf, CONF_OPT_MIN_DNS_TTL);
	o.max_ttl = (uint32_t)conf_int(d->conf, CONF_OPT_MAX_DNS_TTL);
	d->dns = dns_new(loop_base(d->scheduler), &o, err);
	str_free(&list);
	return d->dns ? 0 : -1;
}

static struct event *add_timer(struct daemon *d, int seconds, event_callback_fn fn)
{
	struct timeval tv = { seconds, 0 };
	struct event *ev = event_new(loop_base(d->scheduler), -1, EV_PERSIST, fn, d);

	event_add(ev, &tv);
	return ev;
}

static void fatal(struct str *err, const char *what)
{
	fprintf(stderr, "impetusd: %s: %s\n", what, str_cstr(err));
	log_panic("fatal %s: %s", what, str_cstr(err));
	log_flush();
	exit(1);
}

int main(int argc, char **argv)
{
	struct daemon d = { 0 };
	struct str err = STR_INIT;
	bool check_only = false;
	int opt;
	sigset_t sigs;

	static const struct option longopts[] = {
		{ "list", no_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'L': {
			struct str table = STR_INIT;

			conf_doc_option_table(&table);
			fputs(table.s, stdout);
			str_free(&table);
			return 0;
		}
		case 'c':
			d.conf_path = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'V':
			printf("impetusd %s\n", IMPETUS_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	d.conf = load_conf(d.conf_path, &err);
	/* Modules are found and their stanzas checked now, before any port is bound. */
	struct api_gen *gen = d.conf ? api_modules_load(d.conf, &err) : NULL;
	if (gen == NULL) {
		fprintf(stderr, "%s\n", str_cstr(&err));
		str_free(&err);
		conf_unref(d.conf);
		return 1;
	}
	if (check_only) {
		printf("impetusd: configuration %s is valid\n", d.conf_path ? d.conf_path : "(default)");
		api_gen_release(gen);
		conf_unref(d.conf);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	d.scheduler = loop_new("scheduler", MSGS_SCHEDULER);
	d.nio = io_loop_count(d.conf);
	d.io = xcalloc(d.nio, sizeof(*d.io));
	for (size_t i = 0; i < d.nio; i++) {
		char name[32];
		snprintf(name, sizeof(name), "io%zu", i);
		d.io[i] = loop_new(name, MSGS_IO);
	}
	d.queue = queue_new(d.conf);
	d.smtp = smtp_server_new(d.scheduler, d.io, d.nio, NULL, on_message, &d);
	if (smtp_server_listen(d.smtp, d.conf, &err) < 0)
		fatal(&err, "listen");
	d.control = control_new(d.scheduler, d.conf, &err);
	if (d.control == NULL)
		fatal(&err, "listen");
	d.http = http_new(d.scheduler, d.conf, &err);
	if (d.http == NULL)
		fatal(&err, "listen");
	if (drop_privileges(conf_str(d.conf, CONF_OPT_USER), &err) < 0)
		fatal(&err, "privileges");
	if (log_open(conf_str(d.conf, CONF_OPT_LOG_DIRECTORY), &err) < 0)
		fatal(&err, "logs");
	http_announce(d.http, d.conf);
	warn_readable_secret(d.conf_path);
	raise_fd_limit(d.conf);

	int rc = fs_mkdir_p(conf_str(d.conf, CONF_OPT_SPOOLBASE), 0700);
	if (rc < 0) {
		str_appendf(&err, "cannot create %s: %s", conf_str(d.conf, CONF_OPT_SPOOLBASE),
			    strerror(-rc));
		fatal(&err, "spool");
	}
	d.events = events_new(conf_str(d.conf, CONF_OPT_SPOOLBASE), &err);
	if (d.events == NULL)
		fatal(&err, "events");
	events_set_conf(d.events, d.conf);
	/* Before recovery: it tells the importer which pickup files were spooled. */
	d.pickup = pickup_new(conf_str(d.conf, CONF_OPT_SPOOLBASE), &err);
	if (d.pickup == NULL)
		fatal(&err, "pickup");
	struct spool_options so = { 0 };
	so.report = on_spool_report;
	so.segment_size = (uint64_t)conf_int(d.conf, CONF_OPT_SPOOL_SEGMENT_SIZE);
	so.compact_threshold = (uint32_t)conf_int(d.conf, CONF_OPT_SPOOL_COMPACTION_THRESHOLD);
	so.batch_wait_us = (uint32_t)conf_int(d.conf, CONF_OPT_SPOOL_BATCH_WAIT);
	so.moved = on_spool_moved;
	so.moved_loop = d.scheduler;
	so.moved_ctx = &d;
	so.no_sync = getenv("IMPETUS_UNSAFE_NO_FSYNC") != NULL;
	d.spool = spool_open(conf_str(d.conf, CONF_OPT_SPOOLBASE), &so, on_recovered, &d, &err);
	if (d.spool == NULL)
		fatal(&err, "spool");
	/*
	 * The IO pool: blocking file work off the loops. Large inbound
	 * messages stream to disk through it; bounces are rendered on it.
	 */
	d.io_pool = pool_new("IO", (size_t)conf_int(d.conf, CONF_OPT_IO_THREADS));
	d.cpu_pool = pool_new("CPU", (size_t)conf_int(d.conf, CONF_OPT_CPU_THREADS));
	smtp_server_set_spool(d.smtp, d.spool, d.io_pool);
	struct api_runtime rt = {
		.scheduler = d.scheduler, .io = d.io, .nio = d.nio, .cpu_pool = d.cpu_pool,
		.io_pool = d.io_pool, .spool = d.spool, .queue = d.queue, .smtp = d.smtp,
	};
	api_runtime_set(&rt);
	api_runtime_set_conf(d.conf);
	/*
	 * Module instances start now: the daemon's objects exist, no session
	 * or delivery has begun, and the I/O loops are not running yet.
	 */
	if (api_modules_start(gen, &err) < 0)
		fatal(&err, "modules");
	log_panic("startup version=%s spool=%s recovered_messages=%zu recovered_recipients=%zu io_loops=%zu",
		  IMPETUS_VERSION, conf_str(d.conf, CONF_OPT_SPOOLBASE),
		  queue_message_count(d.queue), queue_recipient_count(d.queue), d.nio);
	if (start_dns(&d, &err) < 0)
		fatal(&err, "dns");
	if (spool_start(d.spool) < 0) {
		str_appendf(&err, "cannot start the spool thread");
		fatal(&err, "spool");
	}
	for (size_t i = 0; i < d.nio; i++)
		if (loop_start(d.io[i]) < 0) {
			str_appendf(&err, "cannot start I/O loop %zu", i);
			fatal(&err, "threads");
		}

	struct queue_deps deps = { d.scheduler, d.io, d.nio, d.spool, d.dns, d.io_pool };
	queue_start(d.queue, &deps);
	pickup_start(d.pickup, d.scheduler, d.io_pool, d.cpu_pool, d.spool, d.queue);
	/* The rates history counts from here: recovered mail is not "received". */
	api_history_start(d.scheduler, d.conf);

	struct event_base *base = loop_base(d.scheduler);
	d.sig_term = evsignal_new(base, SIGTERM, on_term, &d);
	d.sig_int = evsignal_new(base, SIGINT, on_term, &d);
	d.sig_hup = evsignal_new(base, SIGHUP, on_hup, &d);
	event_add(d.sig_term, NULL);
	event_add(d.sig_int, NULL);
	event_add(d.sig_hup, NULL);
	/* Only now: a signal that came during recovery finds its handler. */
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	d.flush_timer = add_timer(&d, 1, on_flush);
	d.heartbeat_timer = add_timer(&d, HEARTBEAT_SECONDS, on_heartbeat);
	/* One heartbeat at start, so a log reader sees the daemon came up. */
	on_heartbeat(-1, 0, &d);
	struct api_console_daemon ops = {
		.ctx = &d, .reload = console_reload, .shutdown = console_shutdown,
		.dns = console_dns, .conf_path = console_conf_path,
	};
	api_console_set_daemon(&ops);
	fprintf(stderr, "impetusd: ready\n");

	loop_run(d.scheduler);
	pickup_stop(d.pickup);
	/* No console from here: its commands read objects that are about to go. */
	control_free(d.control);
	d.control = NULL;
	http_free(d.http);
	d.http = NULL;
	api_console_set_daemon(NULL);

	/*
	 * Sessions are gone; abandoned body writes and modules' jobs may
	 * still run: finish them while their loops can take the answers.
	 * Then stop the I/O loops and let late posts land.
	 */
	pool_wait_idle(d.cpu_pool);	/* sign jobs post to the I/O loops */
	pool_wait_idle(d.io_pool);
	for (size_t i = 0; i < d.nio; i++)
		loop_stop(d.io[i]);
	for (size_t i = 0; i < d.nio; i++)
		loop_join(d.io[i]);
	loop_drain_now(d.scheduler);
	/* Cancelled lookups call back into the queue: before the spool goes. */
	dns_free(d.dns);
	d.dns = NULL;
	/*
	 * Bounces rendered from outcomes that landed in the drain above, and
	 * signing jobs of injected messages: both submit to the spool, so
	 * before it stops. From here the loops only drain by hand: modules get
	 * -ESHUTDOWN for pool jobs, and a generation's last reference
	 * finalises it at once, as the scheduler.
	 */
	api_runtime_stop();
	pool_free(d.cpu_pool);
	d.cpu_pool = NULL;
	pool_free(d.io_pool);
	d.io_pool = NULL;
	spool_stop(d.spool);
	d.spool_stopped = true;
	loop_drain_now(d.scheduler);
	log_panic("shutdown complete messages_queued=%zu", queue_message_count(d.queue));

	event_free(d.sig_term);
	event_free(d.sig_int);
	event_free(d.sig_hup);
	event_free(d.flush_timer);
	event_free(d.heartbeat_timer);
	api_history_stop();
	smtp_server_free(d.smtp);
	for (size_t i = 0; i < d.nio; i++)
		loop_free(d.io[i]);
	free(d.io);
	queue_free(d.queue);
	pickup_free(d.pickup);
	/* The last generation's instances end (fini) as the scheduler, whose base still exists. */
	api_runtime_set_conf(NULL);
	conf_unref(d.conf);
	loop_free(d.scheduler);
	/* Every loop is gone: module posts that never ran are freed, not run. */
	api_post_drop_all();
	/* Every mail thread is gone: the events still pending are written now. */
	events_free(d.events);
	log_close();
	str_free(&err);
	return 0;
}
