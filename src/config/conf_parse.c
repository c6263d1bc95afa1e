/*
 * conf_parse.c - the ecelerity.conf reader: lexer, parser, includes
 *
 * Grammar (Momentum's syntax; names of options and scopes are matched
 * without regard to case):
 *
 *     file      := stmt*
 *     stmt      := WORD "=" value                 option
 *                | WORD [ WORD | STRING ] "{" stmt* "}"   scope stanza
 *                | "include" ( WORD | STRING )
 *     value     := WORD | STRING | "(" ( WORD | STRING | "," )* ")"
 *
 * WORD is a run of anything but blanks, quotes, "#", "=", ",", braces and
 * parentheses; STRING is double-quoted with \" \\ \n \t \r escapes (other
 * backslashes are kept, so regexes survive); it ends on its line unless
 * the newline is escaped with a backslash (continuation); "#" starts
 * a comment to the end of the line. Each statement is checked as soon as
 * it is read (known option, allowed in this scope, not set twice, value of
 * the right type and range), and the first problem stops the load with
 * "file:line:col: message" appended to err. Columns count characters
 * (UTF-8 sequences count once), from 1.
 *
 * Robustness: the input is a byte buffer with an explicit length; NUL
 * bytes and control characters are errors, files are capped at
 * CONF_FILE_MAX, includes at CONF_INCLUDE_DEPTH_MAX levels with loop
 * detection by (device, inode), and the scope rules bound the nesting of
 * stanzas, so recursion is bounded for any input.
 *
 * State: one struct parser per load, on the loading thread's stack.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/conf_int.h"
#include "core/mem.h"

struct parser {
	struct conf *c;
	struct str *err;
	struct str sbuf;		/* string unescaping */
	struct str msg;			/* value error text */
	struct conf_item *items;	/* the value being read */
	size_t nitems, items_cap;
	struct {
		dev_t dev;
		ino_t ino;
	} stack[CONF_INCLUDE_DEPTH_MAX + 1];	/* files being read */
	int depth;
	/*
	 * The line of the last password option (Outbound_SMTP_AUTH_Pass) and
	 * its file: the words and strings on that line are not echoed in
	 * errors, since a stray one (`= "a" "b"`, `= my secret`) may be the
	 * password or part of it.
	 */
	const char *secret_file;
	int secret_line;
};

struct lexer {
	struct parser *P;
	const char *name;	/* arena: the file as named in messages */
	const char *dir;	/* arena: base of relative includes */
	const char *p, *end;
	int line, col;
};

enum tok_kind {
	T_EOF, T_WORD, T_STRING, T_EQ, T_LBRACE, T_RBRACE, T_LPAREN, T_RPAREN, T_COMMA,
	T_LBRACKET, T_RBRACKET
};

struct token {
	enum tok_kind kind;
	const char *text;	/* arena, NUL-terminated: WORD and STRING only */
	int line, col;
};

/* perr - append "file:line:col: message" to err; always false, for "return perr(...)". */
__attribute__((format(printf, 4, 5)))
static bool perr(struct lexer *L, int line, int col, const char *fmt, ...)
{
	va_list ap;

	if (L->P->err == NULL)
		return false;
	str_appendf(L->P->err, "%s:%d:%d: ", L->name, line, col);
	va_start(ap, fmt);
	str_vappendf(L->P->err, fmt, ap);
	va_end(ap);
	return false;
}

/* ======================================================================
 * Lexer
 * ====================================================================== */

/* adv - consume one byte, keeping line and column. */
static void adv(struct lexer *L)
{
	unsigned char ch = (unsigned char)*L->p++;

	if (ch == '\n') {
		L->line++;
		L->col = 1;
	} else if ((ch & 0xc0) != 0x80) {
		L->col++;
	}
}

static bool is_blank(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\f' || ch == '\v';
}

/* ends_word - bytes that cannot be part of a bare word. */
static bool ends_word(unsigned char ch)
{
	return ch < 0x20 || ch == 0x7f || ch == ' ' || strchr("=(){}[],\"#", ch) != NULL;
}

/* lex_string - a double-quoted string; the opening quote is at L->p. */
static bool lex_string(struct lexer *L, struct token *t)
{
	struct str *b = &L->P->sbuf;

	str_clear(b);
	adv(L);
	for (;;) {
		if (L->p == L->end)
			return perr(L, t->line, t->col, "unterminated string");
		char ch = *L->p;

		if (ch == '"') {
			adv(L);
			break;
		}
		/* A raw newline almost always means a missing quote: report it at
		 * the opening quote. Long values use backslash-newline instead. */
		if (ch == '\n')
			return perr(L, t->line, t->col, "unterminated string");
		if (ch == '\0')
			return perr(L, L->line, L->col, "NUL byte in configuration");
		if (ch != '\\') {
			str_appendc(b, ch);
			adv(L);
			continue;
		}
		adv(L);
		if (L->p == L->end)
			return perr(L, t->line, t->col, "unterminated string");
		ch = *L->p;
		switch (ch) {
		case '"': str_appendc(b, '"'); break;
		case '\\': str_appendc(b, '\\'); break;
		case 'n': str_appendc(b, '\n'); break;
		case 't': str_appendc(b, '\t'); break;
		case 'r': str_appendc(b, '\r'); break;
		case '\n': break;	/* line continuation */
		case '\0':
			return perr(L, L->line, L->col, "NUL byte in configuration");
		default:
			/* Unknown escapes keep their backslash: "\." stays a regex escape. */
			str_appendc(b, '\\');
			str_appendc(b, ch);
			break;
		}
		adv(L);
	}
	t->kind = T_STRING;
	t->text = conf_arena_strndup(&L->P->c->arena, str_cstr(b), b->len);
	return true;
}

/* lex - the next token; false (error reported) on bad input. */
static bool lex(struct lexer *L, struct token *t)
{
	for (;;) {
		t->line = L->line;
		t->col = L->col;
		t->text = NULL;
		if (L->p == L->end) {
			t->kind = T_EOF;
			return true;
		}
		unsigned char ch = (unsigned char)*L->p;

		if (is_blank(ch)) {
			adv(L);
			continue;
		}
		if (ch == '#') {
			while (L->p < L->end && *L->p != '\n') {
				if (*L->p == '\0')
					return perr(L, L->line, L->col, "NUL byte in configuration");
				adv(L);
			}
			continue;
		}
		switch (ch) {
		case '=': t->kind = T_EQ; adv(L); return true;
		case '{': t->kind = T_LBRACE; adv(L); return true;
		case '}': t->kind = T_RBRACE; adv(L); return true;
		case '(': t->kind = T_LPAREN; adv(L); return true;
		case ')': t->kind = T_RPAREN; adv(L); return true;
		case ',': t->kind = T_COMMA; adv(L); return true;
		case '[': t->kind = T_LBRACKET; adv(L); return true;
		case ']': t->kind = T_RBRACKET; adv(L); return true;
		case '"': return lex_string(L, t);
		case '\0': return perr(L, L->line, L->col, "NUL byte in configuration");
		default: break;
		}
		if (ch < 0x20 || ch == 0x7f)
			return perr(L, L->line, L->col, "unexpected control character 0x%02x", ch);
		const char *start = L->p;
		while (L->p < L->end && !ends_word((unsigned char)*L->p))
			adv(L);
		t->kind = T_WORD;
		t->text = conf_arena_strndup(&L->P->c->arena, start, (size_t)(L->p - start));
		return true;
	}
}

