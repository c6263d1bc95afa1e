/*
 * fuzz_bounce_override.c - the bounce_override module's file reader
 * (modules/bounce_override/override_rules.c, compiled in here: the module
 * is built against the public headers only and is not in impetus_lib)
 *
 * The first byte chooses: a rules file (case-sensitive or not) or one
 * class declaration. Properties: a refused rules file says "line N: "
 * with N within the input's lines and leaves no rule; an accepted one has
 * codes 1..OVR_CODE_MAX on increasing lines, and a match returns 0 or the
 * code of a rule on the reported line; a class declaration is refused
 * with a reason or gives a code in range and a printable, bounded name
 * and description.
 */
#include "fuzz.h"

#include "../../modules/bounce_override/override_rules.c"

/* printable - no control bytes. */
static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7F)
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024];

	if (size < 1)
		return 0;
	unsigned mode = data[0] % 3;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;

	if (mode < 2) {
		struct ovr_rules rules = { 0 };
		unsigned lines = 1;
		for (size_t i = 0; i < len; i++)
			lines += text[i] == '\n';
		err[0] = '\0';
		int rc = ovr_rules_parse(&rules, text, len, mode == 1, err, sizeof(err));
		if (rc < 0) {
			unsigned n = 0;
			MUST(sscanf(err, "line %u: ", &n) == 1);
			MUST(n >= 1 && n <= lines);
			MUST(rules.n == 0 && rules.v == NULL);
			return 0;
		}
		MUST(rc == 0);
		for (size_t i = 0; i < rules.n; i++) {
			MUST(rules.v[i].code >= 1 && rules.v[i].code <= OVR_CODE_MAX);
			MUST(rules.v[i].line >= 1 && rules.v[i].line <= lines);
			MUST(i == 0 || rules.v[i].line > rules.v[i - 1].line);
		}
		static const char *const samples[] = {
			"550 5.1.1 <a@b.example>: no such user here",
			"421 4.7.0 try again later", "", "Custom FILTER refused 123",
		};
		for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
			unsigned line = 0;
			int code = ovr_rules_match(&rules, samples[s], &line);
			if (code == 0)
				continue;
			int found = 0;
			for (size_t i = 0; i < rules.n; i++)
				if (rules.v[i].line == line && rules.v[i].code == code)
					found = 1;
			MUST(found);
		}
		ovr_rules_free(&rules);
		MUST(rules.n == 0);
		return 0;
	}

	char *spec = fuzz_strndup(text, len);
	struct ovr_class c;
	err[0] = '\0';
	if (ovr_class_parse(spec, &c, err, sizeof(err)) < 0) {
		MUST(err[0] != '\0');
	} else {
		MUST(c.code >= 1 && c.code <= OVR_CODE_MAX);
		MUST(c.name[0] != '\0' && strlen(c.name) <= OVR_NAME_MAX && printable(c.name));
		MUST(strchr(c.name, ':') == NULL);
		MUST(strlen(c.desc) <= OVR_DESC_MAX && printable(c.desc));
	}
	free(spec);
	return 0;
}
