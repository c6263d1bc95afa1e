/*
 * rcpt_list.c - rcpt_filter's list file: parse, sort, look up
 *
 * One entry a line: key, action, optional reply text; blank lines and
 * '#' comments are skipped. A line is refused (and with it the whole
 * version of the file: a list is used whole or not at all) when its key
 * is not "x@y" or "@y" of printable bytes, its action is not reject or
 * tempfail, its text is too long or holds control bytes, it is over
 * RCPT_LIST_LINE_MAX bytes or holds a NUL. Two lines with the same key
 * (after lower-casing) are refused too: the file would say two things.
 *
 * Ownership: a list belongs to whoever read it; it is never changed
 * afterwards, so any number of threads may look up in it at once.
 * Failure: NULL with the reason, never a partial list.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* getline under -std=c17; the tree's build defines it already */
#endif
#include "rcpt_list.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

void rcpt_list_free(struct rcpt_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].text);
	}
	free(l->v);
	free(l);
}

/* entry_cmp - qsort/bsearch order of entries: by key, bytewise. */
static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rcpt_entry *)a)->key, ((const struct rcpt_entry *)b)->key);
}

void rcpt_list_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

bool rcpt_list_text_ok(const char *s)
{
	if (strlen(s) > RCPT_LIST_TEXT_MAX)
		return false;
	for (const unsigned char *q = (const unsigned char *)s; *q; q++)
		if ((*q < 32 && *q != '\t') || *q == 127)
			return false;
	return true;
}

/* key_ok - whether key is "x@y" or "@y": printable bytes, something after the last '@', one '@' in "@y". */
static bool key_ok(const char *key)
{
	const char *at = strrchr(key, '@');

	if (at == NULL || at[1] == '\0')
		return false;
	if (key[0] == '@' && at != key)
		return false;	/* "@domain": a domain holds no '@' */
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		if (*p <= 32 || *p >= 127)
			return false;
	return true;
}

/* next_word - the word at *p (ended by blank or NUL, which is cut), *p moved past the blanks after it. */
static char *next_word(char **p)
{
	char *w = *p;

	while (**p && **p != ' ' && **p != '\t')
		(*p)++;
	if (**p)
		*(*p)++ = '\0';
	while (**p == ' ' || **p == '\t')
		(*p)++;
	return w;
}

/*
 * parse_line - one line into e (owning key and text), or set why.
 * Returns 1 for an entry, 0 for a blank or comment line, -1 on error.
 */
static int parse_line(char *line, struct rcpt_entry *e, const char **why)
{
	char *p = line;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	char *key = next_word(&p);
	char *act = next_word(&p);
	char *text = p;
	size_t tl = strlen(text);
	while (tl > 0 && (text[tl - 1] == ' ' || text[tl - 1] == '\t'))
		text[--tl] = '\0';

	if (!key_ok(key)) {
		*why = "expected an address or @domain first";
		return -1;
	}
	if (strcasecmp(act, "reject") == 0) {
		e->action = RCPT_REJECT;
	} else if (strcasecmp(act, "tempfail") == 0) {
		e->action = RCPT_TEMPFAIL;
	} else {
		*why = *act ? "the action must be reject or tempfail"
			    : "missing action (reject or tempfail)";
		return -1;
	}
	if (!rcpt_list_text_ok(text)) {
		*why = tl > RCPT_LIST_TEXT_MAX ? "reply text over 400 bytes"
					       : "control character in the reply text";
		return -1;
	}
	e->key = strdup(key);
	e->text = tl ? strdup(text) : NULL;
	if (e->key == NULL || (tl && e->text == NULL)) {
		free(e->key);
		free(e->text);
		*why = "out of memory";
		return -1;
	}
	rcpt_list_lower(e->key);
	return 1;
}

struct rcpt_list *rcpt_list_read(FILE *fp, const char *name, char *err, size_t errsize)
{
	struct rcpt_list *l = calloc(1, sizeof(*l));
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	unsigned lineno = 0;
	ssize_t len;

	if (l == NULL)
		goto nomem;
	errno = 0;
	while ((len = getline(&line, &cap, fp)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if ((size_t)len > RCPT_LIST_LINE_MAX) {
			snprintf(err, errsize, "%s:%u: line over %d bytes", name, lineno,
				 RCPT_LIST_LINE_MAX);
			goto fail;
		}
		if (strlen(line) != (size_t)len) {
			snprintf(err, errsize, "%s:%u: NUL byte in the line", name, lineno);
			goto fail;
		}
		struct rcpt_entry e = { 0 };
		const char *why = NULL;
		int rc = parse_line(line, &e, &why);
		if (rc < 0) {
			snprintf(err, errsize, "%s:%u: %s", name, lineno, why);
			goto fail;
		}
		if (rc == 0)
			continue;
		if (l->n == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			struct rcpt_entry *nv = realloc(l->v, na * sizeof(*nv));
			if (nv == NULL) {
				free(e.key);
				free(e.text);
				goto nomem;
			}
			l->v = nv;
			alloc = na;
		}
		l->v[l->n++] = e;
		errno = 0;
	}
	if (ferror(fp)) {
		snprintf(err, errsize, "cannot read %s: %s", name,
			 strerror(errno ? errno : EIO));
		goto fail;
	}
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), entry_cmp);
	for (size_t i = 1; i < l->n; i++)
		if (strcmp(l->v[i - 1].key, l->v[i].key) == 0) {
			snprintf(err, errsize, "%s: %s is listed twice", name, l->v[i].key);
			goto fail;
		}
	free(line);
	return l;

nomem:
	snprintf(err, errsize, "%s: out of memory", name);
fail:
	free(line);
	rcpt_list_free(l);
	return NULL;
}

const struct rcpt_entry *rcpt_list_lookup(const struct rcpt_list *l, const char *rcpt)
{
	const char *at = strrchr(rcpt, '@');
	const char *keys[2] = { rcpt, at };

	for (size_t i = 0; i < 2; i++) {
		if (keys[i] == NULL || l->n == 0)
			continue;
		struct rcpt_entry probe = { .key = (char *)keys[i] };
		const struct rcpt_entry *hit = bsearch(&probe, l->v, l->n, sizeof(*l->v), entry_cmp);
		if (hit != NULL)
			return hit;
	}
	return NULL;
}
