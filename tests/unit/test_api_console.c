/*
 * test_api_console.c - src/api/api_console.c: registering and running console commands
 *
 * Names and help are checked, a name is unique in a generation, nothing
 * registers once the generation is frozen, the table is sorted for help,
 * the built-ins answer, and a handler's output, error, failure without a
 * message and oversized output come back as the client will see them.
 */
#include <errno.h>
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

	str_free(&out);
	api_gen_release(g);
	return check_done();
}
