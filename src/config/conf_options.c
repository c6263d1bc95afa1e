/*
 * conf_options.c - the option table and the typed value parsers
 *
 * conf_options.def is expanded here into one static array; everything
 * about an option (name, type, scopes, default, range, enum words, help)
 * is read from it. This file turns the text of a value into a typed
 * struct conf_value (conf_setting_build), used both for what the parser
 * reads and for the table defaults, which are parsed once, on first use,
 * by the same code: a default that does not parse is a bug in the table
 * and aborts the process with a message.
 *
 * State: the table is constant; the parsed defaults are built once under
 * pthread_once and only read afterwards, so any thread may call anything
 * here. Errors are returned as text without a location; the parser adds
 * "file:line:col: ".
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/conf_int.h"
#include "core/mem.h"

struct conf_option {
	const char *name;
	enum conf_type type;
	unsigned scopes;
	const char *def;
	int64_t min, max;
	const char *words;
	const char *help;
};

static const struct conf_option conf_table[CONF_OPT__COUNT] = {
#define CONF_OPTION(id, name, type, scopes, def, min, max, enumvals, help) \
	[CONF_OPT_##id] = { name, type, scopes, def, min, max, enumvals, help },
#include "config/conf_options.def"
#undef CONF_OPTION
};

/*
 * Old spellings still accepted, so configurations written before an option
 * took Momentum's name keep loading. Messages and docs use the table name.
 */
static const struct {
	const char *name;
	enum conf_opt opt;
} conf_aliases[] = {
	{ "Concurrency", CONF_OPT_CONCURRENCY },
	{ "Server_Timeout", CONF_OPT_SERVER_TIMEOUT },
	{ "Max_Line_Length", CONF_OPT_MAX_LINE_LENGTH },
};

/* ======================================================================
 * Table access
 * ====================================================================== */

/* opt_ok - whether opt indexes the table; callers passing junk get "?" answers. */
static bool opt_ok(enum conf_opt opt)
{
	return (unsigned)opt < CONF_OPT__COUNT;
}

const char *conf_option_name(enum conf_opt opt)
{
	return opt_ok(opt) ? conf_table[opt].name : "?";
}

enum conf_type conf_option_type(enum conf_opt opt)
{
	return opt_ok(opt) ? conf_table[opt].type : CONF_T_STRING;
}

const char *conf_option_help(enum conf_opt opt)
{
	return opt_ok(opt) ? conf_table[opt].help : "";
}

unsigned conf_option_scopes(enum conf_opt opt)
{
	return opt_ok(opt) ? conf_table[opt].scopes : 0;
}

const char *conf_option_default(enum conf_opt opt)
{
	return opt_ok(opt) ? conf_table[opt].def : NULL;
}

void conf_option_range(enum conf_opt opt, int64_t *min, int64_t *max)
{
	*min = opt_ok(opt) ? conf_table[opt].min : 0;
	*max = opt_ok(opt) ? conf_table[opt].max : 0;
}

const char *conf_option_enum_words(enum conf_opt opt)
{
	return opt_ok(opt) ? conf_table[opt].words : NULL;
}

const char *conf_type_name(enum conf_type t)
{
	switch (t) {
	case CONF_T_BOOL: return "boolean";
	case CONF_T_INT: return "integer";
	case CONF_T_INTERVAL: return "interval";
	case CONF_T_SIZE: return "size";
	case CONF_T_STRING: return "string";
	case CONF_T_LIST: return "list";
	case CONF_T_ENUM: return "enum";
	case CONF_T_THROTTLE: return "throttle";
	case CONF_T_RETRIES: return "retries";
	case CONF_T_LINE_LIMIT: return "line limit";
	case CONF_T_PARAMS: return "parameters";
	}
	return "?";
}

bool conf_ascii_caseeq_n(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (y >= 'A' && y <= 'Z')
			y += 32;
		if (x != y)
			return false;
	}
	return true;
}

