/*
 * test_api10.c - a module as built against module API 1.0
 *
 * Declares its entry point by hand with the 1.0 layout of struct
 * imp_module (no sub-stanza fields at the end) and .api_minor = 0, as a
 * module compiled before API 1.1 is: impetusd must load it, never read
 * past the shorter struct (the sanitizer build sees such a read as a
 * global-buffer-overflow), and refuse sub-stanzas in its stanza. Its init
 * appends "init10 <instance> <tag>" to the file named by `journal`.
 */
#include <stdio.h>

#include <impetus/impetus.h>

/* struct imp_module as API 1.0 laid it out. */
struct imp_module_1_0 {
	uint32_t api_major;
	uint32_t api_minor;
	const char *name;
	const char *version;
	const char *description;
	unsigned flags;
	const struct imp_option *options;
	size_t noptions;
	int (*init)(struct imp_instance *inst, struct imp_error *err);
	void (*fini)(struct imp_instance *inst);
};

static const struct imp_option options[] = {
	{ "journal", IMP_OPT_STRING, NULL, 0, 0, true, "file the module appends its events to" },
	{ "tag", IMP_OPT_STRING, "none", 0, 0, false, "a word written to the journal" },
};

static int api10_init(struct imp_instance *inst, struct imp_error *err)
{
	FILE *f = fopen(imp_option_string(inst, "journal"), "a");

	if (f == NULL) {
		imp_error_set(err, "cannot open the journal");
		return -1;
	}
	fprintf(f, "init10 %s %s\n", imp_instance_name(inst), imp_option_string(inst, "tag"));
	fclose(f);
	return 0;
}

__attribute__((visibility("default"))) const struct imp_module_1_0 impetus_module = {
	.api_major = 1, .api_minor = 0, .name = "test_api10", .version = "1",
	.description = "a module built for API 1.0", .options = options,
	.noptions = sizeof(options) / sizeof(options[0]), .init = api10_init,
};
