/*
 * override_rules.h - the files of the bounce_override module, parsed
 *
 * Pure code, no impetus API: the module (bounce_override.c) and the fuzz
 * target (tests/fuzz/fuzz_bounce_override.c) both use it. Two line
 * formats share one reader:
 *
 *     rules:    <class code> <POSIX extended regular expression>
 *     classes:  <class code> <name>[: <description>]
 *
 * Blank lines and lines whose first non-blank byte is '#' are skipped;
 * leading and trailing blanks (space, tab, CR) are not part of a line.
 * Errors are one line, "line N: why", written into the caller's buffer.
 */
#ifndef IMPETUS_MODULES_OVERRIDE_RULES_H
#define IMPETUS_MODULES_OVERRIDE_RULES_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#define OVR_LINE_MAX 4096	/* bytes in one line, without its end */
#define OVR_PATTERN_MAX 1024	/* bytes in one regular expression */
#define OVR_REPEAT_MAX 255	/* largest {n,m} bound: regcomp's memory grows with it */
#define OVR_CODE_MAX 999999
#define OVR_NAME_MAX 64
#define OVR_DESC_MAX 200

struct ovr_rule {
	int code;
	unsigned line;		/* in its file, for messages */
	regex_t re;
};

struct ovr_rules {
	struct ovr_rule *v;
	size_t n;
};

/* One class declaration. */
struct ovr_class {
	int code;
	char name[OVR_NAME_MAX + 1];
	char desc[OVR_DESC_MAX + 1];
};

/*
 * ovr_lines - call fn for each meaningful line of text (len bytes, may
 * hold NULs: a NUL in a line is an error), trimmed and NUL-terminated.
 * fn returns 0 or -1 after writing why into err. Returns 0, or -1 with
 * err "line N: why".
 */
typedef int (*ovr_line_fn)(void *arg, unsigned lineno, char *line, char *err, size_t errsize);
int ovr_lines(const char *text, size_t len, ovr_line_fn fn, void *arg, char *err, size_t errsize);

/*
 * ovr_rules_parse - the rules of text into rules (empty on entry); icase
 * compiles them case-insensitively. 0, or -1 with err and rules empty.
 */
int ovr_rules_parse(struct ovr_rules *rules, const char *text, size_t len, bool icase,
		    char *err, size_t errsize);
/* ovr_rules_match - the code of the first rule matching text, or 0. Any thread. */
int ovr_rules_match(const struct ovr_rules *rules, const char *text, unsigned *line);
void ovr_rules_free(struct ovr_rules *rules);

/* ovr_class_parse - one "<code> <name>[: <description>]"; 0, or -1 with err. */
int ovr_class_parse(const char *spec, struct ovr_class *c, char *err, size_t errsize);

#endif
