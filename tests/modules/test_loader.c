/*
 * test_loader.c - a module for tests/integration/test_modules.py
 *
 * Declares one option of every type and writes what happens to it to the
 * file named by `journal`: "init <instance> <options...>" from init and
 * "fini <instance>" from fini, one line each, so the test can see which
 * generation's instances started and ended, and with which values.
 * `fail_init = true` makes init refuse with a known message.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <impetus/impetus.h>

static const struct imp_option options[] = {
	{ "journal", IMP_OPT_STRING, NULL, 0, 0, true, "file the module appends its events to" },
	{ "fail_init", IMP_OPT_BOOL, "false", 0, 0, false, "refuse to initialise" },
	{ "count", IMP_OPT_INT, "7", 1, 100, false, "a number from 1 to 100" },
	{ "wait", IMP_OPT_INTERVAL, "2m", 0, 0, false, "an interval" },
	{ "limit", IMP_OPT_SIZE, "1K", 0, 0, false, "a size" },
	{ "words", IMP_OPT_LIST, "( a b )", 0, 0, false, "a list" },
};

static void journal(const struct imp_instance *inst, const char *what)
{
	FILE *f = fopen(imp_option_string(inst, "journal"), "a");

	if (f == NULL)
		return;
	fprintf(f, "%s %s", what, imp_instance_name(inst));
	if (strcmp(what, "init") == 0) {
		size_t n;
		const char *const *w = imp_option_list(inst, "words", &n);

		fprintf(f, " count=%" PRId64 " wait=%" PRId64 " limit=%" PRId64 " debug=%d words=",
			imp_option_int(inst, "count"), imp_option_int(inst, "wait"),
			imp_option_int(inst, "limit"), imp_instance_debug_level(inst));
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%s%s", i ? "," : "", w[i]);
		fprintf(f, " count_set=%d", imp_option_is_set(inst, "count"));
	}
	fputc('\n', f);
	fclose(f);
}

static int loader_init(struct imp_instance *inst, struct imp_error *err)
{
	if (imp_option_bool(inst, "fail_init")) {
		imp_error_set(err, "told to fail (fail_init = true)");
		return -1;
	}
	journal(inst, "init");
	return 0;
}

static void loader_fini(struct imp_instance *inst)
{
	journal(inst, "fini");
}

IMP_MODULE_DEFINE(.name = "test_loader", .version = "1", .description = "loader test module",
		  .options = options, .noptions = sizeof(options) / sizeof(options[0]),
		  .init = loader_init, .fini = loader_fini);
