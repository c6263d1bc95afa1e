/*
 * test_od_from.c - the From: domain of the opendkim module (modules/opendkim/od_from.c)
 *
 * A table of From: values as clients write them, with the domain the
 * signer must pick or none: display names with commas, quotes and angle
 * brackets inside, comments, folding, groups of several authors, upper
 * case and a trailing dot, and values with no usable domain.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "od_from.h"

static const struct {
	const char *value;
	const char *domain;	/* NULL: none */
} cases[] = {
	{ "a@example.com", "example.com" },
	{ "<a@Example.COM>", "example.com" },
	{ "Name <a@example.com>", "example.com" },
	{ "\"Sender, Name\" <news@ss.test>", "ss.test" },
	{ "\"a <b@evil.test>\" <a@good.test>", "good.test" },
	{ "(comment <x@evil.test>) a@good.test", "good.test" },
	{ "a@good.test (Real Name)", "good.test" },
	{ "Folded\r\n <a@fold.test>", "fold.test" },
	{ "a@one.test, b@two.test", "one.test" },
	{ "A <a@one.test>, B <b@two.test>", "one.test" },
	{ "\"x@y\"@quoted.test", "quoted.test" },
	{ "a@example.com.", "example.com" },
	{ "<a@ sp.test >", "sp.test" },
	{ "<a@under_score.test>", "under_score.test" },
	{ "", NULL },
	{ "no address here", NULL },
	{ "<a@>", NULL },
	{ "<a@.test>", NULL },
	{ "<a@exa mple.com>", NULL },
	{ "<a@bad!.test>", NULL },
	{ "Name <a@open.test", NULL },
	{ "\"unterminated <a@x.test>", NULL },
	{ "<a@\xc3\xa5.test>", NULL },
};

int main(void)
{
	char out[254];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool ok = od_from_domain(cases[i].value, out, sizeof(out));

		if (ok != (cases[i].domain != NULL) || (ok && strcmp(out, cases[i].domain) != 0)) {
			fprintf(stderr, "case %zu \"%s\": got %s \"%s\", expected %s\n", i,
				cases[i].value, ok ? "yes" : "no", ok ? out : "",
				cases[i].domain ? cases[i].domain : "none");
			check_failures++;
		}
	}
	/* a domain that does not fit is none, never cut */
	char small[8];
	CHECK(!od_from_domain("a@example.com", small, sizeof(small)));
	CHECK(od_from_domain("a@abc.de", small, sizeof(small)) && strcmp(small, "abc.de") == 0);
	CHECK(!od_from_domain("a@abc.de", small, 0));
	return check_done();
}
