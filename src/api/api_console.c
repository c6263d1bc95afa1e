/*
 * api_console.c - console commands: registration, dispatch, built-ins
 *
 * Registration (imp_cli_register) happens while a generation is building,
 * on the scheduler thread, like the hooks (api_gen.c); the table is kept
 * sorted by name so `help` lists it in order and a look-up is a binary
 * search. Once the generation is frozen the table never changes.
 *
 * A command runs on the scheduler thread (api_console_run, called by the
 * control server) with its generation held by the caller, so a reload,
 * which also runs there, can never replace the generation under a
 * running handler. The answer is built in memory (struct imp_cli) and
 * handed back whole; the handler never touches a socket.
 *
 * Failure: bad registrations return -EINVAL / -EEXIST; a handler's error
 * becomes the answer's one line; output past IMP_CLI_MAX_OUTPUT fails the
 * command instead of growing without bound.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <impetus/console.h>

#include "api/api.h"
#include "api/api_console.h"
#include "config/config.h"
#include "core/mem.h"
#include "events/events.h"

struct imp_cli {
	struct str out;
	struct str err;
	bool json;
	bool failed;
	bool overflow;
	const struct api_gen *gen;
	const char *name;		/* the command's, for its error lines */
	/* Answering later (imp_cli_defer): */
	bool deferred;
	bool in_handler;		/* the handler has not returned yet */
	bool finished;			/* imp_cli_finish ran */
	struct conf *hold;		/* keeps the generation alive until the finish */
	api_console_done_fn done;	/* NULL: nobody waits (abandoned) */
	void *done_arg;
};

