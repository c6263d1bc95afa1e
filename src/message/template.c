/*
 * template.c - compile and render the transmissions API's templates
 *
 * See template.h for the contract and docs/templates.md for the language.
 * Compiling turns the source into a flat program: TEXT (a slice of the
 * copied source), EMIT (an expression's value), IF_FALSE and JUMP (the
 * if/elseif/else chains), EACH and NEXT (loops). Expressions are trees of
 * nodes in one array, with names pointing into the copied source. All the
 * checking that does not need data happens here: block structure,
 * expression syntax, loop_var / loop_vars references, the source limits.
 *
 * Rendering walks the program with a fixed-size loop stack (one slot per
 * nesting level, known at compile time) and borrows every value from the
 * caller's JSON, literals and the jansson true/false singletons: it
 * allocates nothing but the output. It is bounded by three limits (output
 * bytes, steps, iterations of one loop), each reported at the tag that
 * crossed it. The compiled template is never written after compile, so
 * renders may share it across threads.
 *
 * Semantics follow Momentum's engine, which is Lua underneath (its
 * reserved words are Lua's): only missing, null and false are false;
 * "and" / "or" give one of their operands; "not" binds tighter than the
 * comparisons; arrays are indexed from 1. Where Lua would raise an error
 * (ordering a string against a number, indexing a non-table) the result
 * is false or missing instead: one recipient's odd data never fails the
 * render.
 */
#include "message/template.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define NONE UINT32_MAX

/* ------------------------------------------------------------------ */
/* the compiled form                                                   */

enum node_kind {
	N_LIT,		/* lit */
	N_VAR,		/* top-level name: recipient data, then global */
	N_LOOP,		/* the current element of loop level `level` */
	N_MEMBER,	/* a.name */
	N_INDEX,	/* a[b] */
	N_NOT,
	N_AND,
	N_OR,
	N_CMP,		/* a op b */
};

enum cmp_op { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE };

struct node {
	uint8_t kind;
	uint8_t op;		/* N_CMP: enum cmp_op */
	uint32_t a, b;		/* children */
	uint32_t name_off;	/* N_VAR, N_MEMBER: the name in t->src */
	uint32_t name_len;
	uint32_t level;		/* N_LOOP */
	uint32_t height;	/* 1 + the tallest child: eval's recursion depth */
	json_t *lit;		/* N_LIT: owned */
};

enum op_kind {
	OP_TEXT,	/* src[off .. off+len) */
	OP_EMIT,	/* expr, escaped as the mode says */
	OP_EMIT_RAW,	/* expr, never HTML-escaped */
	OP_IF_FALSE,	/* jump to target when expr is false */
	OP_JUMP,	/* jump to target */
	OP_EACH,	/* start loop `level` over expr; empty: jump to target */
	OP_NEXT,	/* next element of loop `level`: jump to target, or fall out */
};

struct op {
	uint8_t kind;
	uint32_t expr;
	uint32_t target;
	uint32_t level;
	uint32_t off;		/* TEXT: the text; others: the tag's {{ */
	uint32_t len;
};

struct template {
	char *src;		/* copy of the source, NUL-terminated */
	size_t len;
	struct op *ops;
	uint32_t nops, cap_ops;
	struct node *nodes;
	uint32_t nnodes, cap_nodes;
	uint32_t loop_levels;	/* deepest each nesting */
};

/* ------------------------------------------------------------------ */
/* positions and errors                                                */

/* set_pos - line and column (in code points) of byte offset off. */
static void set_pos(struct template_error *err, const char *src, size_t off)
{
	unsigned line = 1, col = 1;

	for (size_t i = 0; i < off; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == '\n') {
			line++;
			col = 1;
		} else if ((c & 0xC0) != 0x80) {
			col++;
		}
	}
	err->line = line;
	err->col = col;
	err->offset = off;
}

/* ------------------------------------------------------------------ */
/* the lexer (inside one tag)                                          */

enum tok {
	T_CLOSE,	/* }} or, in a raw tag, }}} (the end of input is an error) */
	T_NAME,
	T_NUM,
	T_STR,
	T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
	T_LP, T_RP, T_LB, T_RB, T_DOT,
};

struct token {
	enum tok kind;
	uint32_t off, len;
};

struct block {
	bool is_each;
	bool seen_else;
	uint32_t open_off;	/* the {{ of {{if}} / {{each}} */
	uint32_t cond_op;	/* IF_FALSE awaiting its target, or NONE */
	uint32_t end_jumps;	/* chain of JUMPs awaiting the {{end}} */
	uint32_t each_op;	/* OP_EACH */
	uint32_t name_off, name_len;	/* the loop's name for loop_vars, or len 0 */
};

struct compiler {
	struct template *t;
	const char *s;
	size_t len;
	size_t pos;		/* lexer position */
	bool raw;		/* inside {{{ }}} */
	uint32_t tag_off;	/* the tag's {{ */
	struct token tok;	/* current token */
	unsigned depth;		/* expression nesting */
	struct block blocks[TEMPLATE_NEST_MAX];
	unsigned nblocks;
	unsigned loops;		/* each blocks among blocks */
	struct template_error *err;
	bool failed;
};