bool conf_ascii_caseeq(const char *a, const char *b)
{
	size_t n = strlen(a);

	return n == strlen(b) && conf_ascii_caseeq_n(a, b, n);
}

int conf_option_lookup(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < CONF_OPT__COUNT; i++)
		if (conf_ascii_caseeq(conf_table[i].name, name))
			return i;
	for (size_t i = 0; i < sizeof(conf_aliases) / sizeof(conf_aliases[0]); i++)
		if (conf_ascii_caseeq(conf_aliases[i].name, name))
			return (int)conf_aliases[i].opt;
	return -1;
}

unsigned conf_name_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned row[64];

	if (la >= 63 || lb >= 63)
		return 9;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned diag = row[0];

		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned up = row[j];
			unsigned cost = conf_ascii_caseeq_n(a + i - 1, b + j - 1, 1) ? 0 : 1;
			unsigned best = diag + cost;

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

const char *conf_option_suggest(const char *name)
{
	const char *best = NULL;
	unsigned best_d = 3;	/* suggest only typos of one or two edits */

	for (int i = 0; i < CONF_OPT__COUNT; i++) {
		unsigned d = conf_name_distance(name, conf_table[i].name);

		if (d < best_d) {
			best_d = d;
			best = conf_table[i].name;
		}
	}
	return best;
}

/* ======================================================================
 * Enum words
 * ====================================================================== */

#define CONF_ENUM_WORDS_MAX 8

/* The enum words of each option split once (from conf_defaults_init). */
static struct {
	const char *w[CONF_ENUM_WORDS_MAX];
	size_t n;
} enum_words[CONF_OPT__COUNT];

/* split_enum_words - fill enum_words[opt]; abort on a malformed table entry. */
static void split_enum_words(enum conf_opt opt)
{
	const char *p = conf_table[opt].words;

	if (p == NULL) {
		if (conf_table[opt].type == CONF_T_ENUM) {
			fprintf(stderr, "impetus: BUG: enum option %s has no words\n", conf_table[opt].name);
			abort();
		}
		return;
	}
	for (;;) {
		size_t len = strcspn(p, "|");

		if (len == 0 || enum_words[opt].n == CONF_ENUM_WORDS_MAX) {
			fprintf(stderr, "impetus: BUG: bad enum words \"%s\" for %s\n",
				conf_table[opt].words, conf_table[opt].name);
			abort();
		}
		enum_words[opt].w[enum_words[opt].n++] = xstrndup(p, len);
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
}

/* enum_index - index of word among opt's words (case-insensitive), or -1. */
static int enum_index(enum conf_opt opt, const char *word)
{
	for (size_t i = 0; i < enum_words[opt].n; i++)
		if (conf_ascii_caseeq(enum_words[opt].w[i], word))
			return (int)i;
	return -1;
}

/* ======================================================================
 * Scalar parsers
 *
 * Each returns 0 on success, -1 on a syntax error and -2 when the number
 * does not fit in 64 bits (reported as out of range with the text).
 * ====================================================================== */

/* parse_digits - an unsigned decimal run at *pp; advances *pp. */
static int parse_digits(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;
	bool big = false;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			big = true;
		else
			v = v * 10 + d;
	}
	*pp = p;
	*out = v;
	return big ? -2 : 0;
}

/* parse_int - optional sign, digits, nothing else. */
static int parse_int(const char *s, int64_t *out)
{
	bool neg = false;
	uint64_t u;
	int r;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	r = parse_digits(&s, &u);
	if (r == -1 || *s != '\0')
		return -1;
	if (r == -2 || u > (uint64_t)INT64_MAX + (neg ? 1 : 0))
		return -2;
	/* -(u - 1) - 1 reaches INT64_MIN without overflowing anything. */
	*out = neg && u ? -(int64_t)(u - 1) - 1 : (int64_t)u;
	return 0;
}