/* name_ok - [a-z0-9_]{1,IMP_CLI_NAME_MAX}. */
static bool name_ok(const char *name)
{
	size_t n = 0;

	if (name == NULL)
		return false;
	for (const char *p = name; *p; p++, n++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return n >= 1 && n <= IMP_CLI_NAME_MAX;
}

/* find_at - the index of name in g's sorted table, or where it would go (*found false). */
static size_t find_at(const struct api_gen *g, const char *name, bool *found)
{
	size_t lo = 0, hi = g->ncmds;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(g->cmds[mid].name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct api_cmd *api_console_find(const struct api_gen *g, const char *name)
{
	bool found;
	size_t i;

	if (g == NULL || g->ncmds == 0)
		return NULL;
	i = find_at(g, name, &found);
	return found ? &g->cmds[i] : NULL;
}

int imp_cli_register(struct imp_instance *inst, const char *name, const char *help,
		     imp_cli_fn fn, void *closure)
{
	if (inst == NULL || inst->gen == NULL || !inst->gen->building || fn == NULL ||
	    !name_ok(name) || help == NULL || *help == '\0' || strpbrk(help, "\r\n") != NULL)
		return -EINVAL;
	struct api_gen *g = inst->gen;
	bool found;
	size_t at = find_at(g, name, &found);

	if (found)
		return -EEXIST;
	if (g->ncmds == g->cmds_cap) {
		g->cmds_cap = g->cmds_cap ? g->cmds_cap * 2 : 16;
		g->cmds = xrealloc(g->cmds, g->cmds_cap * sizeof(*g->cmds));
	}
	memmove(&g->cmds[at + 1], &g->cmds[at], (g->ncmds - at) * sizeof(*g->cmds));
	g->cmds[at] = (struct api_cmd){
		.name = xstrdup(name), .help = xstrdup(help), .fn = fn, .closure = closure,
		.inst = inst,
	};
	g->ncmds++;
	return 0;
}

void *imp_cli_closure(const struct imp_instance *inst, const char *name)
{
	const struct api_cmd *c;

	if (inst == NULL || inst->gen == NULL || name == NULL)
		return NULL;
	c = api_console_find(inst->gen, name);
	return c && c->inst->mod != NULL && c->inst->mod == inst->mod ? c->closure : NULL;
}

bool imp_cli_json(const struct imp_cli *cli)
{
	return cli->json;
}

/* room - whether len more bytes fit under IMP_CLI_MAX_OUTPUT; marks the overflow. */
static bool room(struct imp_cli *cli, size_t len)
{
	if (cli->overflow || cli->out.len + len > IMP_CLI_MAX_OUTPUT) {
		cli->overflow = true;
		return false;
	}
	return true;
}

void imp_cli_write(struct imp_cli *cli, const char *text, size_t len)
{
	if (room(cli, len))
		str_append(&cli->out, text, len);
}

void imp_cli_printf(struct imp_cli *cli, const char *fmt, ...)
{
	va_list ap;
	size_t before = cli->out.len;

	if (cli->overflow)
		return;
	va_start(ap, fmt);
	str_vappendf(&cli->out, fmt, ap);
	va_end(ap);
	if (cli->out.len > IMP_CLI_MAX_OUTPUT) {
		str_truncate(&cli->out, before);
		cli->overflow = true;
	}
}

void imp_cli_json_string(struct imp_cli *cli, const char *s)
{
	struct str q = STR_INIT;

	str_appendc(&q, '"');
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		switch (*p) {
		case '"': str_appends(&q, "\\\""); break;
		case '\\': str_appends(&q, "\\\\"); break;
		case '\n': str_appends(&q, "\\n"); break;
		case '\r': str_appends(&q, "\\r"); break;
		case '\t': str_appends(&q, "\\t"); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				str_appendf(&q, "\\u%04x", *p);
			else
				str_appendc(&q, (char)*p);	/* UTF-8 passes through */
		}
	}
	str_appendc(&q, '"');
	imp_cli_write(cli, q.s, q.len);
	str_free(&q);
}

int imp_cli_error(struct imp_cli *cli, const char *fmt, ...)
{
	va_list ap;

	str_clear(&cli->err);
	va_start(ap, fmt);
	str_vappendf(&cli->err, fmt, ap);
	va_end(ap);
	/* One line: the client prints it on stderr as it is. */
	for (size_t i = 0; i < cli->err.len; i++)
		if (cli->err.s[i] == '\n' || cli->err.s[i] == '\r')
			cli->err.s[i] = ' ';
	cli->failed = true;
	return -1;
}

/* cli_result - the answer of a finished command, or its error line, into out; 0 or -1. */
static int cli_result(struct imp_cli *cli, int rc, struct str *out)
{
	if (rc < 0 || cli->failed || cli->overflow) {
		if (cli->failed && cli->err.len)
			str_append(out, cli->err.s, cli->err.len);
		else if (cli->overflow)
			str_appendf(out, "%s: output too large (over %u bytes)", cli->name,
				    IMP_CLI_MAX_OUTPUT);
		else
			str_appendf(out, "%s: command failed", cli->name);
		return -1;
	}
	str_append(out, cli->out.s ? cli->out.s : "", cli->out.len);
	return 0;
}

/* cli_free - release a request's answer, its name and the generation it held. */
static void cli_free(struct imp_cli *cli)
{
	str_free(&cli->out);
	str_free(&cli->err);
	free((char *)cli->name);
	conf_unref(cli->hold);
	free(cli);
}

/* Who sends the next command (api_console_origin); scheduler thread. */
static const char *origin_transport;
static const char *origin_key;

void api_console_origin(const char *transport, const char *key)
{
	origin_transport = transport;
	origin_key = key;
}

static int console_start(struct api_gen *g, struct conf *hold, int argc, const char *const *argv,
			 bool json, struct str *out, api_console_done_fn done, void *done_arg,
			 struct imp_cli **pending);

/*
 * api_console_start - run the command; a command that changes state is
 * also an AdminAction event and an audit line (events_admin), with the
 * origin the transport gave, whatever the outcome.
 */
int api_console_start(struct api_gen *g, struct conf *hold, int argc, const char *const *argv,
		      bool json, struct str *out, api_console_done_fn done, void *done_arg,
		      struct imp_cli **pending)
{
	const char *transport = origin_transport ? origin_transport : "console";
	const char *key = origin_key;
	int rc;

	origin_transport = NULL;
	origin_key = NULL;
	rc = console_start(g, hold, argc, argv, json, out, done, done_arg, pending);
	if (events_admin_changes(argc, argv))
		events_admin(transport, key, argc, argv, rc);
	return rc;
}

static int console_start(struct api_gen *g, struct conf *hold, int argc, const char *const *argv,
			 bool json, struct str *out, api_console_done_fn done, void *done_arg,
			 struct imp_cli **pending)
{
	const struct api_cmd *cmd;
	int rc;

	if (pending)
		*pending = NULL;
	if (argc < 1) {
		str_appends(out, "empty command (try \"help\")");
		return -1;
	}
	cmd = api_console_find(g, argv[0]);
	if (cmd == NULL) {
		str_appendf(out, "unknown command \"%.64s\" (try \"help\")", argv[0]);
		return -1;
	}
	struct imp_cli *cli = xcalloc(1, sizeof(*cli));
	cli->json = json;
	cli->gen = g;
	cli->name = xstrdup(cmd->name);
	cli->in_handler = true;
	struct api_gen *prev = api_gen_enter(g);
	rc = cmd->fn(cli, argc, argv, cmd->closure);
	api_gen_leave(prev);
	cli->in_handler = false;
	if (cli->deferred && !cli->finished && rc >= 0 && !cli->failed) {
		if (done == NULL || pending == NULL) {
			/* A caller that cannot wait: the handle is finished into the void. */
			cli->done = NULL;
			str_appendf(out, "%s: cannot answer later here", cli->name);
			cli->hold = hold ? conf_ref(hold) : NULL;
			return -1;
		}
		cli->hold = hold ? conf_ref(hold) : NULL;
		cli->done = done;
		cli->done_arg = done_arg;
		*pending = cli;
		return 1;
	}
	if (cli->deferred && !cli->finished) {
		/*
		 * The handler deferred and then failed: the answer is its error
		 * now, and the handle its callback still holds must stay valid
		 * until it finishes; nobody waits for it.
		 */
		rc = cli_result(cli, rc, out);
		cli->hold = hold ? conf_ref(hold) : NULL;
		str_clear(&cli->out);
		return -1;
	}
	rc = cli_result(cli, rc, out);
	cli_free(cli);
	return rc;
}

int api_console_run(struct api_gen *g, int argc, const char *const *argv, bool json,
		    struct str *out)
{
	return api_console_start(g, NULL, argc, argv, json, out, NULL, NULL, NULL);
}

struct imp_cli *imp_cli_defer(struct imp_cli *cli)
{
	cli->deferred = true;
	return cli;
}

void imp_cli_finish(struct imp_cli *cli)
{
	if (cli == NULL || cli->finished)
		return;
	cli->finished = true;
	if (cli->in_handler)
		return;		/* api_console_start answers and frees it */
	if (cli->done) {
		struct str out = STR_INIT;
		int rc = cli_result(cli, 0, &out);

		cli->done(cli->done_arg, rc == 0, out.s ? out.s : "", out.len);
		str_free(&out);
	}
	cli_free(cli);
}

void api_console_abandon(struct imp_cli *pending)
{
	if (pending)
		pending->done = NULL;
}

/* ---- built-in commands ---------------------------------------------------------- */

/* no_args - refuse arguments to a command that takes none. */
static int no_args(struct imp_cli *cli, int argc, const char *const *argv)
{
	if (argc > 1)
		return imp_cli_error(cli, "%s takes no arguments", argv[0]);
	return 0;
}

/* cmd_help - every command of the running generation with its one line, modules' included. */
static int cmd_help(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	const struct api_gen *g = cli->gen;

	if (argc > 2)
		return imp_cli_error(cli, "usage: help [COMMAND]");
	if (argc == 2 && api_console_find(g, argv[1]) == NULL)
		return imp_cli_error(cli, "help: unknown command \"%.64s\"", argv[1]);
	if (cli->json)
		imp_cli_write(cli, "{\"commands\":[", 13);
	else if (argc == 1)
		imp_cli_printf(cli, "Commands:\n");
	bool first = true;
	for (size_t i = 0; i < g->ncmds; i++) {
		const struct api_cmd *c = &g->cmds[i];

		if (argc == 2 && strcmp(c->name, argv[1]) != 0)
			continue;
		if (cli->json) {
			imp_cli_printf(cli, "%s{\"name\":", first ? "" : ",");
			imp_cli_json_string(cli, c->name);
			imp_cli_write(cli, ",\"help\":", 8);
			imp_cli_json_string(cli, c->help);
			imp_cli_write(cli, ",\"module\":", 10);
			imp_cli_json_string(cli, c->inst->module_name);
			imp_cli_write(cli, ",\"instance\":", 12);
			imp_cli_json_string(cli, c->inst->name);
			imp_cli_write(cli, "}", 1);
		} else if (c->inst->mod == NULL) {
			imp_cli_printf(cli, "  %-20s %s\n", c->name, c->help);
		} else {
			imp_cli_printf(cli, "  %-20s %s [%s%s%s]\n", c->name, c->help,
				       c->inst->module_name, c->inst->name[0] ? " " : "",
				       c->inst->name);
		}
		first = false;
	}
	if (cli->json)
		imp_cli_write(cli, "]}\n", 3);
	return 0;
}

/* cmd_version - the daemon's version. */
static int cmd_version(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	if (no_args(cli, argc, argv) < 0)
		return -1;
	if (cli->json)
		imp_cli_printf(cli, "{\"version\":\"%s\",\"api\":\"%d.%d\"}\n", IMPETUS_VERSION,
			       IMP_API_MAJOR, IMP_API_MINOR);
	else
		imp_cli_printf(cli, "impetusd %s (module API %d.%d)\n", IMPETUS_VERSION,
			       IMP_API_MAJOR, IMP_API_MINOR);
	return 0;
}

/* cmd_pid - the daemon's process id. */
static int cmd_pid(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	if (no_args(cli, argc, argv) < 0)
		return -1;
	if (cli->json)
		imp_cli_printf(cli, "{\"pid\":%ld}\n", (long)getpid());
	else
		imp_cli_printf(cli, "%ld\n", (long)getpid());
	return 0;
}

void api_console_builtins_register(struct api_gen *g)
{
	struct imp_instance *core = api_core_instance(g);

	if (imp_cli_register(core, "help", "list the commands, or show one: help [COMMAND]",
			     cmd_help, NULL) < 0 ||
	    imp_cli_register(core, "version", "the daemon's version", cmd_version, NULL) < 0 ||
	    imp_cli_register(core, "pid", "the daemon's process id", cmd_pid, NULL) < 0)
		abort();
}
