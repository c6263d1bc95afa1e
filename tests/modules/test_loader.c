/*
 * test_loader.c - a module for tests/integration/test_modules.py
 *
 * Declares one option of every type and writes what happens to it to the
 * file named by `journal`: "init <instance> <options...>" from init and
 * "fini <instance>" from fini, one line each, so the test can see which
 * generation's instances started and ended, and with which values.
 * `fail_init = true` makes init refuse with a known message; `misuse`
 * makes init call a sub-stanza accessor wrongly (which must abort).
 *
 * Sub-stanzas (API 1.1): `domain "name" { weight tags strict }` (named,
 * weight required) and `defaults { wait limit }` (unnamed); when a stanza
 * has any, the init line goes on with " domain=<name>:<weight>:<tags>:
 * <strict>:<weight set>" for each domain and " defaults=<wait>:<limit>"
 * for each defaults, in file order.
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
	{ "misuse", IMP_OPT_STRING, NULL, 0, 0, false,
	  "break the accessors' contract at init: name, index or type" },
};

static const struct imp_option domain_options[] = {
	{ "weight", IMP_OPT_INT, NULL, 1, 10, true, "a number from 1 to 10" },
	{ "tags", IMP_OPT_LIST, "( t )", 0, 0, false, "a list" },
	{ "strict", IMP_OPT_BOOL, "false", 0, 0, false, "a boolean" },
};

static const struct imp_option defaults_options[] = {
	{ "wait", IMP_OPT_INTERVAL, "1m", 0, 3600, false, "an interval up to an hour" },
	{ "limit", IMP_OPT_SIZE, "2K", 0, 0, false, "a size" },
};

static const struct imp_substanza substanzas[] = {
	{ "domain", true, domain_options, sizeof(domain_options) / sizeof(domain_options[0]),
	  "per-domain settings" },
	{ "defaults", false, defaults_options, sizeof(defaults_options) / sizeof(defaults_options[0]),
	  "settings without a name" },
};

/* journal_subs - the sub-stanzas and their values, for the init line. */
static void journal_subs(FILE *f, const struct imp_instance *inst)
{
	for (size_t i = 0; i < imp_substanza_count(inst, "domain"); i++) {
		size_t n;
		const char *const *t = imp_substanza_option_list(inst, "domain", i, "tags", &n);

		fprintf(f, " domain=%s:%" PRId64 ":", imp_substanza_arg(inst, "domain", i),
			imp_substanza_option_int(inst, "domain", i, "weight"));
		for (size_t k = 0; k < n; k++)
			fprintf(f, "%s%s", k ? "," : "", t[k]);
		fprintf(f, ":%d:%d", imp_substanza_option_bool(inst, "domain", i, "strict"),
			imp_substanza_option_is_set(inst, "domain", i, "strict"));
	}
	for (size_t i = 0; i < imp_substanza_count(inst, "Defaults"); i++)
		fprintf(f, " defaults=%s%" PRId64 ":%" PRId64, imp_substanza_arg(inst, "defaults", i),
			imp_substanza_option_int(inst, "defaults", i, "wait"),
			imp_substanza_option_int(inst, "defaults", i, "limit"));
}

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
		journal_subs(f, inst);
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
	const char *m = imp_option_string(inst, "misuse");
	if (m && strcmp(m, "name") == 0)
		imp_substanza_count(inst, "no_such_substanza");
	else if (m && strcmp(m, "index") == 0)
		imp_substanza_arg(inst, "domain", imp_substanza_count(inst, "domain"));
	else if (m && strcmp(m, "type") == 0 && imp_substanza_count(inst, "domain") > 0)
		imp_substanza_option_string(inst, "domain", 0, "weight");
	journal(inst, "init");
	return 0;
}

static void loader_fini(struct imp_instance *inst)
{
	journal(inst, "fini");
}

IMP_MODULE_DEFINE(.name = "test_loader", .version = "1", .description = "loader test module",
		  .options = options, .noptions = sizeof(options) / sizeof(options[0]),
		  .init = loader_init, .fini = loader_fini, .substanzas = substanzas,
		  .nsubstanzas = sizeof(substanzas) / sizeof(substanzas[0]));
