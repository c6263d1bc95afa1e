/*
 * fuzz_config.c - libFuzzer target for the configuration parser
 *
 * Any bytes as a configuration file: the parser must either build a
 * configuration or fail with a "name:line:col: message" error, never
 * crash, leak or read out of bounds. A configuration it accepts must also
 * answer every option lookup (scope fallback included), and its module
 * stanzas and their sub-stanzas must be whole (names, values, locations).
 *
 * Built by tests/fuzz/build.sh with the other targets (clang, ASan+UBSan,
 * see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && mkdir -p /tmp/c && build/fuzz/tests/fuzz/fuzz_config -runs=1000000 /tmp/c tests/unit/config
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/mem.h"
#include "core/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_opts - every option of a module stanza or sub-stanza has a name, its values and locations. */
static void check_opts(const struct conf_module_option *o, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (o[i].name == NULL || o[i].line < 1 || o[i].col < 1)
			abort();
		for (size_t k = 0; k < o[i].n; k++)
			if (o[i].v[k].text == NULL || o[i].v[k].line < o[i].line)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xmalloc(size + 1);
	struct str err = STR_INIT;

	memcpy(text, data, size);
	text[size] = '\0';
	struct conf *c = conf_load_string(text, "fuzz.conf", &err);
	if (c == NULL) {
		/* Every refusal names where: "fuzz.conf:" first. */
		if (strncmp(str_cstr(&err), "fuzz.conf", 9) != 0)
			abort();
	} else {
		for (int o = 0; o < CONF_OPT__COUNT; o++) {
			if (conf_get(c, (enum conf_opt)o, "b", "example.com") == NULL)
				abort();
		}
		for (size_t i = 0; i < conf_module_count(c); i++) {
			const struct conf_module_stanza *m = conf_module_at(c, i);

			check_opts(m->opts, m->nopts);
			for (size_t k = 0; k < m->nsubs; k++) {
				if (m->subs[k].name == NULL || m->subs[k].line < m->line)
					abort();
				check_opts(m->subs[k].opts, m->subs[k].nopts);
			}
		}
		for (size_t i = 0; i < conf_listener_count(c); i++)
			(void)conf_listener_get(c, conf_listener_at(c, i), CONF_OPT_MAX_MESSAGE_SIZE);
		conf_unref(c);
	}
	str_free(&err);
	free(text);
	return 0;
}