/* secret_at - whether a token at line may be (part of) a password (struct parser). */
static bool secret_at(const struct lexer *L, int line)
{
	return L->P->secret_line == line && L->P->secret_file == L->name;
}

/* shown - the text of the token t in an error, unless it may be a password. */
static const char *shown(const struct lexer *L, const struct token *t)
{
	return secret_at(L, t->line) ? "(not shown: on a password's line)" : t->text;
}

/* describe - a token as shown in "unexpected ..." messages. */
static const char *describe(const struct lexer *L, const struct token *t, char *buf, size_t len)
{
	static const char *punct[] = {
		[T_EQ] = "\"=\"", [T_LBRACE] = "\"{\"", [T_RBRACE] = "\"}\"",
		[T_LPAREN] = "\"(\"", [T_RPAREN] = "\")\"", [T_COMMA] = "\",\"",
		[T_LBRACKET] = "\"[\"", [T_RBRACKET] = "\"]\"",
	};

	switch (t->kind) {
	case T_EOF:
		return "end of file";
	case T_WORD:
	case T_STRING:
		if (secret_at(L, t->line))
			return t->kind == T_STRING ? "a string (not shown: on a password's line)" :
						     "a word (not shown: on a password's line)";
		snprintf(buf, len, "%s\"%.60s\"", t->kind == T_STRING ? "string " : "", t->text);
		return buf;
	default:
		return punct[t->kind];
	}
}

/* ======================================================================
 * Options
 * ====================================================================== */

/* push_item - append one value item to the parser's scratch list. */
static void push_item(struct parser *P, const struct token *t)
{
	if (P->nitems == P->items_cap) {
		P->items_cap = P->items_cap ? P->items_cap * 2 : 16;
		P->items = xrealloc(P->items, P->items_cap * sizeof(*P->items));
	}
	P->items[P->nitems].text = t->text;
	P->items[P->nitems].line = t->line;
	P->items[P->nitems].col = t->col;
	P->nitems++;
}

/* scope_kind - the node kind a scope name introduces, or -1. */
static int scope_kind(const char *name)
{
	for (int k = CONF_N_BINDING_GROUP; k < CONF_N__COUNT; k++)
		if (conf_ascii_caseeq(name, conf_node_kind_name((enum conf_node_kind)k)))
			return k;
	return -1;
}

/* The shape of a value as written. */
enum value_shape { SHAPE_SCALAR, SHAPE_LIST, SHAPE_ARRAY };

/*
 * parse_array - after "[": "key = value" pairs (commas between them
 * optional, as in lists) up to "]", pushed as key, value, key, value.
 */
static bool parse_array(struct lexer *L, struct token *close)
{
	struct parser *P = L->P;
	struct token t, eq, val;
	char buf[96];

	for (;;) {
		if (!lex(L, &t))
			return false;
		if (t.kind == T_COMMA)
			continue;
		if (t.kind == T_RBRACKET) {
			*close = t;
			return true;
		}
		if (t.kind == T_EOF)
			return perr(L, t.line, t.col, "expected \"]\"");
		if (t.kind != T_WORD && t.kind != T_STRING)
			return perr(L, t.line, t.col, "expected a key in the array, not %s",
				    describe(L, &t, buf, sizeof(buf)));
		if (!lex(L, &eq))
			return false;
		if (eq.kind != T_EQ)
			return perr(L, eq.line, eq.col, "expected \"=\" after the key \"%.60s\", not %s",
				    t.text, describe(L, &eq, buf, sizeof(buf)));
		if (!lex(L, &val))
			return false;
		if (val.kind != T_WORD && val.kind != T_STRING)
			return perr(L, val.line, val.col, "expected a value after \"%.60s =\", not %s",
				    t.text, describe(L, &val, buf, sizeof(buf)));
		push_item(P, &t);
		push_item(P, &val);
	}
}

/* parse_value - after "Name =": a word, a string, a parenthesised list or a bracketed array. */
static bool parse_value(struct lexer *L, const struct token *name, enum value_shape *shape,
			struct token *open, struct token *close)
{
	struct parser *P = L->P;
	struct token t;
	char buf[96];

	P->nitems = 0;
	*shape = SHAPE_SCALAR;
	if (!lex(L, &t))
		return false;
	*open = t;
	*close = t;
	if (t.kind == T_WORD || t.kind == T_STRING) {
		push_item(P, &t);
		return true;
	}
	if (t.kind == T_LBRACKET) {
		*shape = SHAPE_ARRAY;
		return parse_array(L, close);
	}
	if (t.kind != T_LPAREN)
		return perr(L, t.line, t.col, "expected a value after \"%s =\", not %s", name->text,
			    describe(L, &t, buf, sizeof(buf)));
	*shape = SHAPE_LIST;
	for (;;) {
		if (!lex(L, &t))
			return false;
		switch (t.kind) {
		case T_WORD:
		case T_STRING:
			push_item(P, &t);
			break;
		case T_COMMA:
			break;
		case T_RPAREN:
			return true;
		case T_EOF:
			return perr(L, t.line, t.col, "expected \")\"");
		default:
			return perr(L, t.line, t.col, "unexpected %s in list", describe(L, &t, buf, sizeof(buf)));
		}
	}
}

/*
 * module_value - after "name =" of an option a module reads (its own
 * stanza or a scoped one): the value as written, a word, a string or a
 * list, copied into the configuration's arena; an array is refused.
 */
static bool module_value(struct lexer *L, const struct token *name, struct conf_module_option *out)
{
	struct parser *P = L->P;
	struct conf *c = P->c;
	enum value_shape shape;
	struct token open, close;

	if (!parse_value(L, name, &shape, &open, &close))
		return false;
	if (shape == SHAPE_ARRAY)
		return perr(L, open.line, open.col, "module options do not take an array [ ... ]");
	struct conf_module_value *v = conf_arena_alloc(&c->arena,
						       (P->nitems ? P->nitems : 1) * sizeof(*v));
	for (size_t i = 0; i < P->nitems; i++) {
		v[i].text = conf_arena_strdup(&c->arena, P->items[i].text);
		v[i].line = P->items[i].line;
		v[i].col = P->items[i].col;
	}
	*out = (struct conf_module_option){
		.name = name->text, .line = name->line, .col = name->col,
		.is_list = shape == SHAPE_LIST, .v = v, .n = P->nitems,
	};
	return true;
}

/*
 * scoped_option - "name =" of an option the core does not know, in a
 * delivery scope: keep it as written for a module's scoped option table
 * (config.h); the module loader checks it. A second one in the same
 * stanza is refused here, as for core options.
 */
