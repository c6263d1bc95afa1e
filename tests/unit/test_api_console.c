/*
 * test_api_console.c - src/api/api_console.c: registering and running console commands
 *
 * Names and help are checked, a name is unique in a generation, nothing
 * registers once the generation is frozen, the table is sorted for help,
 * the built-ins answer, and a handler's output, error, failure without a
 * message and oversized output come back as the client will see them.
 * Deferred answers (imp_cli_defer / imp_cli_finish): answered later,
 * finished before the handler returned, failed later, abandoned by a
 * client that left, and refused where nobody can wait. The operations
 * commands' argument checks (they need no daemon to refuse bad input).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <impetus/console.h>

#include "api/api.h"
#include "api/api_console.h"
#include "check.h"

static int cmd_echo(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	if (imp_cli_json(cli)) {
		imp_cli_json_string(cli, argc > 1 ? argv[1] : "");
		return 0;
	}
	for (int i = 1; i < argc; i++)
		imp_cli_printf(cli, "%s%s", i > 1 ? " " : "", argv[i]);
	return 0;
}

static int cmd_fail(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	imp_cli_printf(cli, "partial output");
	if (argc > 1)
		return imp_cli_error(cli, "bad\nthing %d", 7);
	return -1;
}

static int cmd_big(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	static char chunk[1 << 20];

	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 20; i++)
		imp_cli_write(cli, chunk, sizeof(chunk));
	return 0;
}

static struct imp_cli *later_handle;

/* cmd_later - writes a little, defers; the test finishes the handle. */
static int cmd_later(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	imp_cli_printf(cli, "early ");
	later_handle = imp_cli_defer(cli);
	CHECK(imp_cli_defer(cli) == later_handle);	/* twice: the same handle */
	return 0;
}

/* cmd_now - defers, then finds the answer at hand and finishes before returning. */
static int cmd_now(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct imp_cli *h = imp_cli_defer(cli);

	imp_cli_printf(h, "at once");
	imp_cli_finish(h);
	return 0;
}

/* cmd_deferfail - defers, then fails anyway: the handle is still the caller's to finish. */
static int cmd_deferfail(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	later_handle = imp_cli_defer(cli);
	return imp_cli_error(cli, "gave up");
}

struct done_seen {
	int calls;
	bool ok;
	char body[128];
};

static void on_done(void *arg, bool ok, const char *body, size_t len)
{
	struct done_seen *d = arg;

	d->calls++;
	d->ok = ok;
	snprintf(d->body, sizeof(d->body), "%.*s", (int)len, body);
}

/* run - api_console_run on words; the answer in out (reset). */
static int run(struct api_gen *g, struct str *out, bool json, int argc, const char **argv)
{
	str_clear(out);
	return api_console_run(g, argc, argv, json, out);
}