/* fail - record the first error at byte offset off; returns NONE. */
static uint32_t fail(struct compiler *c, size_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static uint32_t fail(struct compiler *c, size_t off, const char *fmt, ...)
{
	va_list ap;

	if (c->failed)
		return NONE;
	c->failed = true;
	if (c->err != NULL) {
		set_pos(c->err, c->s, off);
		va_start(ap, fmt);
		vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
		va_end(ap);
	}
	return NONE;
}

/* is_name_start, is_digit, is_name_char - the ASCII classes of names and numbers. */
static bool is_name_start(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_name_char(char ch)
{
	return is_name_start(ch) || is_digit(ch);
}

/* tok_is - the current token is the word w. */
static bool tok_is(const struct compiler *c, const char *w)
{
	size_t n = strlen(w);

	return c->tok.kind == T_NAME && c->tok.len == n && memcmp(c->s + c->tok.off, w, n) == 0;
}

/* next - read the next token of the tag into c->tok; false on a lexical error. */
static bool next(struct compiler *c)
{
	const char *s = c->s;
	size_t p = c->pos;

	while (p < c->len && (s[p] == ' ' || s[p] == '\t' || s[p] == '\r' || s[p] == '\n'))
		p++;
	if (p - c->tag_off > TEMPLATE_TAG_MAX) {
		fail(c, c->tag_off, "tag longer than %u bytes (or '}}' missing)", TEMPLATE_TAG_MAX);
		return false;
	}
	c->tok.off = (uint32_t)p;
	c->tok.len = 1;
	if (p >= c->len) {
		/* "}}" was ahead, but inside a string: the tag still never ends */
		fail(c, c->tag_off, "unterminated tag: '%s' without '%s'",
		     c->raw ? "{{{" : "{{", c->raw ? "}}}" : "}}");
		return false;
	}
	char ch = s[p];
	if (ch == '}' && p + 1 < c->len && s[p + 1] == '}') {
		if (c->raw) {
			if (p + 2 >= c->len || s[p + 2] != '}') {
				fail(c, p, "'{{{' closed by '}}' instead of '}}}'");
				return false;
			}
			c->tok.len = 3;
		} else {
			c->tok.len = 2;
		}
		c->tok.kind = T_CLOSE;
	} else if (is_name_start(ch)) {
		size_t q = p;
		while (q < c->len && is_name_char(s[q]))
			q++;
		c->tok.kind = T_NAME;
		c->tok.len = (uint32_t)(q - p);
	} else if (is_digit(ch) || (ch == '-' && p + 1 < c->len && is_digit(s[p + 1]))) {
		size_t q = p + 1;
		while (q < c->len && is_digit(s[q]))
			q++;
		if (q + 1 < c->len && s[q] == '.' && is_digit(s[q + 1])) {
			q++;
			while (q < c->len && is_digit(s[q]))
				q++;
		}
		if (q < c->len && (s[q] == 'e' || s[q] == 'E')) {
			size_t e = q + 1;
			if (e < c->len && (s[e] == '+' || s[e] == '-'))
				e++;
			if (e < c->len && is_digit(s[e])) {
				while (e < c->len && is_digit(s[e]))
					e++;
				q = e;
			}
		}
		if (q < c->len && is_name_char(s[q])) {
			fail(c, p, "malformed number");
			return false;
		}
		c->tok.kind = T_NUM;
		c->tok.len = (uint32_t)(q - p);
	} else if (ch == '\'' || ch == '"') {
		size_t q = p + 1;
		while (q < c->len && s[q] != ch) {
			if (s[q] == '\\' && q + 1 < c->len)
				q++;
			q++;
		}
		if (q >= c->len) {
			fail(c, p, "unterminated string");
			return false;
		}
		c->tok.kind = T_STR;
		c->tok.len = (uint32_t)(q + 1 - p);
	} else {
		char n1 = p + 1 < c->len ? s[p + 1] : '\0';
		switch (ch) {
		case '=':
			if (n1 != '=') {
				fail(c, p, "'=' is not a comparison; use '=='");
				return false;
			}
			c->tok.kind = T_EQ;
			c->tok.len = 2;
			break;
		case '!':
			if (n1 != '=') {
				fail(c, p, "'!' is not an operator; use 'not' or '!='");
				return false;
			}
			c->tok.kind = T_NE;
			c->tok.len = 2;
			break;
		case '~':
			if (n1 != '=') {
				fail(c, p, "unexpected '~'");
				return false;
			}
			c->tok.kind = T_NE;	/* Lua's spelling of != */
			c->tok.len = 2;
			break;
		case '<':
			c->tok.kind = n1 == '=' ? T_LE : T_LT;
			c->tok.len = n1 == '=' ? 2 : 1;
			break;
		case '>':
			c->tok.kind = n1 == '=' ? T_GE : T_GT;
			c->tok.len = n1 == '=' ? 2 : 1;
			break;
		case '(': c->tok.kind = T_LP; break;
		case ')': c->tok.kind = T_RP; break;
		case '[': c->tok.kind = T_LB; break;
		case ']': c->tok.kind = T_RB; break;
		case '.': c->tok.kind = T_DOT; break;
		default:
			if ((unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f)
				fail(c, p, "unexpected byte 0x%02x in a tag", (unsigned char)ch);
			else
				fail(c, p, "unexpected '%c' in a tag", ch);
			return false;
		}
	}
	c->pos = p + c->tok.len;
	return true;
}

/* ------------------------------------------------------------------ */
/* building the program                                                */

/* add_node - a new expression node over children a and b (NONE: none), or NONE. */
static uint32_t add_node(struct compiler *c, enum node_kind kind, uint32_t a, uint32_t b)
{
	struct template *t = c->t;

	if (t->nnodes == t->cap_nodes) {
		t->cap_nodes = t->cap_nodes ? t->cap_nodes * 2 : 16;
		t->nodes = xrealloc(t->nodes, t->cap_nodes * sizeof *t->nodes);
	}
	/*
	 * "a or b or c ..." and "a.b.c ..." build left-deep trees that the
	 * parser's nesting limit does not see; eval recurses once per level,
	 * so their height is capped here, keeping a render's stack small on
	 * any thread.
	 */
	uint32_t h = 1;
	if (a != NONE && t->nodes[a].height + 1 > h)
		h = t->nodes[a].height + 1;
	if (b != NONE && t->nodes[b].height + 1 > h)
		h = t->nodes[b].height + 1;
	if (h > TEMPLATE_EXPR_HEIGHT_MAX)
		return fail(c, c->tok.off, "expression too complex (over %u operations deep)",
			    TEMPLATE_EXPR_HEIGHT_MAX);
	struct node *n = &t->nodes[t->nnodes];
	memset(n, 0, sizeof *n);
	n->kind = (uint8_t)kind;
	n->a = a;
	n->b = b;
	n->height = h;
	return t->nnodes++;
}

/* add_op - append an instruction for the tag or text at off; its index. */
static uint32_t add_op(struct compiler *c, enum op_kind kind, uint32_t expr, uint32_t off)
{
	struct template *t = c->t;

	if (t->nops == t->cap_ops) {
		t->cap_ops = t->cap_ops ? t->cap_ops * 2 : 16;
		t->ops = xrealloc(t->ops, t->cap_ops * sizeof *t->ops);
	}
	struct op *o = &t->ops[t->nops];
	memset(o, 0, sizeof *o);
	o->kind = (uint8_t)kind;
	o->expr = expr;
	o->target = NONE;
	o->off = off;
	return t->nops++;
}

/* tok_text - the current token as "'text'" for messages, cut short. */
static const char *tok_text(const struct compiler *c, char *buf, size_t size)
{
	if (c->tok.kind == T_CLOSE)
		return c->raw ? "'}}}'" : "'}}'";
	snprintf(buf, size, "'%.*s'", (int)(c->tok.len > 24 ? 24 : c->tok.len),
		 c->s + c->tok.off);
	return buf;
}

/* lua_reserved - a Lua keyword the language does not use (never a name). */
static bool lua_reserved(const struct compiler *c)
{
	static const char *const words[] = {
		"break", "do", "for", "function", "in", "local", "repeat",
		"return", "until", "while", "goto",
	};
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (tok_is(c, words[i]))
			return true;
	return false;
}

/* keyword - a word of the language itself (never a data name). */
static bool keyword(const struct compiler *c)
{
	static const char *const words[] = {
		"if", "elseif", "else", "end", "each", "then", "and", "or",
		"not", "true", "false", "nil",
	};
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (tok_is(c, words[i]))
			return true;
	return lua_reserved(c);
}

static uint32_t parse_expr(struct compiler *c);

/* parse_string - the current T_STR token as a literal node. */
static uint32_t parse_string(struct compiler *c)
{
	const char *p = c->s + c->tok.off + 1, *end = c->s + c->tok.off + c->tok.len - 1;
	struct str v = STR_INIT;

	while (p < end) {
		char ch = *p++;
		if (ch == '\\' && p < end) {
			ch = *p++;
			if (ch == 'n')
				ch = '\n';
			else if (ch == 't')
				ch = '\t';
			else if (ch == 'r')
				ch = '\r';
		}
		str_appendc(&v, ch);
	}
	uint32_t n = add_node(c, N_LIT, NONE, NONE);
	c->t->nodes[n].lit = json_stringn_nocheck(str_cstr(&v), v.len);
	str_free(&v);
	if (c->t->nodes[n].lit == NULL)
		abort();	/* jansson out of memory */
	return n;
}

/* parse_number - the current T_NUM token as a literal node. */
static uint32_t parse_number(struct compiler *c)
{
	char buf[64];
	size_t n = c->tok.len;
	json_t *lit;

	if (n >= sizeof buf)
		return fail(c, c->tok.off, "number too long");
	memcpy(buf, c->s + c->tok.off, n);
	buf[n] = '\0';
	if (strpbrk(buf, ".eE") == NULL) {
		char *end;
		errno = 0;
		long long v = strtoll(buf, &end, 10);
		if (errno == ERANGE)
			return fail(c, c->tok.off, "number out of range");
		lit = json_integer(v);
	} else {
		double d = strtod(buf, NULL);
		if (!isfinite(d))
			return fail(c, c->tok.off, "number out of range");
		lit = json_real(d);
	}
	if (lit == NULL)
		abort();
	uint32_t id = add_node(c, N_LIT, NONE, NONE);
	c->t->nodes[id].lit = lit;
	return id;
}

/* find_loop - the level of the innermost enclosing {{each name}}, or NONE. */
static uint32_t find_loop(const struct compiler *c, uint32_t off, uint32_t len)
{
	uint32_t level = c->loops;

	for (unsigned i = c->nblocks; i-- > 0;) {
		const struct block *b = &c->blocks[i];
		if (!b->is_each)
			continue;
		level--;
		if (b->name_len == len && memcmp(c->s + b->name_off, c->s + off, len) == 0)
			return level;
	}
	return NONE;
}

/* parse_primary - literal, name, loop_var, loop_vars.name or (expr). */
static uint32_t parse_primary(struct compiler *c)
{
	char tb[32];
	uint32_t n;

	switch (c->tok.kind) {
	case T_STR:
		n = parse_string(c);
		break;
	case T_NUM:
		n = parse_number(c);
		break;
	case T_LP:
		if (++c->depth > TEMPLATE_EXPR_DEPTH_MAX)
			return fail(c, c->tok.off, "expression nested deeper than %u",
				    TEMPLATE_EXPR_DEPTH_MAX);
		if (!next(c))
			return NONE;
		n = parse_expr(c);
		if (n == NONE)
			return NONE;
		if (c->tok.kind != T_RP)
			return fail(c, c->tok.off, "expected ')' instead of %s",
				    tok_text(c, tb, sizeof tb));
		c->depth--;
		break;
	case T_NAME:
		if (tok_is(c, "true") || tok_is(c, "false") || tok_is(c, "nil")) {
			n = add_node(c, N_LIT, NONE, NONE);
			c->t->nodes[n].lit = tok_is(c, "true") ? json_true()
				: tok_is(c, "false") ? json_false() : json_null();
			break;
		}
		if (keyword(c))
			return fail(c, c->tok.off, "%s is a reserved word, not a value",
				    tok_text(c, tb, sizeof tb));
		if (tok_is(c, "loop_var")) {
			if (c->loops == 0)
				return fail(c, c->tok.off, "loop_var outside {{each}}");
			n = add_node(c, N_LOOP, NONE, NONE);
			c->t->nodes[n].level = c->loops - 1;
			break;
		}
		if (tok_is(c, "loop_vars")) {
			uint32_t at = c->tok.off;
			if (!next(c))
				return NONE;
			if (c->tok.kind != T_DOT)
				return fail(c, at, "loop_vars must be followed by .<array name>");
			if (!next(c))
				return NONE;
			if (c->tok.kind != T_NAME)
				return fail(c, c->tok.off, "expected an array name after 'loop_vars.'");
			uint32_t level = find_loop(c, c->tok.off, c->tok.len);
			if (level == NONE)
				return fail(c, c->tok.off, "loop_vars.%.*s: no enclosing {{each %.*s}}",
					    (int)(c->tok.len > 32 ? 32 : c->tok.len), c->s + c->tok.off,
					    (int)(c->tok.len > 32 ? 32 : c->tok.len), c->s + c->tok.off);
			n = add_node(c, N_LOOP, NONE, NONE);
			c->t->nodes[n].level = level;
			break;
		}
		n = add_node(c, N_VAR, NONE, NONE);
		c->t->nodes[n].name_off = c->tok.off;
		c->t->nodes[n].name_len = c->tok.len;
		break;
	default:
		return fail(c, c->tok.off, "expected a value instead of %s",
			    tok_text(c, tb, sizeof tb));
	}
	if (n == NONE || !next(c))
		return NONE;
	return n;
}

/* parse_postfix - primary followed by .name and [expr] selectors. */
static uint32_t parse_postfix(struct compiler *c)
{
	char tb[32];
	uint32_t n = parse_primary(c);

	while (n != NONE) {
		if (c->tok.kind == T_DOT) {
			if (!next(c))
				return NONE;
			if (c->tok.kind != T_NAME)
				return fail(c, c->tok.off, "expected a name after '.' instead of %s",
					    tok_text(c, tb, sizeof tb));
			n = add_node(c, N_MEMBER, n, NONE);
			if (n == NONE)
				return NONE;
			c->t->nodes[n].name_off = c->tok.off;
			c->t->nodes[n].name_len = c->tok.len;
			if (!next(c))
				return NONE;
		} else if (c->tok.kind == T_LB) {
			uint32_t at = c->tok.off;
			if (++c->depth > TEMPLATE_EXPR_DEPTH_MAX)
				return fail(c, at, "expression nested deeper than %u",
					    TEMPLATE_EXPR_DEPTH_MAX);
			if (!next(c))
				return NONE;
			uint32_t k = parse_expr(c);
			if (k == NONE)
				return NONE;
			if (c->tok.kind != T_RB)
				return fail(c, c->tok.off, "expected ']' instead of %s",
					    tok_text(c, tb, sizeof tb));
			c->depth--;
			n = add_node(c, N_INDEX, n, k);
			if (!next(c))
				return NONE;
		} else {
			break;
		}
	}
	return n;
}

/* parse_unary - "not" binds tighter than the comparisons, as in Lua. */
static uint32_t parse_unary(struct compiler *c)
{
	if (!tok_is(c, "not"))
		return parse_postfix(c);
	if (++c->depth > TEMPLATE_EXPR_DEPTH_MAX)
		return fail(c, c->tok.off, "expression nested deeper than %u",
			    TEMPLATE_EXPR_DEPTH_MAX);
	if (!next(c))
		return NONE;
	uint32_t a = parse_unary(c);
	c->depth--;
	return a == NONE ? NONE : add_node(c, N_NOT, a, NONE);
}

/* cmp_of - the comparison a token stands for, or -1. */
static int cmp_of(enum tok k)
{
	switch (k) {
	case T_EQ: return C_EQ;
	case T_NE: return C_NE;
	case T_LT: return C_LT;
	case T_LE: return C_LE;
	case T_GT: return C_GT;
	case T_GE: return C_GE;
	default: return -1;
	}
}

/* parse_cmp - one comparison at most: a < b < c is refused, not guessed. */
static uint32_t parse_cmp(struct compiler *c)
{
	char tb[32];
	uint32_t a = parse_unary(c);
	int op;

	if (a == NONE || (op = cmp_of(c->tok.kind)) < 0)
		return a;
	struct token optok = c->tok;
	if (!next(c))
		return NONE;
	if (c->tok.kind == T_CLOSE || c->tok.kind == T_RP ||
	    c->tok.kind == T_RB || cmp_of(c->tok.kind) >= 0 || tok_is(c, "then") ||
	    tok_is(c, "and") || tok_is(c, "or"))
		return fail(c, c->tok.off, "expected a value after '%.*s' instead of %s",
			    (int)optok.len, c->s + optok.off, tok_text(c, tb, sizeof tb));
	uint32_t b = parse_unary(c);
	if (b == NONE)
		return NONE;
	if (cmp_of(c->tok.kind) >= 0)
		return fail(c, c->tok.off, "comparisons cannot be chained; use 'and'");
	uint32_t n = add_node(c, N_CMP, a, b);
	if (n != NONE)
		c->t->nodes[n].op = (uint8_t)op;
	return n;
}

/* parse_and, parse_or - left-associative chains, "or" weakest. */
static uint32_t parse_and(struct compiler *c)
{
	uint32_t a = parse_cmp(c);

	while (a != NONE && tok_is(c, "and")) {
		if (!next(c))
			return NONE;
		uint32_t b = parse_cmp(c);
		a = b == NONE ? NONE : add_node(c, N_AND, a, b);
	}
	return a;
}

/* parse_expr - a whole expression: "or" of "and" of comparisons. */
static uint32_t parse_expr(struct compiler *c)
{
	uint32_t a = parse_and(c);

	while (a != NONE && tok_is(c, "or")) {
		if (!next(c))
			return NONE;
		uint32_t b = parse_and(c);
		a = b == NONE ? NONE : add_node(c, N_OR, a, b);
	}
	return a;
}

/* expect_close - the tag must end here. */
static bool expect_close(struct compiler *c, const char *after)
{
	char tb[32];

	if (c->tok.kind == T_CLOSE)
		return true;
	fail(c, c->tok.off, "unexpected %s after %s", tok_text(c, tb, sizeof tb), after);
	return false;
}

/* patch_chain - point every JUMP of a chain (linked through target) at `to`. */
static void patch_chain(struct template *t, uint32_t chain, uint32_t to)
{
	while (chain != NONE) {
		uint32_t next_link = t->ops[chain].target;
		t->ops[chain].target = to;
		chain = next_link;
	}
}

/* loop_name - the name {{each <expr>}} gives its loop: the last name of a path. */
static void loop_name(const struct template *t, uint32_t n, struct block *b)
{
	const struct node *nd = &t->nodes[n];

	b->name_off = 0;
	b->name_len = 0;
	if (nd->kind == N_VAR || nd->kind == N_MEMBER) {
		b->name_off = nd->name_off;
		b->name_len = nd->name_len;
	}
}

/* statement - one tag, its {{ already consumed and the first token read. */
static bool statement(struct compiler *c)
{
	struct template *t = c->t;
	uint32_t at = c->tag_off;

	if (c->tok.kind == T_CLOSE)
		return fail(c, at, "empty tag"), false;
	bool is_if = tok_is(c, "if"), is_elseif = tok_is(c, "elseif");
	bool is_else = tok_is(c, "else"), is_end = tok_is(c, "end"), is_each = tok_is(c, "each");
	if (c->raw && (is_if || is_elseif || is_else || is_end || is_each))
		return fail(c, c->tok.off, "'{{{' takes a value; write statements as {{%.*s ...}}",
			    (int)c->tok.len, c->s + c->tok.off), false;

	if (is_if || is_elseif || is_each) {
		const char *word = is_if ? "if" : is_elseif ? "elseif" : "each";
		struct block *b = c->nblocks ? &c->blocks[c->nblocks - 1] : NULL;
		if (is_elseif && (b == NULL || b->is_each))
			return fail(c, at, "{{elseif}} without {{if}}"), false;
		if (is_elseif && b->seen_else)
			return fail(c, at, "{{elseif}} after {{else}}"), false;
		if (!is_elseif && c->nblocks == TEMPLATE_NEST_MAX)
			return fail(c, at, "blocks nested deeper than %u", TEMPLATE_NEST_MAX), false;
		if (!next(c))
			return false;
		if (c->tok.kind == T_CLOSE)
			return fail(c, c->tok.off, "{{%s}} needs %s", word, is_each ? "an array" : "a condition"), false;
		uint32_t e = parse_expr(c);
		if (e == NONE)
			return false;
		if (!is_each && tok_is(c, "then") && !next(c))
			return false;
		if (!expect_close(c, is_each ? "the array" : "the condition"))
			return false;
		if (is_elseif) {
			uint32_t j = add_op(c, OP_JUMP, NONE, at);
			t->ops[j].target = b->end_jumps;
			b->end_jumps = j;
			t->ops[b->cond_op].target = t->nops;
			b->cond_op = add_op(c, OP_IF_FALSE, e, at);
			return true;
		}
		b = &c->blocks[c->nblocks++];
		memset(b, 0, sizeof *b);
		b->open_off = at;
		b->end_jumps = NONE;
		b->cond_op = NONE;
		if (is_if) {
			b->cond_op = add_op(c, OP_IF_FALSE, e, at);
		} else {
			b->is_each = true;
			loop_name(t, e, b);
			b->each_op = add_op(c, OP_EACH, e, at);
			t->ops[b->each_op].level = c->loops++;
			if (c->loops > t->loop_levels)
				t->loop_levels = c->loops;
		}
		return true;
	}
	if (is_else || is_end) {
		const char *word = is_else ? "else" : "end";
		struct block *b = c->nblocks ? &c->blocks[c->nblocks - 1] : NULL;
		if (!next(c) || !expect_close(c, word))
			return false;
		if (b == NULL)
			return fail(c, at, is_else ? "{{else}} without {{if}}"
				    : "{{end}} without {{if}} or {{each}}"), false;
		if (is_else) {
			if (b->is_each)
				return fail(c, at, "{{else}} inside {{each}} (only {{if}} takes one)"), false;
			if (b->seen_else)
				return fail(c, at, "second {{else}} in one {{if}}"), false;
			uint32_t j = add_op(c, OP_JUMP, NONE, at);
			t->ops[j].target = b->end_jumps;
			b->end_jumps = j;
			t->ops[b->cond_op].target = t->nops;
			b->cond_op = NONE;
			b->seen_else = true;
			return true;
		}
		if (b->is_each) {
			uint32_t nx = add_op(c, OP_NEXT, NONE, at);
			t->ops[nx].level = t->ops[b->each_op].level;
			t->ops[nx].target = b->each_op + 1;
			t->ops[b->each_op].target = t->nops;
			c->loops--;
		} else {
			if (b->cond_op != NONE)
				t->ops[b->cond_op].target = t->nops;
			patch_chain(t, b->end_jumps, t->nops);
		}
		c->nblocks--;
		return true;
	}
	if (tok_is(c, "then"))
		return fail(c, c->tok.off, "'then' outside {{if}}"), false;
	uint32_t e = parse_expr(c);
	if (e == NONE)
		return false;
	if (!expect_close(c, "the value"))
		return false;
	add_op(c, c->raw ? OP_EMIT_RAW : OP_EMIT, e, at);
	return true;
}

/* ------------------------------------------------------------------ */
/* compile                                                             */

int template_compile(const char *src, size_t len, struct template **out,
		     struct template_error *err)
{
	struct compiler c;
	struct template *t;

	if (err != NULL)
		memset(err, 0, sizeof *err);
	if (len > TEMPLATE_SRC_MAX) {
		if (err != NULL) {
			err->line = 1;
			err->col = 1;
			snprintf(err->msg, sizeof err->msg, "template larger than %u bytes",
				 TEMPLATE_SRC_MAX);
		}
		return -EINVAL;
	}
	t = XNEW(struct template);
	t->src = xmalloc(len + 1);
	if (len > 0)
		memcpy(t->src, src, len);
	t->src[len] = '\0';
	t->len = len;

	memset(&c, 0, sizeof c);
	c.t = t;
	c.s = t->src;
	c.len = len;
	c.err = err;

	size_t p = 0;
	while (p < len && !c.failed) {
		const char *open = len - p >= 2 ? memmem(t->src + p, len - p, "{{", 2) : NULL;
		size_t q = open ? (size_t)(open - t->src) : len;
		if (q > p) {
			uint32_t o = add_op(&c, OP_TEXT, NONE, (uint32_t)p);
			t->ops[o].len = (uint32_t)(q - p);
		}
		if (open == NULL)
			break;
		c.tag_off = (uint32_t)q;
		c.raw = q + 2 < len && t->src[q + 2] == '{';
		c.pos = q + (c.raw ? 3 : 2);
		c.depth = 0;
		/* a tag with no "}}" anywhere after it: say so, not what follows */
		if (memmem(t->src + c.pos, len - c.pos, "}}", 2) == NULL) {
			fail(&c, q, "unterminated tag: '%s' without '%s'",
			     c.raw ? "{{{" : "{{", c.raw ? "}}}" : "}}");
			break;
		}
		if (!next(&c) || !statement(&c))
			break;
		p = c.pos;
	}
	if (!c.failed && c.nblocks > 0) {
		const struct block *b = &c.blocks[c.nblocks - 1];
		fail(&c, b->open_off, b->is_each ? "unclosed {{each}}: no {{end}}"
		     : "unclosed {{if}}: no {{end}}");
	}
	if (c.failed) {
		template_free(t);
		return -EINVAL;
	}
	*out = t;
	return 0;
}

void template_free(struct template *t)
{
	if (t == NULL)
		return;
	for (uint32_t i = 0; i < t->nnodes; i++)
		if (t->nodes[i].kind == N_LIT)
			json_decref(t->nodes[i].lit);
	free(t->nodes);
	free(t->ops);
	free(t->src);
	free(t);
}

int template_is_static(const struct template *t)
{
	return t->nops == 0 || (t->nops == 1 && t->ops[0].kind == OP_TEXT);
}

/* ------------------------------------------------------------------ */
/* evaluation                                                          */

struct loop_state {
	json_t *arr;
	size_t i, n;
	json_t *cur;
};

struct render {
	const struct template *t;
	json_t *rcpt, *global;
	size_t steps, steps_max;
	bool over;		/* steps_max crossed inside an expression */
	struct loop_state loops[TEMPLATE_NEST_MAX];
};

/* truthy - Lua's rule: only missing, null and false are false. */
static bool truthy(const json_t *v)
{
	return v != NULL && !json_is_null(v) && !json_is_false(v);
}

/* number - a JSON number as a double. */
static double number(const json_t *v)
{
	return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

/* compare - a op b; mismatched types are unequal and unordered. */
static bool compare(const json_t *a, const json_t *b, enum cmp_op op)
{
	bool nil_a = a == NULL || json_is_null(a), nil_b = b == NULL || json_is_null(b);
	int ord;

	if (nil_a || nil_b) {
		if (op == C_EQ)
			return nil_a && nil_b;
		if (op == C_NE)
			return !(nil_a && nil_b);
		return false;
	}
	if (json_is_number(a) && json_is_number(b)) {
		if (json_is_integer(a) && json_is_integer(b)) {
			json_int_t x = json_integer_value(a), y = json_integer_value(b);
			ord = x < y ? -1 : x > y;
		} else {
			double x = number(a), y = number(b);
			ord = x < y ? -1 : x > y;
		}
	} else if (json_is_string(a) && json_is_string(b)) {
		size_t la = json_string_length(a), lb = json_string_length(b);
		int r = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
		ord = r != 0 ? r : la < lb ? -1 : la > lb;
	} else {
		bool eq = json_equal((json_t *)a, (json_t *)b);
		if (op == C_EQ)
			return eq;
		if (op == C_NE)
			return !eq;
		return false;
	}
	switch (op) {
	case C_EQ: return ord == 0;
	case C_NE: return ord != 0;
	case C_LT: return ord < 0;
	case C_LE: return ord <= 0;
	case C_GT: return ord > 0;
	case C_GE: return ord >= 0;
	}
	return false;
}

/* eval - the value of node n, borrowed; NULL when missing. */
static json_t *eval(struct render *r, uint32_t n)
{
	const struct node *nd = &r->t->nodes[n];
	const char *name = r->t->src + nd->name_off;
	json_t *v, *k;

	if (++r->steps > r->steps_max) {
		r->over = true;
		return NULL;
	}
	switch ((enum node_kind)nd->kind) {
	case N_LIT:
		return nd->lit;
	case N_VAR:
		v = r->rcpt ? json_object_getn(r->rcpt, name, nd->name_len) : NULL;
		if (v == NULL && r->global != NULL)
			v = json_object_getn(r->global, name, nd->name_len);
		return v;
	case N_LOOP:
		return r->loops[nd->level].cur;
	case N_MEMBER:
		v = eval(r, nd->a);
		return json_is_object(v) ? json_object_getn(v, name, nd->name_len) : NULL;
	case N_INDEX:
		v = eval(r, nd->a);
		k = eval(r, nd->b);
		if (json_is_object(v) && json_is_string(k))
			return json_object_getn(v, json_string_value(k), json_string_length(k));
		if (json_is_array(v) && json_is_number(k)) {
			/* 1-based, as a Lua table made from a JSON array */
			double d = number(k);
			if (d >= 1 && d <= (double)json_array_size(v) && d == (double)(size_t)d)
				return json_array_get(v, (size_t)d - 1);
		}
		return NULL;
	case N_NOT:
		return truthy(eval(r, nd->a)) ? json_false() : json_true();
	case N_AND:
		v = eval(r, nd->a);
		return truthy(v) ? eval(r, nd->b) : v;
	case N_OR:
		v = eval(r, nd->a);
		return truthy(v) ? v : eval(r, nd->b);
	case N_CMP:
		v = eval(r, nd->a);
		k = eval(r, nd->b);
		return compare(v, k, (enum cmp_op)nd->op) ? json_true() : json_false();
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* output                                                              */

/* html_len - the length of s once HTML-escaped. */
static size_t html_len(const char *s, size_t n)
{
	size_t m = n;

	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '&': m += 4; break;	/* &amp; */
		case '<': case '>': m += 3; break;	/* &lt; &gt; */
		case '"': m += 5; break;	/* &quot; */
		case '\'': m += 4; break;	/* &#39; */
		default: break;
		}
	}
	return m;
}

/* put - append s as the mode says; false when the output would pass max. */
static bool put(struct str *out, size_t start, size_t max, const char *s, size_t n,
		enum template_escape mode, bool raw)
{
	bool html = mode == TEMPLATE_HTML && !raw;
	size_t need = html ? html_len(s, n) : n;

	if (need > max || out->len - start > max - need)
		return false;
	if (!html && mode != TEMPLATE_HEADER) {
		str_append(out, s, n);
		return true;
	}
	str_reserve(out, need);
	size_t run = 0;		/* start of the bytes not yet copied */
	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;
		switch (s[i]) {
		case '&': rep = html ? "&amp;" : NULL; break;
		case '<': rep = html ? "&lt;" : NULL; break;
		case '>': rep = html ? "&gt;" : NULL; break;
		case '"': rep = html ? "&quot;" : NULL; break;
		case '\'': rep = html ? "&#39;" : NULL; break;
		case '\r': case '\n': rep = mode == TEMPLATE_HEADER ? " " : NULL; break;
		default: break;
		}
		if (rep == NULL)
			continue;
		str_append(out, s + run, i - run);
		str_appends(out, rep);
		run = i + 1;
	}
	str_append(out, s + run, n - run);
	return true;
}

/* put_value - a value's text: strings as they are, numbers as Lua prints them. */
static bool put_value(struct str *out, size_t start, size_t max, const json_t *v,
		      enum template_escape mode, bool raw)
{
	char buf[64];
	int n;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return put(out, start, max, json_string_value(v), json_string_length(v), mode, raw);
	case JSON_INTEGER:
		n = snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		n = snprintf(buf, sizeof buf, "%.14g", json_real_value(v));
		break;
	case JSON_TRUE:
		n = snprintf(buf, sizeof buf, "true");
		break;
	case JSON_FALSE:
		n = snprintf(buf, sizeof buf, "false");
		break;
	default:
		return true;	/* null, object, array: nothing */
	}
	return put(out, start, max, buf, (size_t)n, mode, raw);
}

/* ------------------------------------------------------------------ */
/* render                                                              */

/* render_fail - the limit error at op o's tag; out back to start. */
static int render_fail(const struct template *t, const struct op *o, struct str *out,
		       size_t start, struct template_error *err, const char *fmt, size_t lim)
{
	str_truncate(out, start);
	if (err != NULL) {
		memset(err, 0, sizeof *err);
		set_pos(err, t->src, o->off);
		snprintf(err->msg, sizeof err->msg, fmt, lim);
	}
	return -E2BIG;
}

int template_render_limited(const struct template *t, json_t *recipient_data,
			    json_t *global_data, enum template_escape mode,
			    const struct template_limits *lim,
			    struct str *out, struct template_error *err)
{
	struct render r;
	size_t start = out->len;
	uint32_t pc = 0;

	r.t = t;
	r.rcpt = json_is_object(recipient_data) ? recipient_data : NULL;
	r.global = json_is_object(global_data) ? global_data : NULL;
	r.steps = 0;
	r.steps_max = lim->steps_max;
	r.over = false;
	memset(r.loops, 0, sizeof r.loops);
	while (pc < t->nops) {
		const struct op *o = &t->ops[pc];
		struct loop_state *ls;
		json_t *v;

		if (++r.steps > r.steps_max || r.over)
			return render_fail(t, o, out, start, err,
					   "template needs more than %zu steps", r.steps_max);
		switch ((enum op_kind)o->kind) {
		case OP_TEXT:
			if (!put(out, start, lim->out_max, t->src + o->off, o->len,
				 TEMPLATE_TEXT, true))
				goto too_big;
			pc++;
			break;
		case OP_EMIT:
		case OP_EMIT_RAW:
			v = eval(&r, o->expr);
			if (r.over)
				continue;
			if (v != NULL && !put_value(out, start, lim->out_max, v, mode,
						    o->kind == OP_EMIT_RAW))
				goto too_big;
			pc++;
			break;
		case OP_IF_FALSE:
			v = eval(&r, o->expr);
			if (r.over)
				continue;
			pc = truthy(v) ? pc + 1 : o->target;
			break;
		case OP_JUMP:
			pc = o->target;
			break;
		case OP_EACH:
			v = eval(&r, o->expr);
			if (r.over)
				continue;
			if (!json_is_array(v) || json_array_size(v) == 0) {
				pc = o->target;
				break;
			}
			if (json_array_size(v) > lim->each_max)
				return render_fail(t, o, out, start, err,
						   "{{each}} over more than %zu elements",
						   lim->each_max);
			ls = &r.loops[o->level];
			ls->arr = v;
			ls->i = 0;
			ls->n = json_array_size(v);
			ls->cur = json_array_get(v, 0);
			pc++;
			break;
		case OP_NEXT:
			ls = &r.loops[o->level];
			if (++ls->i < ls->n) {
				ls->cur = json_array_get(ls->arr, ls->i);
				pc = o->target;
			} else {
				ls->cur = NULL;
				pc++;
			}
			break;
		}
		continue;
too_big:
		return render_fail(t, o, out, start, err, "output larger than %zu bytes",
				   lim->out_max);
	}
	return 0;
}

int template_render(const struct template *t, json_t *recipient_data,
		    json_t *global_data, enum template_escape mode,
		    struct str *out, struct template_error *err)
{
	static const struct template_limits defaults = {
		.out_max = TEMPLATE_OUT_MAX_DEFAULT,
		.steps_max = TEMPLATE_STEPS_MAX_DEFAULT,
		.each_max = TEMPLATE_EACH_MAX_DEFAULT,
	};

	return template_render_limited(t, recipient_data, global_data, mode, &defaults,
				       out, err);
}

void template_error_format(const struct template_error *err, const char *part,
			   struct str *out)
{
	if (part != NULL)
		str_appendf(out, "%s:", part);
	str_appendf(out, "%u:%u: %s", err->line, err->col, err->msg);
}