static bool scoped_option(struct lexer *L, struct conf_node *node, const struct token *name)
{
	struct parser *P = L->P;
	struct conf *c = P->c;

	for (const struct conf_scoped_setting *o = node->scoped; o; o = o->next)
		if (conf_ascii_caseeq(o->opt.name, name->text))
			return perr(L, name->line, name->col,
				    "duplicate option \"%s\" in this scope (first set at %s:%d)",
				    name->text, o->file, o->opt.line);
	struct conf_module_option opt;
	if (!module_value(L, name, &opt))
		return false;
	struct conf_scoped_setting *o = conf_arena_alloc(&c->arena, sizeof(*o));

	o->opt = opt;
	if (secret_at(L, name->line))	/* never a module's option: keep it out of messages */
		o->opt.name = "(not shown: on a password's line)";
	o->file = L->name;
	o->scope = conf_node_kind_name(node->kind);
	o->next = node->scoped;
	node->scoped = o;
	if (node->kind == CONF_N_DOMAIN && node->re)
		node->parent->regex_scoped = true;
	if (c->nscoped == c->scoped_cap) {
		c->scoped_cap = c->scoped_cap ? c->scoped_cap * 2 : 8;
		c->scoped = xrealloc(c->scoped, c->scoped_cap * sizeof(*c->scoped));
	}
	c->scoped[c->nscoped++] = o;
	return true;
}

/*
 * scoped_check - after the whole file: without any module stanza, no
 * module can declare a scoped option, so the first one is what it always
 * was, an unknown option.
 */
static bool scoped_check(struct parser *P)
{
	struct conf *c = P->c;

	if (c->nscoped == 0 || c->nmodules > 0)
		return true;
	const struct conf_scoped_setting *o = c->scoped[0];
	const char *sug = conf_option_suggest(o->opt.name);

	if (P->err) {
		str_appendf(P->err, "%s:%d:%d: unknown option \"%.100s\"", o->file, o->opt.line,
			    o->opt.col, o->opt.name);
		if (sug)
			str_appendf(P->err, " (did you mean \"%s\"?)", sug);
	}
	return false;
}

/* parse_option - "Name = value" in node; the "=" has been read. */
static bool parse_option(struct lexer *L, struct conf_node *node, const struct token *name)
{
	struct parser *P = L->P;
	int id = conf_option_lookup(name->text);

	if (id < 0) {
		if (scope_kind(name->text) >= 0)
			return perr(L, name->line, name->col, "\"%.100s\" is a scope, not an option",
				    name->text);
		/* Maybe a module's (config.h, "Scoped module options"); the loader decides. */
		if (node->kind != CONF_N_ESMTP_LISTENER && node->kind != CONF_N_LISTEN &&
		    node->kind != CONF_N_CONTROL_LISTENER && node->kind != CONF_N_CONTROL_LISTEN &&
		    node->kind != CONF_N_HTTP_LISTENER && node->kind != CONF_N_HTTP_LISTEN &&
		    node->kind != CONF_N_HTTP_KEY && node->kind != CONF_N_WEBHOOK)
			return scoped_option(L, node, name);

		const char *sug = conf_option_suggest(name->text);
		if (sug)
			return perr(L, name->line, name->col,
				    "unknown option \"%.100s\" (did you mean \"%s\"?)",
				    shown(L, name), sug);
		return perr(L, name->line, name->col, "unknown option \"%.100s\"",
			    shown(L, name));
	}
	if (id == CONF_OPT_OUTBOUND_SMTP_AUTH_PASS) {
		P->secret_file = L->name;
		P->secret_line = name->line;
	}
	enum conf_opt opt = (enum conf_opt)id;
	const char *oname = conf_option_name(opt);

	if (!(conf_option_scopes(opt) & conf_node_kind_scope(node->kind)))
		return perr(L, name->line, name->col, "option \"%s\" is not allowed in %s scope",
			    oname, conf_node_kind_name(node->kind));
	if (node->vals[opt])
		return perr(L, name->line, name->col,
			    "duplicate option \"%s\" in this scope (first set at %s:%d)",
			    oname, node->vals[opt]->v.file, node->vals[opt]->v.line);

	enum value_shape shape;
	struct token open, close;
	if (!parse_value(L, name, &shape, &open, &close))
		return false;

	struct conf_setting *s = conf_arena_alloc(&P->c->arena, sizeof(*s));
	size_t bad = 0;
	bool is_list = shape == SHAPE_LIST;
	bool ok;

	s->v.file = L->name;
	s->v.line = name->line;
	s->col = name->col;
	str_clear(&P->msg);
	if (shape == SHAPE_ARRAY && conf_option_type(opt) != CONF_T_PARAMS)
		return perr(L, open.line, open.col, "option \"%s\" does not take an array [ ... ]",
			    oname);
	if (shape == SHAPE_ARRAY)
		ok = conf_params_build(opt, P->items, P->nitems, &P->c->arena, s, &bad, &P->msg);
	else
		ok = conf_setting_build(opt, P->items, P->nitems, is_list, &P->c->arena, s, &bad,
					&P->msg);
	if (!ok) {
		/* Point at the item that is wrong, or at the "(" / "]" when the shape is. */
		int line = open.line, col = open.col;

		if (bad < P->nitems && !(is_list && conf_option_type(opt) != CONF_T_LIST)) {
			line = P->items[bad].line;
			col = P->items[bad].col;
		} else if (shape == SHAPE_ARRAY) {
			line = close.line;
			col = close.col;
		}
		return perr(L, line, col, "%s", str_cstr(&P->msg));
	}
	node->vals[opt] = s;
	if (node->kind == CONF_N_DOMAIN && node->re)
		node->parent->regex_sets[opt] = true;
	return true;
}

/* ======================================================================
 * Scopes
 * ====================================================================== */

static bool parse_block(struct lexer *L, struct conf_node *node, bool until_eof);

/* scope_allowed - whether a stanza of kind k may appear inside parent. */
static bool scope_allowed(int k, enum conf_node_kind parent)
{
	switch (k) {
	case CONF_N_BINDING_GROUP:
	case CONF_N_ESMTP_LISTENER:
	case CONF_N_CONTROL_LISTENER:
	case CONF_N_HTTP_LISTENER:
	case CONF_N_WEBHOOK:
		return parent == CONF_N_GLOBAL;
	case CONF_N_CONTROL_LISTEN:
		return parent == CONF_N_CONTROL_LISTENER;
	case CONF_N_HTTP_LISTEN:
	case CONF_N_HTTP_KEY:
		return parent == CONF_N_HTTP_LISTENER;
	case CONF_N_BINDING:
		return parent == CONF_N_GLOBAL || parent == CONF_N_BINDING_GROUP;
	case CONF_N_DOMAIN:
		return parent == CONF_N_GLOBAL || parent == CONF_N_BINDING_GROUP ||
		       parent == CONF_N_BINDING;
	case CONF_N_LISTEN:
		return parent == CONF_N_ESMTP_LISTENER;
	default:
		return false;
	}
}

/* new_domain - a Domain stanza in container parent (exact name or "/regex/"). */
static struct conf_node *new_domain(struct lexer *L, struct conf_node *parent, const struct token *arg)
{
	struct conf *c = L->P->c;
	const char *name = arg->text;
	size_t len = strlen(name);
	struct conf_node *n;

