/*
 * rcpt_list.h - rcpt_filter's list file: parse, sort, look up
 *
 * Pure data, no impetus API: rcpt_filter.c holds the versions, reloads and
 * refcounts them; tests/fuzz/fuzz_rcpt_list.c fuzzes the parser. The
 * format is docs/modules/rcpt_filter.md ("The list file").
 */
#ifndef RCPT_LIST_H
#define RCPT_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* An entry line longer than this is an error (a mail address is at most 254 bytes). */
#define RCPT_LIST_LINE_MAX 1024
/* A reply text longer than struct imp_reply holds is an error, not a silent cut. */
#define RCPT_LIST_TEXT_MAX 400

enum rcpt_action { RCPT_REJECT, RCPT_TEMPFAIL };

struct rcpt_entry {
	char *key;		/* lower-cased "user@domain" or "@domain" */
	enum rcpt_action action;
	char *text;		/* NULL: the instance's default text */
};

/* One version of the file, sorted by key, keys unique; immutable once built. */
struct rcpt_list {
	struct rcpt_entry *v;
	size_t n;
	int refs;		/* for the owner (rcpt_filter.c); 0 here */
};

/*
 * rcpt_list_read - parse the whole of fp (named name in errors) into a new
 * list. Returns NULL and one line in err ("name:line: why") on a bad line,
 * a duplicate key, a read error or memory exhaustion.
 */
struct rcpt_list *rcpt_list_read(FILE *fp, const char *name, char *err, size_t errsize);
/* rcpt_list_lookup - the entry for rcpt (lower-cased): the address, else its @domain; or NULL. */
const struct rcpt_entry *rcpt_list_lookup(const struct rcpt_list *l, const char *rcpt);
void rcpt_list_free(struct rcpt_list *l);
/* rcpt_list_lower - ASCII lower-case s in place (how keys and recipients are compared). */
void rcpt_list_lower(char *s);
/* rcpt_list_text_ok - whether s can be a reply text: at most RCPT_LIST_TEXT_MAX bytes, no control bytes but tab. */
bool rcpt_list_text_ok(const char *s);

#endif