int main(void)
{
	struct api_gen *g = api_gen_new();
	struct imp_instance *core = api_core_instance(g);
	struct str out = STR_INIT;

	api_console_builtins_register(g);
	CHECK_INTEQ(imp_cli_register(core, "echo", "say it back", cmd_echo, NULL), 0);
	CHECK_INTEQ(imp_cli_register(core, "echo", "again", cmd_echo, NULL), -EEXIST);
	CHECK_INTEQ(imp_cli_register(core, "help", "mine", cmd_echo, NULL), -EEXIST);
	CHECK_INTEQ(imp_cli_register(core, "Echo2", "upper case", cmd_echo, NULL), -EINVAL);
	CHECK_INTEQ(imp_cli_register(core, "", "empty", cmd_echo, NULL), -EINVAL);
	CHECK_INTEQ(imp_cli_register(core, "a b", "blank", cmd_echo, NULL), -EINVAL);
	CHECK_INTEQ(imp_cli_register(core, "x23456789012345678901234567890123", "33 bytes", cmd_echo,
				     NULL), -EINVAL);
	CHECK_INTEQ(imp_cli_register(core, "nohelp", "", cmd_echo, NULL), -EINVAL);
	CHECK_INTEQ(imp_cli_register(core, "twolines", "a\nb", cmd_echo, NULL), -EINVAL);
	CHECK_INTEQ(imp_cli_register(core, "nofn", "x", NULL, NULL), -EINVAL);
	CHECK_INTEQ(imp_cli_register(core, "fail", "fails", cmd_fail, NULL), 0);
	CHECK_INTEQ(imp_cli_register(core, "big", "too much", cmd_big, NULL), 0);
	/* Built-ins register as core; no module instance, so no shared closure. */
	CHECK(imp_cli_closure(core, "echo") == NULL);
	api_gen_freeze(g);
	CHECK_INTEQ(imp_cli_register(core, "late", "after freeze", cmd_echo, NULL), -EINVAL);

	/* Sorted by name. */
	for (size_t i = 1; i < g->ncmds; i++)
		CHECK(strcmp(g->cmds[i - 1].name, g->cmds[i].name) < 0);
	CHECK(api_console_find(g, "pid") != NULL && api_console_find(g, "nope") == NULL);

	const char *echo[] = { "echo", "a", "b\"c" };
	CHECK_INTEQ(run(g, &out, false, 3, echo), 0);
	CHECK_STREQ(str_cstr(&out), "a b\"c");
	const char *echo1[] = { "echo", "b\"c\\\x01" };
	CHECK_INTEQ(run(g, &out, true, 2, echo1), 0);
	CHECK_STREQ(str_cstr(&out), "\"b\\\"c\\\\\\u0001\"");

	const char *fail1[] = { "fail", "x" };
	CHECK_INTEQ(run(g, &out, false, 2, fail1), -1);
	CHECK_STREQ(str_cstr(&out), "bad thing 7");	/* one line, output dropped */
	const char *fail0[] = { "fail" };
	CHECK_INTEQ(run(g, &out, false, 1, fail0), -1);
	CHECK_STREQ(str_cstr(&out), "fail: command failed");
	const char *big[] = { "big" };
	CHECK_INTEQ(run(g, &out, false, 1, big), -1);
	CHECK(strstr(str_cstr(&out), "big: output too large") != NULL);
	const char *nope[] = { "nope" };
	CHECK_INTEQ(run(g, &out, false, 1, nope), -1);
	CHECK_STREQ(str_cstr(&out), "unknown command \"nope\" (try \"help\")");

	const char *help[] = { "help" };
	CHECK_INTEQ(run(g, &out, false, 1, help), 0);
	CHECK(strstr(str_cstr(&out), "  echo                 say it back\n") != NULL);
	CHECK_INTEQ(run(g, &out, true, 1, help), 0);
	CHECK(strstr(str_cstr(&out), "{\"name\":\"echo\",\"help\":\"say it back\",\"module\":\"core\","
				     "\"instance\":\"\"}") != NULL);
	const char *help2[] = { "help", "nope" };
	CHECK_INTEQ(run(g, &out, false, 2, help2), -1);
	const char *pid[] = { "pid", "x" };
	CHECK_INTEQ(run(g, &out, false, 2, pid), -1);
	CHECK_STREQ(str_cstr(&out), "pid takes no arguments");

	/* Answering later. */
	struct api_gen *g2 = api_gen_new();
	struct imp_instance *core2 = api_core_instance(g2);
	struct imp_cli *pending;
	struct done_seen seen = { 0 };

	api_console_builtins_register(g2);
	api_console_ops_register(g2);
	CHECK_INTEQ(imp_cli_register(core2, "later", "answers later", cmd_later, NULL), 0);
	CHECK_INTEQ(imp_cli_register(core2, "now", "answers at once", cmd_now, NULL), 0);
	CHECK_INTEQ(imp_cli_register(core2, "deferfail", "fails", cmd_deferfail, NULL), 0);
	api_gen_freeze(g2);

	const char *later[] = { "later" };
	str_clear(&out);
	CHECK_INTEQ(api_console_start(g2, NULL, 1, later, false, &out, on_done, &seen, &pending), 1);
	CHECK(pending != NULL && pending == later_handle);
	CHECK_INTEQ(out.len, 0);
	CHECK_INTEQ(seen.calls, 0);
	imp_cli_printf(later_handle, "late answer");
	imp_cli_finish(later_handle);
	CHECK_INTEQ(seen.calls, 1);
	CHECK(seen.ok);
	CHECK_STREQ(seen.body, "early late answer");

	/* Failed later: the error line replaces the answer. */
	str_clear(&out);
	CHECK_INTEQ(api_console_start(g2, NULL, 1, later, true, &out, on_done, &seen, &pending), 1);
	CHECK(imp_cli_json(later_handle));
	imp_cli_error(later_handle, "no luck");
	imp_cli_finish(later_handle);
	CHECK_INTEQ(seen.calls, 2);
	CHECK(!seen.ok);
	CHECK_STREQ(seen.body, "no luck");

	/* The client left: nobody is told, the handle is freed by the finish (ASan). */
	str_clear(&out);
	CHECK_INTEQ(api_console_start(g2, NULL, 1, later, false, &out, on_done, &seen, &pending), 1);
	api_console_abandon(pending);
	imp_cli_printf(later_handle, "nobody reads this");
	imp_cli_finish(later_handle);
	CHECK_INTEQ(seen.calls, 2);

	/* Finished before the handler returned: an ordinary answer. */
	const char *now[] = { "now" };
	str_clear(&out);
	CHECK_INTEQ(api_console_start(g2, NULL, 1, now, false, &out, on_done, &seen, &pending), 0);
	CHECK(pending == NULL);
	CHECK_STREQ(str_cstr(&out), "at once");
	CHECK_INTEQ(run(g2, &out, false, 1, now), 0);
	CHECK_STREQ(str_cstr(&out), "at once");

	/* Deferred, then failed: the error now; the handle is finished later, silently. */
	const char *deferfail[] = { "deferfail" };
	str_clear(&out);
	CHECK_INTEQ(api_console_start(g2, NULL, 1, deferfail, false, &out, on_done, &seen, &pending),
		    -1);
	CHECK_STREQ(str_cstr(&out), "gave up");
	imp_cli_finish(later_handle);
	CHECK_INTEQ(seen.calls, 2);

	/* A caller that cannot wait (api_console_run): refused, the handle still finishable. */
	CHECK_INTEQ(run(g2, &out, false, 1, later), -1);
	CHECK_STREQ(str_cstr(&out), "later: cannot answer later here");
	imp_cli_finish(later_handle);
	CHECK_INTEQ(seen.calls, 2);

	/* The operations commands refuse bad input before touching anything. */
	const char *trace_bad[] = { "trace", "smtp", "on", "300.1.1.1" };
	CHECK_INTEQ(run(g2, &out, false, 4, trace_bad), -1);
	CHECK_STREQ(str_cstr(&out), "trace smtp: \"300.1.1.1\" is not an IP address");
	const char *trace_on[] = { "trace", "smtp", "on", "::ffff:10.0.0.1" };
	CHECK_INTEQ(run(g2, &out, false, 4, trace_on), 0);
	/* The v4-mapped form is shown as IPv4. */
	CHECK(strstr(str_cstr(&out), "for peer 10.0.0.1;") != NULL);
	const char *trace_off[] = { "trace", "smtp", "off" };
	CHECK_INTEQ(run(g2, &out, true, 3, trace_off), 0);
	CHECK_STREQ(str_cstr(&out),
		    "{\"trace\":\"smtp\",\"inbound\":false,\"outbound\":false,\"ip\":null}\n");
	const char *panic_bad[] = { "paniclog", "12x" };
	CHECK_INTEQ(run(g2, &out, false, 2, panic_bad), -1);
	CHECK(strstr(str_cstr(&out), "N must be a number from 1 to 10000") != NULL);
	const char *dig_nodaemon[] = { "dig", "example.com" };
	CHECK_INTEQ(run(g2, &out, false, 2, dig_nodaemon), -1);
	CHECK_STREQ(str_cstr(&out), "dig: not available (no daemon is running this console)");
	const char *dig_bad[] = { "dig", "exa mple", "MX" };
	CHECK_INTEQ(run(g2, &out, false, 3, dig_bad), -1);
	CHECK_STREQ(str_cstr(&out), "dig: \"exa mple\" is not a domain name");
	const char *dig_type[] = { "dig", "example.com", "SRV" };
	CHECK_INTEQ(run(g2, &out, false, 3, dig_type), -1);
	CHECK_STREQ(str_cstr(&out), "dig: unknown type \"SRV\" (MX, A or AAAA)");
	const char *show_bad[] = { "config", "show", "No_Such_Option_At_All" };
	CHECK_INTEQ(run(g2, &out, false, 3, show_bad), -1);
	CHECK(strncmp(str_cstr(&out), "config show: unknown option \"No_Such_Option_At_All\"", 51) == 0);
	const char *threads[] = { "threads" };
	CHECK_INTEQ(run(g2, &out, true, 1, threads), 0);
	CHECK(strncmp(str_cstr(&out), "{\"threads\":[", 12) == 0);
	api_gen_release(g2);

	str_free(&out);
	api_gen_release(g);
	return check_done();
}