	if (len >= 2 && name[0] == '/' && name[len - 1] == '/') {
		int errcode;
		PCRE2_SIZE off;
		pcre2_code *re;

		for (size_t i = 0; i < parent->nregex; i++) {
			n = parent->regex[i];
			if (strcmp(n->name, name) == 0) {
				perr(L, arg->line, arg->col, "duplicate Domain \"%s\" (first at %s:%d)",
				     name, n->file, n->line);
				return NULL;
			}
		}
		re = pcre2_compile((PCRE2_SPTR)name + 1, len - 2, PCRE2_CASELESS, &errcode, &off, NULL);
		if (re == NULL) {
			PCRE2_UCHAR msg[256];

			pcre2_get_error_message(errcode, msg, sizeof(msg));
			perr(L, arg->line, arg->col, "invalid regular expression in Domain \"%s\": %s at offset %zu",
			     name, (const char *)msg, (size_t)off);
			return NULL;
		}
		pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);	/* faster when available; optional */
		n = conf_node_new(c, CONF_N_DOMAIN, parent, name, L->name, arg->line, arg->col);
		n->re = re;
		if (parent->nregex == parent->regex_cap) {
			parent->regex_cap = parent->regex_cap ? parent->regex_cap * 2 : 4;
			parent->regex = xrealloc(parent->regex, parent->regex_cap * sizeof(*parent->regex));
		}
		parent->regex[parent->nregex++] = n;
		return n;
	}
	if (len > 1 && name[len - 1] == '.')
		len--;		/* "example.com." names the same domain */
	n = conf_map_get(&parent->domains, name, len);
	if (n) {
		perr(L, arg->line, arg->col, "duplicate Domain \"%s\" (first at %s:%d)",
		     name, n->file, n->line);
		return NULL;
	}
	n = conf_node_new(c, CONF_N_DOMAIN, parent, conf_arena_strndup(&c->arena, name, len),
			  L->name, arg->line, arg->col);
	conf_map_put(&parent->domains, n->name, len, n);
	if (conf_map_get(&c->all_domains, n->name, len) == NULL)
		conf_map_put(&c->all_domains, n->name, len, n);
	return n;
}

/* new_listen - a Listen stanza: a valid, unique address. */
static struct conf_node *new_listen(struct lexer *L, struct conf_node *parent, const struct token *arg)
{
	struct conf *c = L->P->c;
	struct conf_listener *l = conf_arena_alloc(&c->arena, sizeof(*l));
	char canon[80];

	if (!conf_listen_parse(arg->text, &l->ss, &l->sslen, canon, sizeof(canon))) {
		perr(L, arg->line, arg->col,
		     "\"%s\" is not a valid listen address (use \"ip:port\" or \"[ipv6]:port\")", arg->text);
		return NULL;
	}
	for (size_t i = 0; i < c->nlisteners; i++) {
		if (strcmp(c->listeners[i]->address, canon) == 0) {
			perr(L, arg->line, arg->col, "duplicate Listen \"%s\" (first at %s:%d)",
			     arg->text, c->listeners[i]->node->file, c->listeners[i]->node->line);
			return NULL;
		}
	}
	l->address = conf_arena_strdup(&c->arena, canon);
	l->node = conf_node_new(c, CONF_N_LISTEN, parent, l->address, L->name, arg->line, arg->col);
	if (c->nlisteners == c->listeners_cap) {
		size_t cap = c->listeners_cap ? c->listeners_cap * 2 : 4;
		struct conf_listener **v = conf_arena_alloc(&c->arena, cap * sizeof(*v));

		if (c->nlisteners)
			memcpy(v, c->listeners, c->nlisteners * sizeof(*v));
		c->listeners = v;
		c->listeners_cap = cap;
	}
	c->listeners[c->nlisteners++] = l;
	return l->node;
}

/*
 * node_list_push - append n to an arena-backed array of stanzas (the
 * Bindings, the control sockets), doubling it when full; the old array
 * stays in the arena until the configuration goes.
 */
static void node_list_push(struct conf *c, struct conf_node ***list, size_t *len, size_t *cap,
			   struct conf_node *n)
{
	if (*len == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct conf_node **v = conf_arena_alloc(&c->arena, ncap * sizeof(*v));

		if (*len)
			memcpy(v, *list, *len * sizeof(*v));
		*list = v;
		*cap = ncap;
	}
	(*list)[(*len)++] = n;
}

/*
 * new_control_listen - a Listen stanza of Control_Listener: a Unix socket
 * path (anything with a "/") or a TCP address ("127.0.0.1:2025",
 * "[::1]:2025", port 1..65535, kept in canonical form, which never has a
 * "/"), unique. Whether a TCP address may be other than loopback is
 * decided once the whole Control_Listener is read (control_remote_check).
 */
static struct conf_node *new_control_listen(struct lexer *L, struct conf_node *parent,
					    const struct token *arg)
{
	struct conf *c = L->P->c;
	struct sockaddr_un sun;
	struct conf_node *n;
	const char *name = arg->text;
	char canon[80];

	if (strchr(arg->text, '/') == NULL) {
		struct sockaddr_storage ss;
		socklen_t sslen;

		if (!conf_listen_parse(arg->text, &ss, &sslen, canon, sizeof(canon)) ||
		    strcmp(strrchr(canon, ':'), ":0") == 0) {
			perr(L, arg->line, arg->col,
			     "Control_Listener Listen \"%.100s\" is neither a Unix socket path "
			     "(write it with a \"/\", e.g. \"./var/control\") nor a TCP address "
			     "with a port (\"127.0.0.1:2025\", \"[::1]:2025\")", arg->text);
			return NULL;
		}
		name = canon;
	} else if (strlen(arg->text) >= sizeof(sun.sun_path)) {
		perr(L, arg->line, arg->col, "Control_Listener Listen path is longer than %zu bytes",
		     sizeof(sun.sun_path) - 1);
		return NULL;
	}
	for (size_t i = 0; i < c->ncontrols; i++) {
		if (strcmp(c->controls[i]->name, name) == 0) {
			perr(L, arg->line, arg->col, "duplicate Listen \"%s\" (first at %s:%d)",
			     arg->text, c->controls[i]->file, c->controls[i]->line);
			return NULL;
		}
	}
	n = conf_node_new(c, CONF_N_CONTROL_LISTEN, parent, conf_arena_strdup(&c->arena, name),
			  L->name, arg->line, arg->col);
	node_list_push(c, &c->controls, &c->ncontrols, &c->controls_cap, n);
	return n;
}

/* sockaddr_is_loopback - 127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104. */
static bool sockaddr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return false;
}

/*
 * control_remote_check - at the end of Control_Listener: a TCP Listen on
 * an address other than loopback needs Allow_Remote = true (in that
 * Listen or in Control_Listener), because the console has no
 * authentication of its own.
 */
static bool control_remote_check(struct lexer *L)
{
	struct conf *c = L->P->c;

	for (size_t i = 0; i < c->ncontrols; i++) {
		const struct conf_node *n = c->controls[i];
		struct sockaddr_storage ss;
		socklen_t sslen;
		char canon[80];

		if (strchr(n->name, '/') != NULL ||
		    !conf_listen_parse(n->name, &ss, &sslen, canon, sizeof(canon)) ||
		    sockaddr_is_loopback(&ss) || conf_control_get(c, i, CONF_OPT_ALLOW_REMOTE)->u.b)
			continue;
		if (L->P->err)
			str_appendf(L->P->err, "%s:%d:%d: Control_Listener Listen \"%s\" is not a "
				    "loopback address: the console has no authentication; set "
				    "Allow_Remote = true in that Listen to accept it", n->file,
				    n->line, n->col, n->name);
		return false;
	}
	return true;
}