/* parse_scaled - digits followed by a unit from units (factor per letter); no sign. */
static int parse_scaled(const char *s, int64_t *out, const char *units, const int64_t *factors,
			bool allow_b)
{
	uint64_t u;
	int64_t f = 1;
	int r = parse_digits(&s, &u);

	if (r == -1)
		return -1;
	if (*s != '\0') {
		const char *hit = NULL;

		for (const char *q = units; *q; q++)
			if ((*s | 0x20) == *q)
				hit = q;
		if (hit == NULL)
			return -1;
		f = factors[hit - units];
		s++;
		if (allow_b && *hit != 'b' && (*s | 0x20) == 'b')
			s++;
		if (*s != '\0')
			return -1;
	}
	if (r == -2 || u > (uint64_t)INT64_MAX / (uint64_t)f)
		return -2;
	*out = (int64_t)u * f;
	return 0;
}

/* parse_interval - N, Ns, Nm, Nh, Nd, Nw: seconds. */
static int parse_interval(const char *s, int64_t *out)
{
	static const int64_t f[] = { 1, 60, 3600, 86400, 604800 };

	return parse_scaled(s, out, "smhdw", f, false);
}

/* parse_size - N, NK, NM, NG, NT (1024-based; a trailing B is allowed): bytes. */
static int parse_size(const char *s, int64_t *out)
{
	static const int64_t f[] = { 1, 1024, 1024 * 1024, 1024 * 1024 * 1024,
				     (int64_t)1024 * 1024 * 1024 * 1024 };

	return parse_scaled(s, out, "bkmgt", f, true);
}

