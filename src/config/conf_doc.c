/*
 * conf_doc.c - the option reference of docs/configuration.md, from the table
 *
 * `impetusd -t --list` prints what conf_doc_option_table builds: one
 * Markdown row per option of conf_options.def, in table order. The
 * "Options" table of docs/configuration.md is exactly that text
 * (scripts/gen-config-doc.sh rewrites it; tests/doc/check_config_doc.py
 * fails when the two differ), so the page cannot drift from the code.
 *
 * Pure function of the constant table; any thread.
 */
#include <inttypes.h>
#include <stdint.h>

#include "config/config.h"

static const struct {
	unsigned bit;
	const char *name;
} scope_names[] = {
	{ CONF_S_GLOBAL, "global" },
	{ CONF_S_BINDING_GROUP, "Binding_Group" },
	{ CONF_S_BINDING, "Binding" },
	{ CONF_S_DOMAIN, "Domain" },
	{ CONF_S_LISTENER, "ESMTP_Listener, Listen" },
	{ CONF_S_CONTROL, "Control_Listener, Listen" },
	{ CONF_S_HTTP, "HTTP_Listener, Listen" },
	{ CONF_S_HTTP_KEY, "API_Key" },
	{ CONF_S_WEBHOOK, "Webhook" },
};

/* append_cell_text - text for a table cell: a '|' would end the cell. */
static void append_cell_text(struct str *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			str_append(out, "\\|", 2);
		else
			str_appendc(out, *s);
	}
}

/* append_type - "integer (0..256)", "size (0..)", "enum: a\|b", "string". */
static void append_type(struct str *out, enum conf_opt opt)
{
	enum conf_type t = conf_option_type(opt);
	int64_t min, max;

	str_appendf(out, "%s", conf_type_name(t));
	switch (t) {
	case CONF_T_INT:
	case CONF_T_INTERVAL:
	case CONF_T_SIZE:
	case CONF_T_RETRIES:
	case CONF_T_LINE_LIMIT:
		conf_option_range(opt, &min, &max);
		if (max == INT64_MAX)
			str_appendf(out, " (%" PRId64 "..)", min);
		else
			str_appendf(out, " (%" PRId64 "..%" PRId64 ")", min, max);
		break;
	case CONF_T_ENUM:
		str_appendf(out, ": ");
		append_cell_text(out, conf_option_enum_words(opt));
		break;
	default:
		break;
	}
}

void conf_doc_option_table(struct str *out)
{
	str_appendf(out, "| option | type | default | scopes | meaning |\n");
	str_appendf(out, "| --- | --- | --- | --- | --- |\n");
	for (int opt = 0; opt < CONF_OPT__COUNT; opt++) {
		const char *def = conf_option_default(opt);
		unsigned scopes = conf_option_scopes(opt);
		bool first = true;

		str_appendf(out, "| `%s` | ", conf_option_name(opt));
		append_type(out, opt);
		if (def)
			str_appendf(out, " | `%s` | ", def);
		else
			str_appendf(out, " | none | ");
		for (size_t i = 0; i < sizeof(scope_names) / sizeof(scope_names[0]); i++) {
			if (!(scopes & scope_names[i].bit))
				continue;
			str_appendf(out, "%s%s", first ? "" : ", ", scope_names[i].name);
			first = false;
		}
		str_appendf(out, " | ");
		append_cell_text(out, conf_option_help(opt));
		str_appendf(out, " |\n");
	}
}