/*
 * new_http_listen - a Listen stanza of HTTP_Listener: an "ip:port" address
 * with a port, unique among the HTTP listeners (a clash with an SMTP or
 * console port shows at bind time).
 */
static struct conf_node *new_http_listen(struct lexer *L, struct conf_node *parent,
					 const struct token *arg)
{
	struct conf *c = L->P->c;
	struct conf_listener *l = conf_arena_alloc(&c->arena, sizeof(*l));
	char canon[80];

	if (!conf_listen_parse(arg->text, &l->ss, &l->sslen, canon, sizeof(canon)) ||
	    strcmp(strrchr(canon, ':'), ":0") == 0) {
		perr(L, arg->line, arg->col,
		     "HTTP_Listener Listen \"%.100s\" is not an address with a port "
		     "(\"127.0.0.1:2081\", \"[::1]:2081\", \":2081\")", arg->text);
		return NULL;
	}
	for (size_t i = 0; i < c->nhttps; i++) {
		if (strcmp(c->https[i]->address, canon) == 0) {
			perr(L, arg->line, arg->col, "duplicate Listen \"%s\" (first at %s:%d)",
			     arg->text, c->https[i]->node->file, c->https[i]->node->line);
			return NULL;
		}
	}
	l->address = conf_arena_strdup(&c->arena, canon);
	l->node = conf_node_new(c, CONF_N_HTTP_LISTEN, parent, l->address, L->name, arg->line,
				arg->col);
	if (c->nhttps == c->https_cap) {
		size_t cap = c->https_cap ? c->https_cap * 2 : 4;
		struct conf_listener **v = conf_arena_alloc(&c->arena, cap * sizeof(*v));

		if (c->nhttps)
			memcpy(v, c->https, c->nhttps * sizeof(*v));
		c->https = v;
		c->https_cap = cap;
	}
	c->https[c->nhttps++] = l;
	return l->node;
}

/* new_http_key - an API_Key "name" stanza: names are unique (they are what the logs show). */
static struct conf_node *new_http_key(struct lexer *L, struct conf_node *parent,
				      const struct token *arg)
{
	struct conf *c = L->P->c;
	struct conf_node *n;

	for (size_t i = 0; i < c->nhttp_keys; i++) {
		if (strcmp(c->http_keys[i]->name, arg->text) == 0) {
			perr(L, arg->line, arg->col, "duplicate API_Key \"%s\" (first at %s:%d)",
			     arg->text, c->http_keys[i]->file, c->http_keys[i]->line);
			return NULL;
		}
	}
	n = conf_node_new(c, CONF_N_HTTP_KEY, parent, arg->text, L->name, arg->line, arg->col);
	node_list_push(c, &c->http_keys, &c->nhttp_keys, &c->http_keys_cap, n);
	return n;
}

/*
 * http_key_check - at the end of an API_Key stanza: Hash is set and is a
 * crypt(3) hash or a SHA-256 in hex. The value is never echoed: a key
 * pasted by mistake in place of its hash must not reach a log.
 */
static bool http_key_check(struct lexer *L, const struct conf_node *n)
{
	const struct conf_setting *s = n->vals[CONF_OPT_API_KEY_HASH];

	if (s == NULL)
		return perr(L, n->line, n->col,
			    "API_Key \"%s\" has no Hash (write Hash = \"<crypt(3) hash>\" or the "
			    "SHA-256 of the key in 64 hex digits)", n->name);
	if (!conf_http_hash_ok(s->v.u.s))
		return perr(L, s->v.line, s->col,
			    "API_Key \"%s\": Hash is neither a crypt(3) hash (\"$y$...\", "
			    "\"$6$...\") nor 64 hex digits of SHA-256 (value not shown)", n->name);
	return true;
}

/*
 * new_webhook - a Webhook "name" stanza. The name is unique and names the
 * webhook's backlog directory under the spool (docs/events.md), so it is
 * limited to letters, digits, '_', '-' and '.', not starting with '.'.
 */
