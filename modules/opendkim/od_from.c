/*
 * od_from.c - the signing domain candidate of a From: field (see od_from.h)
 *
 * A small scanner, not an RFC 5322 address parser: it skips quoted
 * strings and comments to find the first angle address (or takes the
 * first addr-spec before a comma), then keeps the domain after its last
 * "@" if it is made of letters, digits, dots, hyphens and underscores.
 * Anything else gives no domain, and the message goes unsigned. No
 * impetus API call here: the unit test and fuzz_dkim_from compile it in.
 */
#include "od_from.h"

#include <string.h>

/* fws - whether c is folding white space. */
static bool fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * od_from_domain - the domain after the last "@" of the first angle
 * address, or of the text before the first "," or ";" when there is no
 * angle address; quoted strings and comments skipped (an "@" or "<"
 * inside them counts for nothing). The domain may be surrounded by FWS;
 * after it comes the ">" of an angle address, or, for a bare address,
 * the end, a comment, "," or ";".
 */
bool od_from_domain(const char *v, char *out, size_t outlen)
{
	const char *at = NULL, *end = NULL, *p;
	int depth = 0;
	bool quote = false, angle = false;

	if (outlen == 0)
		return false;
	for (p = v; *p; p++) {
		if (quote || depth > 0) {
			if (*p == '\\' && p[1])
				p++;
			else if (quote && *p == '"')
				quote = false;
			else if (!quote && *p == '(')
				depth++;
			else if (!quote && *p == ')')
				depth--;
			continue;
		}
		if (*p == '"') {
			quote = true;
		} else if (*p == '(') {
			depth++;
		} else if (*p == '<') {
			end = strchr(p + 1, '>');
			if (end == NULL)
				return false;
			at = NULL;
			for (const char *q = p + 1; q < end; q++)
				if (*q == '@')
					at = q;
			angle = true;
			break;
		} else if (*p == ',' || *p == ';') {
			break;
		} else if (*p == '@') {
			at = p;
		}
	}
	if (!angle)
		end = p;
	if (at == NULL)
		return false;
	p = at + 1;
	while (p < end && fws(*p))
		p++;
	size_t n = 0;
	for (; p < end && !fws(*p) && *p != '('; p++) {
		unsigned char c = (unsigned char)*p;

		/* ASCII only, whatever the locale */
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_') || n + 1 >= outlen)
			return false;
		out[n++] = (char)c;
	}
	while (p < end && fws(*p))
		p++;
	if (p < end && (angle || *p != '('))
		return false;
	if (n > 0 && out[n - 1] == '.')
		n--;
	out[n] = '\0';
	return n > 0 && out[0] != '.' && out[n - 1] != '.';
}