/* parse_bool - the usual spellings of yes and no. */
static int parse_bool(const char *s, bool *out)
{
	static const char *yes[] = { "true", "yes", "on", "1" };
	static const char *no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (conf_ascii_caseeq(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (conf_ascii_caseeq(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

int conf_scalar_parse(enum conf_type type, const char *text, int64_t *out)
{
	bool b;
	int r;

	switch (type) {
	case CONF_T_BOOL:
		r = parse_bool(text, &b);
		if (r == 0)
			*out = b;
		return r;
	case CONF_T_INT:
		return parse_int(text, out);
	case CONF_T_INTERVAL:
		return parse_interval(text, out);
	case CONF_T_SIZE:
		return parse_size(text, out);
	default:
		return -1;
	}
}

bool conf_parse_throttle(const char *s, struct conf_throttle *out)
{
	uint64_t count;
	int64_t period = 1;
	const char *p = s;

	if (s == NULL || parse_digits(&p, &count) != 0 || count > UINT32_MAX)
		return false;
	if (*p == '/') {
		if (parse_interval(p + 1, &period) != 0 || period < 1 || period > UINT32_MAX)
			return false;
	} else if (*p != '\0') {
		return false;
	}
	out->count = (uint32_t)count;
	out->period = (uint32_t)period;
	return true;
}

/* ======================================================================
 * Building a setting
 * ====================================================================== */

/* range_error - "value N out of range for Name (min..max)". */
static void range_error(struct str *msg, enum conf_opt opt, const char *text, int64_t v, int r)
{
	const struct conf_option *o = &conf_table[opt];

	str_appends(msg, "value ");
	if (r == -2)
		str_appendf(msg, "%.200s", text);
	else
		str_appendf(msg, "%" PRId64, v);
	str_appendf(msg, " out of range for %s (%" PRId64 "..%" PRId64 ")", o->name, o->min, o->max);
}

/* validate_list - the extra checks some list options need; fills s->extra. */
static bool validate_list(enum conf_opt opt, const struct conf_item *items, size_t n,
			  struct conf_arena *a, struct conf_setting *s, size_t *bad, struct str *msg)
{
	if (opt == CONF_OPT_RELAY_HOSTS) {
		struct conf_cidr_set *set = conf_arena_alloc(a, sizeof(*set));

		set->v = conf_arena_alloc(a, (n ? n : 1) * sizeof(set->v[0]));
		for (size_t i = 0; i < n; i++) {
			if (!conf_cidr_parse(items[i].text, &set->v[i])) {
				*bad = i;
				str_appendf(msg, "\"%.200s\" is not a valid address or CIDR block for %s",
					    items[i].text, conf_table[opt].name);
				return false;
			}
		}
		set->n = n;
		s->extra = set;
	} else if (opt == CONF_OPT_SMTP_EXTENSIONS) {
		return conf_extensions_build(items, n, a, s, bad, msg);
	} else if (opt == CONF_OPT_RELAY_DOMAINS) {
		for (size_t i = 0; i < n; i++) {
			const char *t = items[i].text;

			if (t[0] == '\0' || strpbrk(t, " \t\r\n@") || strchr(t + 1, '*')) {
				*bad = i;
				str_appendf(msg, "\"%.200s\" is not a valid domain for %s", t,
					    conf_table[opt].name);
				return false;
			}
		}
	}
	return true;
}

/* A word that stands for a special value of a number-valued option. */
struct special_word {
	const char *word;
	int64_t value;
};

/*
 * word_or_number - one of words (case-insensitive), or an integer in the
 * option's range: the RETRIES and LINE_LIMIT types. what and choices make
 * the error: "\"x\" is not <what> for Name (<choices>)".
 */
static bool word_or_number(enum conf_opt opt, const char *text, const struct special_word *words,
			   const char *what, const char *choices, int64_t *out, struct str *msg)
{
	const struct conf_option *o = &conf_table[opt];
	int64_t i = 0;
	int r;

	for (const struct special_word *w = words; w->word; w++)
		if (conf_ascii_caseeq(text, w->word)) {
			*out = w->value;
			return true;
		}
	r = parse_int(text, &i);
	if (r == -1) {
		str_appendf(msg, "\"%.200s\" is not %s for %s (%s)", text, what, o->name, choices);
		return false;
	}
	if (r == -2 || i < o->min || i > o->max) {
		range_error(msg, opt, text, i, r);
		return false;
	}
	*out = i;
	return true;
}

bool conf_setting_build(enum conf_opt opt, const struct conf_item *items, size_t n,
			bool is_list, struct conf_arena *a, struct conf_setting *out,
			size_t *bad, struct str *msg)
{
	const struct conf_option *o = &conf_table[opt];
	struct conf_value *v = &out->v;
	const char *text;
	int64_t i = 0;
	int r;

	*bad = 0;
	if (o->type == CONF_T_LIST) {
		const char **arr = conf_arena_alloc(a, (n ? n : 1) * sizeof(*arr));

		for (size_t k = 0; k < n; k++)
			arr[k] = conf_arena_strdup(a, items[k].text);
		v->u.list.v = arr;
		v->u.list.n = n;
		return validate_list(opt, items, n, a, out, bad, msg);
	}
	if (o->type != CONF_T_PARAMS && (is_list || n != 1)) {
		str_appendf(msg, "option \"%s\" takes a single value, not a list", o->name);
		return false;
	}
	text = items[0].text;
	switch (o->type) {
	case CONF_T_BOOL:
		if (parse_bool(text, &v->u.b) == 0)
			return true;
		str_appendf(msg, "\"%.200s\" is not a valid boolean for %s", text, o->name);
		return false;
	case CONF_T_INT:
	case CONF_T_INTERVAL:
	case CONF_T_SIZE:
		r = o->type == CONF_T_INT ? parse_int(text, &i) :
		    o->type == CONF_T_INTERVAL ? parse_interval(text, &i) : parse_size(text, &i);
		if (r == -1) {
			str_appendf(msg, "\"%.200s\" is not a valid %s for %s", text,
				    conf_type_name(o->type), o->name);
			return false;
		}
		if (r == -2 || i < o->min || i > o->max) {
			range_error(msg, opt, text, i, r);
			return false;
		}
		v->u.i = i;
		return true;
	case CONF_T_RETRIES: {
		static const struct special_word w[] = {
			{ "auto", CONF_RETRIES_AUTO }, { "none", CONF_RETRIES_NONE }, { NULL, 0 },
		};
		return word_or_number(opt, text, w, "a valid retry count", "auto, none or a number",
				      &v->u.i, msg);
	}
	case CONF_T_LINE_LIMIT: {
		static const struct special_word w[] = {
			{ "ignore", CONF_LINE_LIMIT_IGNORE }, { "pedantic", CONF_LINE_LIMIT_RFC },
			{ "fix", CONF_LINE_LIMIT_FIX }, { NULL, 0 },
		};
		return word_or_number(opt, text, w, "a valid value", "ignore, pedantic, fix or a number",
				      &v->u.i, msg);
	}
	case CONF_T_ENUM:
		r = enum_index(opt, text);
		if (r < 0) {
			str_appendf(msg, "\"%.200s\" is not a valid value for %s (", text, o->name);
			for (size_t k = 0; k < enum_words[opt].n; k++)
				str_appendf(msg, "%s%s", k ? ", " : "", enum_words[opt].w[k]);
			str_appendc(msg, ')');
			return false;
		}
		v->u.i = r;
		return true;
	case CONF_T_THROTTLE:
		if (conf_parse_throttle(text, &v->u.t))
			return true;
		str_appendf(msg, "\"%.200s\" is not a valid throttle for %s (N or N/seconds)", text, o->name);
		return false;
	case CONF_T_STRING:
		if (opt == CONF_OPT_BIND_ADDRESS && !conf_ip_literal_valid(text)) {
			str_appendf(msg, "\"%.200s\" is not a valid IP address for %s", text, o->name);
			return false;
		}
		v->u.s = conf_arena_strdup(a, text);
		return true;
	case CONF_T_PARAMS:
		str_appendf(msg, "option \"%s\" takes an array: [ key = value ... ]", o->name);
		return false;
	case CONF_T_LIST:
		break;
	}
	str_appendf(msg, "BUG: option %s has an unknown type", o->name);
	return false;
}

/* ======================================================================
 * Defaults
 * ====================================================================== */

static struct conf_setting defaults[CONF_OPT__COUNT];
static struct conf_arena defaults_arena;
static pthread_once_t defaults_once = PTHREAD_ONCE_INIT;

/*
 * split_default_list - the items of a list default: "( a "b" c )" or "a b";
 * words separated by blanks or commas, double quotes stripped (list
 * defaults are simple literals, never escapes).
 */
static size_t split_default_list(const char *def, struct conf_item *items, size_t max)
{
	size_t n = 0;
	const char *p = def;

	while (*p) {
		p += strspn(p, " \t,()");
		if (*p == '\0')
			break;
		if (*p == '"') {
			const char *q = strchr(p + 1, '"');
			size_t len = q ? (size_t)(q - p - 1) : strlen(p + 1);

			if (n < max)
				items[n++].text = conf_arena_strndup(&defaults_arena, p + 1, len);
			p = q ? q + 1 : p + 1 + len;
		} else {
			size_t len = strcspn(p, " \t,()\"");

			if (n < max)
				items[n++].text = conf_arena_strndup(&defaults_arena, p, len);
			p += len;
		}
	}
	return n;
}

/* defaults_init - parse every table default; abort on a bad one (a bug in the table). */
static void defaults_init(void)
{
	struct str msg = STR_INIT;

	for (int i = 0; i < CONF_OPT__COUNT; i++) {
		const struct conf_option *o = &conf_table[i];
		struct conf_item items[32];
		size_t n, bad;

		split_enum_words((enum conf_opt)i);
		if (o->min > o->max) {
			fprintf(stderr, "impetus: BUG: option %s has min > max\n", o->name);
			abort();
		}
		if (o->def == NULL)
			continue;	/* zero: false, 0, NULL string, empty list, no throttle */
		memset(items, 0, sizeof(items));
		if (o->type == CONF_T_LIST) {
			n = split_default_list(o->def, items, 32);
		} else {
			items[0].text = o->def;
			n = 1;
		}
		if (!conf_setting_build((enum conf_opt)i, items, n, false, &defaults_arena,
					&defaults[i], &bad, &msg)) {
			fprintf(stderr, "impetus: BUG: bad default for %s: %s\n", o->name, str_cstr(&msg));
			abort();
		}
	}
	str_free(&msg);
}

const struct conf_setting *conf_default_setting(enum conf_opt opt)
{
	pthread_once(&defaults_once, defaults_init);
	return &defaults[opt];
}

const char *conf_enum_word(enum conf_opt opt, int64_t index)
{
	pthread_once(&defaults_once, defaults_init);
	if (!opt_ok(opt) || index < 0 || (uint64_t)index >= enum_words[opt].n)
		return "?";
	return enum_words[opt].w[index];
}

/* ======================================================================
 * Formatting
 * ====================================================================== */

/* append_quoted - s as a double-quoted configuration string. */
static void append_quoted(struct str *out, const char *s)
{
	str_appendc(out, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			str_appendc(out, '\\');
		if (*s == '\n')
			str_appends(out, "\\n");
		else if (*s == '\t')
			str_appends(out, "\\t");
		else if (*s == '\r')
			str_appends(out, "\\r");
		else
			str_appendc(out, *s);
	}
	str_appendc(out, '"');
}

void conf_value_format(enum conf_opt opt, const struct conf_value *v, struct str *out)
{
	if (!opt_ok(opt) || v == NULL) {
		str_appends(out, "(unset)");
		return;
	}
	switch (conf_table[opt].type) {
	case CONF_T_BOOL:
		str_appends(out, v->u.b ? "true" : "false");
		return;
	case CONF_T_INT:
	case CONF_T_INTERVAL:
	case CONF_T_SIZE:
		str_appendf(out, "%" PRId64, v->u.i);
		return;
	case CONF_T_ENUM:
		str_appends(out, conf_enum_word(opt, v->u.i));
		return;
	case CONF_T_LINE_LIMIT:
		if (v->u.i == CONF_LINE_LIMIT_IGNORE)
			str_appends(out, "ignore");
		else if (v->u.i == CONF_LINE_LIMIT_FIX)
			str_appends(out, "fix");
		else if (v->u.i == CONF_LINE_LIMIT_RFC)
			str_appends(out, "pedantic");
		else
			str_appendf(out, "%" PRId64, v->u.i);
		return;
	case CONF_T_RETRIES:
		if (v->u.i == CONF_RETRIES_AUTO)
			str_appends(out, "auto");
		else if (v->u.i == CONF_RETRIES_NONE)
			str_appends(out, "none");
		else
			str_appendf(out, "%" PRId64, v->u.i);
		return;
	case CONF_T_THROTTLE:
		if (v->u.t.count == 0 && v->file == NULL && conf_table[opt].def == NULL)
			str_appends(out, "(unset)");
		else if (v->u.t.period <= 1)
			str_appendf(out, "\"%" PRIu32 "\"", v->u.t.count);
		else
			str_appendf(out, "\"%" PRIu32 "/%" PRIu32 "\"", v->u.t.count, v->u.t.period);
		return;
	case CONF_T_STRING:
		if (v->u.s == NULL)
			str_appends(out, "(unset)");
		else
			append_quoted(out, v->u.s);
		return;
	case CONF_T_LIST:
		if (v->u.list.n == 0 && v->file == NULL) {
			str_appends(out, "(unset)");
			return;
		}
		str_appendc(out, '(');
		for (size_t i = 0; i < v->u.list.n; i++) {
			str_appendc(out, ' ');
			append_quoted(out, v->u.list.v[i]);
		}
		str_appends(out, " )");
		return;
	case CONF_T_PARAMS:
		if (v->u.list.n == 0) {
			str_appends(out, "(unset)");
			return;
		}
		str_appendc(out, '[');
		for (size_t i = 0; i + 1 < v->u.list.n; i += 2) {
			str_appendf(out, " %s = ", v->u.list.v[i]);
			append_quoted(out, v->u.list.v[i + 1]);
		}
		str_appends(out, " ]");
		return;
	}
}