static struct conf_node *new_webhook(struct lexer *L, struct conf_node *parent,
				     const struct token *arg)
{
	struct conf *c = L->P->c;
	struct conf_node *n;
	size_t len = strlen(arg->text);

	if (len > 64 || arg->text[0] == '.' ||
	    strspn(arg->text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != len) {
		perr(L, arg->line, arg->col, "Webhook name \"%.100s\": use at most 64 letters, "
		     "digits, '_', '-' or '.' (not first): it names a directory", arg->text);
		return NULL;
	}
	for (size_t i = 0; i < c->nwebhooks; i++) {
		if (strcmp(c->webhooks[i]->name, arg->text) == 0) {
			perr(L, arg->line, arg->col, "duplicate Webhook \"%s\" (first at %s:%d)",
			     arg->text, c->webhooks[i]->file, c->webhooks[i]->line);
			return NULL;
		}
	}
	n = conf_node_new(c, CONF_N_WEBHOOK, parent, arg->text, L->name, arg->line, arg->col);
	node_list_push(c, &c->webhooks, &c->nwebhooks, &c->webhooks_cap, n);
	return n;
}

/* webhook_event_ok - a word of a Webhook's Events list (docs/events.md "Types"). */
static bool webhook_event_ok(const char *w)
{
	static const char *const names[] = { "Reception", "Delivery", "TransientFailure", "Bounce",
					     "Expiration", "Rejection", "AdminAction", "all" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(w, names[i]) == 0)
			return true;
	return false;
}

/*
 * webhook_check - at the end of a Webhook stanza: Target is an http:// or
 * https:// URL and every word of Events names an event type. The
 * Auth_Header value is a credential: never echoed.
 */
static bool webhook_check(struct lexer *L, const struct conf_node *n)
{
	const struct conf_setting *t = n->vals[CONF_OPT_WEBHOOK_TARGET];
	const struct conf_setting *e = n->vals[CONF_OPT_WEBHOOK_EVENTS];

	if (t == NULL)
		return perr(L, n->line, n->col, "Webhook \"%s\" has no Target (write Target = "
			    "\"https://host/path\")", n->name);
	if (strncmp(t->v.u.s, "http://", 7) != 0 && strncmp(t->v.u.s, "https://", 8) != 0)
		return perr(L, t->v.line, t->col, "Webhook \"%s\": Target \"%.200s\" is not an "
			    "http:// or https:// URL", n->name, t->v.u.s);
	for (size_t i = 0; e && i < e->v.u.list.n; i++)
		if (!webhook_event_ok(e->v.u.list.v[i]))
			return perr(L, e->v.line, e->col, "Webhook \"%s\": unknown event type "
				    "\"%.64s\" in Events (Reception, Delivery, TransientFailure, "
				    "Bounce, Expiration, Rejection, AdminAction or all)",
				    n->name, e->v.u.list.v[i]);
	return true;
}

/* control_mode_check - File_Mode of a Control_Listener stanza, when set, is an octal mode. */
static bool control_mode_check(struct lexer *L, const struct conf_node *n)
{
	const struct conf_setting *s = n->vals[CONF_OPT_FILE_MODE];
	unsigned m;

	if (s == NULL || conf_mode_parse(s->v.u.s, &m))
		return true;
	return perr(L, s->v.line, s->col,
		    "File_Mode \"%.100s\" is not an octal file mode (write e.g. 0660)", s->v.u.s);
}

/* new_binding - a Binding stanza; binding names are unique across groups. */
static struct conf_node *new_binding(struct lexer *L, struct conf_node *parent, const struct token *arg)
{
	struct conf *c = L->P->c;
	struct conf_node *n = conf_map_get(&c->binding_map, arg->text, strlen(arg->text));

	if (n) {
		perr(L, arg->line, arg->col, "duplicate Binding \"%s\" (first at %s:%d)",
		     arg->text, n->file, n->line);
		return NULL;
	}
	n = conf_node_new(c, CONF_N_BINDING, parent, arg->text, L->name, arg->line, arg->col);
	conf_map_put(&c->binding_map, n->name, strlen(n->name), n);
	node_list_push(c, &c->bindings, &c->nbindings, &c->bindings_cap, n);
	return n;
}

/* module_name_ok - whether name can name a module: [A-Za-z0-9_]+. */
static bool module_name_ok(const char *name)
{
	if (*name == '\0')
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/* Options being read into a module stanza or one of its sub-stanzas. */
struct mod_opts {
	struct conf_module_option *v;
	size_t n, cap;
};

/*
 * module_option - "name =" has been read inside a module stanza or
 * sub-stanza: read the value into o, refusing a second setting of name.
 */
static bool module_option(struct lexer *L, const struct token *name, struct mod_opts *o)
{

	for (size_t i = 0; i < o->n; i++)
		if (conf_ascii_caseeq(o->v[i].name, name->text))
			return perr(L, name->line, name->col,
				    "duplicate option \"%s\" in this scope (first set at %s:%d)",
				    name->text, L->name, o->v[i].line);
	struct conf_module_option opt;
	if (!module_value(L, name, &opt))
		return false;
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 8;
		o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
	}
	o->v[o->n++] = opt;
	return true;
}

/*
 * module_stmt_head - the first two tokens of a statement inside a module
 * stanza or sub-stanza: 1 with a word in *t and what follows in *t2, 0 at
 * the closing "}", -1 after reporting an error.
 */
static int module_stmt_head(struct lexer *L, struct token *t, struct token *t2)
{
	char buf[96];

	if (!lex(L, t))
		return -1;
	if (t->kind == T_RBRACE)
		return 0;
	if (t->kind == T_EOF)
		return perr(L, t->line, t->col, "expected \"}\""), -1;
	if (t->kind != T_WORD)
		return perr(L, t->line, t->col, "unexpected %s", describe(L, t, buf, sizeof(buf))), -1;
	return lex(L, t2) ? 1 : -1;
}

/* same_stanza - the same (name, argument): names without regard to case, arguments exactly. */
static bool same_stanza(const char *name1, const char *arg1, const char *name2, const char *arg2)
{
	return conf_ascii_caseeq(name1, name2) &&
	       ((arg1 == NULL && arg2 == NULL) || (arg1 && arg2 && strcmp(arg1, arg2) == 0));
}

/*
 * module_substanza - "name [arg] {" has been read inside module stanza
 * mod: read its options up to "}" into sub (options in the arena). A
 * stanza inside is refused: sub-stanzas nest one level deep.
 */
static bool module_substanza(struct lexer *L, const struct token *mod, const struct token *name,
			     const struct token *arg, struct conf_module_substanza *sub)
{
	struct conf *c = L->P->c;
	struct mod_opts o = { 0 };
	struct token t, t2;
	char buf[96];

	for (;;) {
		int h = module_stmt_head(L, &t, &t2);
		if (h < 0)
			goto fail;
		if (h == 0)
			break;
		if (t2.kind == T_LBRACE || t2.kind == T_WORD || t2.kind == T_STRING) {
			perr(L, t.line, t.col,
			     "stanza \"%.100s\" inside sub-stanza \"%.100s\" of %.100s: module stanzas nest one level deep only (or \"%.100s\" is a scope impetus does not know)",
			     t.text, name->text, mod->text, mod->text);
			goto fail;
		}
		if (t2.kind != T_EQ) {
			perr(L, t2.line, t2.col, "expected \"=\" after \"%s\", not %s", shown(L, &t),
			     describe(L, &t2, buf, sizeof(buf)));
			goto fail;
		}
		if (!module_option(L, &t, &o))
			goto fail;
	}
	struct conf_module_option *v = conf_arena_alloc(&c->arena, (o.n ? o.n : 1) * sizeof(*v));
	if (o.n)
		memcpy(v, o.v, o.n * sizeof(*v));
	*sub = (struct conf_module_substanza){
		.name = name->text, .arg = arg ? arg->text : NULL, .line = name->line,
		.col = name->col, .opts = v, .nopts = o.n,
	};
	free(o.v);
	return true;
fail:
	free(o.v);
	return false;
}

/*
 * parse_module - "module [instance] {" has been read at global scope: keep
 * the stanza's options and sub-stanzas as written for the module loader
 * (config.h, "Module stanzas").
 */
static bool parse_module(struct lexer *L, const struct token *name, const struct token *arg)
{
	struct parser *P = L->P;
	struct conf *c = P->c;
	struct mod_opts o = { 0 };
	struct conf_module_substanza *subs = NULL;
	size_t nsubs = 0, subs_cap = 0;
	struct token t, t2, t3;
	char buf[96];

	if (arg && arg->text[0] == '\0')
		return perr(L, arg->line, arg->col, "empty instance name for module \"%s\"", name->text);
	for (size_t i = 0; i < c->nmodules; i++) {
		const struct conf_module_stanza *m = &c->modules[i];

		if (same_stanza(m->module, m->instance, name->text, arg ? arg->text : NULL))
			return perr(L, name->line, name->col,
				    "duplicate stanza %s%s%s%s (first at %s:%d)", name->text,
				    arg ? " \"" : "", arg ? arg->text : "", arg ? "\"" : "",
				    m->file, m->line);
	}
	for (;;) {
		int h = module_stmt_head(L, &t, &t2);
		if (h < 0)
			goto fail;
		if (h == 0)
			break;
		if (t2.kind == T_EQ) {
			if (!module_option(L, &t, &o))
				goto fail;
			continue;
		}
		if (t2.kind != T_LBRACE && t2.kind != T_WORD && t2.kind != T_STRING) {
			perr(L, t2.line, t2.col, "expected \"=\" or \"{\" after \"%s\", not %s", shown(L, &t),
			     describe(L, &t2, buf, sizeof(buf)));
			goto fail;
		}
		/*
		 * A sub-stanza. The parser does not know which modules exist: an
		 * unknown scope holding stanzas (a Momentum one impetus lacks,
		 * Control_Listener { Listen ... }) reads as a module stanza too,
		 * and the loader reports it as "unknown scope or module".
		 */
		const struct token *sarg = NULL;
		if (t2.kind != T_LBRACE) {
			if (!lex(L, &t3))
				goto fail;
			if (t3.kind != T_LBRACE) {
				perr(L, t3.line, t3.col, "expected \"{\" after %s \"%s\", not %s", t.text,
				     t2.text, describe(L, &t3, buf, sizeof(buf)));
				goto fail;
			}
			if (t2.text[0] == '\0') {
				perr(L, t2.line, t2.col, "empty name for sub-stanza \"%s\"", t.text);
				goto fail;
			}
			sarg = &t2;
		}
		for (size_t i = 0; i < nsubs; i++)
			if (same_stanza(subs[i].name, subs[i].arg, t.text, sarg ? sarg->text : NULL)) {
				perr(L, t.line, t.col, "duplicate sub-stanza %s%s%s%s in %s (first at %s:%d)",
				     t.text, sarg ? " \"" : "", sarg ? sarg->text : "", sarg ? "\"" : "",
				     name->text, L->name, subs[i].line);
				goto fail;
			}
		if (nsubs == subs_cap) {
			subs_cap = subs_cap ? subs_cap * 2 : 4;
			subs = xrealloc(subs, subs_cap * sizeof(*subs));
		}
		if (!module_substanza(L, name, &t, sarg, &subs[nsubs]))
			goto fail;
		nsubs++;
	}
	if (c->nmodules == c->modules_cap) {
		c->modules_cap = c->modules_cap ? c->modules_cap * 2 : 8;
		c->modules = xrealloc(c->modules, c->modules_cap * sizeof(*c->modules));
	}
	c->modules[c->nmodules++] = (struct conf_module_stanza){
		.module = name->text, .instance = arg ? arg->text : NULL, .file = L->name,
		.line = name->line, .col = name->col, .opts = o.v, .nopts = o.n,
		.subs = subs, .nsubs = nsubs,
	};
	return true;
fail:
	free(o.v);
	free(subs);
	return false;
}

/* parse_scope - "Name [arg] {" has been read: make the node, read its body. */
static bool parse_scope(struct lexer *L, struct conf_node *parent, const struct token *name,
			const struct token *arg)
{
	static const char *example[CONF_N__COUNT] = {
		[CONF_N_BINDING_GROUP] = "group1", [CONF_N_BINDING] = "binding1",
		[CONF_N_DOMAIN] = "example.com", [CONF_N_LISTEN] = "127.0.0.1:25",
		[CONF_N_CONTROL_LISTEN] = "/var/run/impetus/control",
		[CONF_N_HTTP_LISTEN] = "127.0.0.1:2081", [CONF_N_HTTP_KEY] = "ops",
		[CONF_N_WEBHOOK] = "events",
	};
	struct conf *c = L->P->c;
	int k = scope_kind(name->text);
	struct conf_node *n = NULL;

	if (k < 0) {
		if (conf_option_lookup(name->text) >= 0)
			return perr(L, name->line, name->col,
				    "\"%s\" is an option, not a scope (write %s = value)",
				    name->text, name->text);
		/* A near miss of a scope name is a typo, not a module. */
		for (int sk = CONF_N_BINDING_GROUP; sk < CONF_N__COUNT; sk++) {
			const char *sname = conf_node_kind_name((enum conf_node_kind)sk);

			if (conf_name_distance(name->text, sname) <= 2)
				return perr(L, name->line, name->col,
					    "unknown scope \"%.100s\" (did you mean \"%s\"?)", name->text, sname);
		}
		if (parent->kind == CONF_N_GLOBAL && module_name_ok(name->text))
			return parse_module(L, name, arg);
		if (parent->kind == CONF_N_GLOBAL)
			return perr(L, name->line, name->col, "unknown scope \"%.100s\"", name->text);
		return perr(L, name->line, name->col,
			    "unknown scope \"%.100s\" (modules are declared at global scope)",
			    name->text);
	}
	/* Listen inside Control_Listener is a socket path, not an SMTP address. */
	if (k == CONF_N_LISTEN && parent->kind == CONF_N_CONTROL_LISTENER)
		k = CONF_N_CONTROL_LISTEN;
	if (k == CONF_N_LISTEN && parent->kind == CONF_N_HTTP_LISTENER)
		k = CONF_N_HTTP_LISTEN;
	const char *kname = conf_node_kind_name((enum conf_node_kind)k);
	if (!scope_allowed(k, parent->kind))
		return perr(L, name->line, name->col, "%s is not allowed in %s scope",
			    kname, conf_node_kind_name(parent->kind));
	if (k == CONF_N_ESMTP_LISTENER) {
		if (arg)
			return perr(L, arg->line, arg->col, "ESMTP_Listener takes no name");
		if (c->esmtp)
			return perr(L, name->line, name->col, "duplicate ESMTP_Listener (first at %s:%d)",
				    c->esmtp->file, c->esmtp->line);
		n = c->esmtp = conf_node_new(c, CONF_N_ESMTP_LISTENER, parent, NULL, L->name,
					     name->line, name->col);
		return parse_block(L, n, false);
	}
	if (k == CONF_N_CONTROL_LISTENER) {
		if (arg)
			return perr(L, arg->line, arg->col, "Control_Listener takes no name");
		if (c->control)
			return perr(L, name->line, name->col,
				    "duplicate Control_Listener (first at %s:%d)", c->control->file,
				    c->control->line);
		n = c->control = conf_node_new(c, CONF_N_CONTROL_LISTENER, parent, NULL, L->name,
					       name->line, name->col);
		return parse_block(L, n, false) && control_mode_check(L, n) && control_remote_check(L);
	}
	if (k == CONF_N_HTTP_LISTENER) {
		if (arg)
			return perr(L, arg->line, arg->col, "HTTP_Listener takes no name");
		if (c->http)
			return perr(L, name->line, name->col,
				    "duplicate HTTP_Listener (first at %s:%d)", c->http->file,
				    c->http->line);
		n = c->http = conf_node_new(c, CONF_N_HTTP_LISTENER, parent, NULL, L->name,
					    name->line, name->col);
		return parse_block(L, n, false);
	}
	if (k == CONF_N_CONTROL_LISTEN || k == CONF_N_HTTP_LISTEN)
		kname = "Listen";
	if (arg == NULL)
		return perr(L, name->line, name->col, "%s needs a name: %s \"%s\" { ... }",
			    kname, kname, example[k]);
	if (arg->text[0] == '\0')
		return perr(L, arg->line, arg->col, "empty %s name", kname);

	switch (k) {
	case CONF_N_BINDING_GROUP:
		n = conf_map_get(&c->group_map, arg->text, strlen(arg->text));
		if (n)
			return perr(L, arg->line, arg->col, "duplicate Binding_Group \"%s\" (first at %s:%d)",
				    arg->text, n->file, n->line);
		n = conf_node_new(c, CONF_N_BINDING_GROUP, parent, arg->text, L->name,
				  arg->line, arg->col);
		conf_map_put(&c->group_map, n->name, strlen(n->name), n);
		break;
	case CONF_N_BINDING:
		n = new_binding(L, parent, arg);
		break;
	case CONF_N_DOMAIN:
		n = new_domain(L, parent, arg);
		break;
	case CONF_N_LISTEN:
		n = new_listen(L, parent, arg);
		break;
	case CONF_N_CONTROL_LISTEN:
		n = new_control_listen(L, parent, arg);
		return n && parse_block(L, n, false) && control_mode_check(L, n);
	case CONF_N_HTTP_LISTEN:
		n = new_http_listen(L, parent, arg);
		break;
	case CONF_N_HTTP_KEY:
		n = new_http_key(L, parent, arg);
		return n && parse_block(L, n, false) && http_key_check(L, n);
	case CONF_N_WEBHOOK:
		n = new_webhook(L, parent, arg);
		return n && parse_block(L, n, false) && webhook_check(L, n);
	}
	return n && parse_block(L, n, false);
}

/* ======================================================================
 * Files and includes
 * ====================================================================== */

/* read_file - the whole file into a heap buffer (NUL-terminated); -errno on failure. */
static int read_file(const char *path, char **out, size_t *len, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct str buf = STR_INIT;
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		rc = -errno;
		goto out;
	}
	if (S_ISDIR(st->st_mode)) {
		rc = -EISDIR;
		goto out;
	}
	for (;;) {
		str_reserve(&buf, 64 * 1024);
		ssize_t n = read(fd, buf.s + buf.len, buf.cap - buf.len - 1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		buf.len += (size_t)n;
		buf.s[buf.len] = '\0';
		if (buf.len > CONF_FILE_MAX) {
			rc = -EFBIG;
			goto out;
		}
	}
	*len = buf.len;
	*out = str_steal(&buf);
out:
	close(fd);
	str_free(&buf);
	return rc;
}

/* dir_of - the directory part of a path ("." when none), in the arena. */
static const char *dir_of(struct conf *c, const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return ".";
	if (slash == path)
		return "/";
	return conf_arena_strndup(&c->arena, path, (size_t)(slash - path));
}

/* parse_buffer - read one file's statements into node. */
static bool parse_buffer(struct parser *P, const char *name, const char *text, size_t len,
			 struct conf_node *node)
{
	struct lexer L = {
		.P = P,
		.name = conf_arena_strdup(&P->c->arena, name),
		.p = text,
		.end = text + len,
		.line = 1,
		.col = 1,
	};

	L.dir = dir_of(P->c, L.name);
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		L.p += 3;	/* a UTF-8 byte order mark from some editors */
	return parse_block(&L, node, true);
}

/* do_include - read the named file's statements into node, as if written here. */
static bool do_include(struct lexer *L, struct conf_node *node, const struct token *file)
{
	struct parser *P = L->P;
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	struct str path = STR_INIT;
	bool ok = false;
	int rc;

	if (file->text[0] == '\0')
		return perr(L, file->line, file->col, "include needs a file name");
	if (P->depth >= CONF_INCLUDE_DEPTH_MAX)
		return perr(L, file->line, file->col, "includes nested too deeply (more than %d levels)",
			    CONF_INCLUDE_DEPTH_MAX);
	if (file->text[0] != '/' && strcmp(L->dir, ".") != 0)
		str_appendf(&path, "%s/", L->dir);
	str_appends(&path, file->text);
	rc = read_file(str_cstr(&path), &text, &len, &st);
	if (rc < 0) {
		perr(L, file->line, file->col, "cannot open include \"%s\": %s", file->text,
		     strerror(-rc));
		goto out;
	}
	for (int i = 0; i < P->depth; i++) {
		if (P->stack[i].dev == st.st_dev && P->stack[i].ino == st.st_ino) {
			perr(L, file->line, file->col, "include loop: \"%s\" is already being read",
			     file->text);
			goto out;
		}
	}
	P->stack[P->depth].dev = st.st_dev;
	P->stack[P->depth].ino = st.st_ino;
	P->depth++;
	ok = parse_buffer(P, str_cstr(&path), text, len, node);
	P->depth--;
out:
	free(text);
	str_free(&path);
	return ok;
}

/* parse_block - statements until "}" (inside a stanza) or end of file (top of a file). */
static bool parse_block(struct lexer *L, struct conf_node *node, bool until_eof)
{
	struct token t, t2, t3;
	char buf[96];

	for (;;) {
		if (!lex(L, &t))
			return false;
		if (t.kind == T_EOF) {
			if (until_eof)
				return true;
			return perr(L, t.line, t.col, "expected \"}\"");
		}
		if (t.kind == T_RBRACE) {
			if (!until_eof)
				return true;
			return perr(L, t.line, t.col, "unexpected \"}\"");
		}
		if (t.kind != T_WORD)
			return perr(L, t.line, t.col, "unexpected %s", describe(L, &t, buf, sizeof(buf)));
		if (!lex(L, &t2))
			return false;
		if ((t2.kind == T_WORD || t2.kind == T_STRING) && conf_ascii_caseeq(t.text, "include")) {
			if (!do_include(L, node, &t2))
				return false;
			continue;
		}
		switch (t2.kind) {
		case T_EQ:
			if (!parse_option(L, node, &t))
				return false;
			break;
		case T_LBRACE:
			if (!parse_scope(L, node, &t, NULL))
				return false;
			break;
		case T_WORD:
		case T_STRING:
			if (!lex(L, &t3))
				return false;
			if (t3.kind != T_LBRACE) {
				if (conf_option_lookup(t.text) >= 0)
					return perr(L, t2.line, t2.col, "expected \"=\" after \"%s\"", shown(L, &t));
				return perr(L, t3.line, t3.col, "expected \"{\" after %s \"%s\", not %s",
					    shown(L, &t), shown(L, &t2), describe(L, &t3, buf, sizeof(buf)));
			}
			if (!parse_scope(L, node, &t, &t2))
				return false;
			break;
		default:
			return perr(L, t2.line, t2.col, "expected \"=\" or \"{\" after \"%s\", not %s",
				    shown(L, &t), describe(L, &t2, buf, sizeof(buf)));
		}
	}
}

/* parser_done - release the scratch buffers. */
static void parser_done(struct parser *P)
{
	str_free(&P->sbuf);
	str_free(&P->msg);
	free(P->items);
}

bool conf_parse_text(struct conf *c, const char *text, size_t len, const char *name,
		     struct str *err)
{
	struct parser P = { .c = c, .err = err };
	bool ok = parse_buffer(&P, name, text, len, c->global) && scoped_check(&P);

	parser_done(&P);
	return ok;
}

bool conf_parse_path(struct conf *c, const char *path, struct str *err)
{
	struct parser P = { .c = c, .err = err };
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int rc = read_file(path, &text, &len, &st);
	bool ok = false;

	if (rc < 0) {
		if (err)
			str_appendf(err, "%s: cannot open configuration: %s", path,
				    rc == -EFBIG ? "file too large" : strerror(-rc));
		goto out;
	}
	P.stack[0].dev = st.st_dev;
	P.stack[0].ino = st.st_ino;
	P.depth = 1;
	ok = parse_buffer(&P, path, text, len, c->global) && scoped_check(&P);
out:
	free(text);
	parser_done(&P);
	return ok;
}
