/*
 * tools.h - what the parts of the `impetus` binary share: the entry
 * points of its submission commands (sendmail.c, inject.c) and the
 * message helpers both use (addrlist.c).
 */
#ifndef IMPETUS_TOOLS_TOOLS_H
#define IMPETUS_TOOLS_TOOLS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"

/* A growing list of heap strings. */
struct strlist {
	char **v;
	size_t n, cap;
};
void strlist_add(struct strlist *l, const char *s, size_t len);
/* strlist_add_unique - add unless already there (case-insensitive). */
void strlist_add_unique(struct strlist *l, const char *s);
void strlist_free(struct strlist *l);

/*
 * addrlist_parse - the addresses of an RFC 5322 address list ("A <a@b>,
 * c@d (C), group: e@f;"), without display names, comments or brackets,
 * appended to out. Returns false when a bracket or quote is left open.
 */
bool addrlist_parse(const char *s, size_t len, struct strlist *out);

/*
 * header_rcpts - the recipients of a message's To, Cc and Bcc fields
 * (Resent-To, Resent-Cc and Resent-Bcc instead when the message has any),
 * as `sendmail -t` reads them.
 */
void header_rcpts(const char *msg, size_t len, struct strlist *out);

/* sendmail_main - `impetus sendmail ARGS` or the binary run as "sendmail"; a sysexits.h code. */
int sendmail_main(int argc, char **argv, const char *conf_path);

/* inject_main - `impetus inject ARGS`; 0, 1 when a file was refused, 2 on usage errors. */
int inject_main(int argc, char **argv, const char *conf_path);

#endif
