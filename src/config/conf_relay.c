/*
 * conf_relay.c - addresses in the configuration and relay decisions
 *
 * Parses what the configuration says about the network: CIDR blocks in
 * Relay_Hosts, IP literals in Bind_Address, and Listen addresses. All of
 * them are checked when the file is loaded, so a typo is a start-up error
 * with file:line:col and never a surprise at the first connection. The
 * Relay_Hosts blocks are parsed once into struct conf_cidr (every address
 * as 16 bytes, IPv4 as ::ffff:a.b.c.d) so matching a client is a few byte
 * compares; Relay_Domains is matched as written.
 *
 * State: none of its own; everything read is part of an immutable struct
 * conf, so any thread may call the matchers.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "config/conf_int.h"
#include "core/sockaddr.h"

/* ======================================================================
 * Parsing
 * ====================================================================== */

/* v4_mapped - put an IPv4 address into the ::ffff:0:0/96 form. */
static void v4_mapped(uint8_t out[16], const void *v4)
{
	memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	memcpy(out + 12, v4, 4);
}

/* parse_ip - an IPv4 or IPv6 literal into the 16-byte form; *is_v4 tells which. */
static bool parse_ip(const char *s, size_t len, uint8_t out[16], bool *is_v4)
{
	char buf[INET6_ADDRSTRLEN + 1];
	struct in_addr a4;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		v4_mapped(out, &a4);
		*is_v4 = true;
		return true;
	}
	if (inet_pton(AF_INET6, buf, out) == 1) {
		*is_v4 = false;
		return true;
	}
	return false;
}

bool conf_ip_literal_valid(const char *s)
{
	uint8_t a[16];
	bool v4;

	return parse_ip(s, strlen(s), a, &v4);
}

bool conf_cidr_parse(const char *s, struct conf_cidr *out)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned bits;
	bool v4;

	if (!parse_ip(s, alen, out->addr, &v4))
		return false;
	bits = v4 ? 32 : 128;
	if (slash) {
		const char *p = slash + 1;
		unsigned b = 0;

		if (*p == '\0' || strlen(p) > 3)
			return false;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return false;
			b = b * 10 + (unsigned)(*p - '0');
		}
		if (b > bits)
			return false;
		bits = b;
	}
	out->bits = (uint8_t)(v4 ? bits + 96 : bits);
	/* Clear host bits so matching compares whole bytes plus one masked byte. */
	for (unsigned i = out->bits; i < 128; i++)
		out->addr[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
	return true;
}

bool conf_listen_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
		       char *canon, size_t canonlen)
{
	const char *host, *colon;
	size_t hlen;
	bool v6 = false;
	unsigned long port = 0;
	char hbuf[INET6_ADDRSTRLEN + 1];

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return false;
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
		v6 = true;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return false;
		host = s;
		hlen = (size_t)(colon - s);
		if (memchr(host, ':', hlen))	/* bare IPv6 needs brackets */
			return false;
	}
	/* Port: 1 to 5 digits, 0..65535, and nothing after it. */
	const char *p = colon + 1;
	if (*p == '\0' || strlen(p) > 5)
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port > 65535 || hlen >= sizeof(hbuf))
		return false;
	memcpy(hbuf, host, hlen);
	hbuf[hlen] = '\0';
	if (hlen == 0 || strcmp(hbuf, "*") == 0)
		strcpy(hbuf, v6 ? "::" : "0.0.0.0");

	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, hbuf, &a->sin6_addr) != 1)
			return false;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, hbuf, &a->sin_addr) != 1)
			return false;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*len = sizeof(*a);
	}
	sockaddr_format((const struct sockaddr *)ss, NULL, 0, canon, canonlen);
	return true;
}

/* ======================================================================
 * Matching
 * ====================================================================== */

/* cidr_contains - whether addr (16-byte form) lies in block c. */
static bool cidr_contains(const struct conf_cidr *c, const uint8_t addr[16])
{
	unsigned whole = c->bits / 8, rest = c->bits % 8;

	if (memcmp(c->addr, addr, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (addr[whole] & mask) == c->addr[whole];
}

bool conf_relay_host_match(const struct conf *c, const struct conf_listener *l,
			   const struct sockaddr *sa)
{
	const struct conf_setting *s = conf_setting_of(conf_listener_get(c, l, CONF_OPT_RELAY_HOSTS));
	const struct conf_cidr_set *set = s->extra;
	uint8_t addr[16];

	if (set == NULL || !sockaddr_ip16(sa, addr))
		return false;
	for (size_t i = 0; i < set->n; i++)
		if (cidr_contains(&set->v[i], addr))
			return true;
	return false;
}

bool conf_relay_domain_match(const struct conf *c, const struct conf_listener *l,
			     const char *domain)
{
	const struct conf_value *v = conf_listener_get(c, l, CONF_OPT_RELAY_DOMAINS);
	size_t dlen;

	if (domain == NULL)
		return false;
	dlen = strlen(domain);
	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	if (dlen == 0)
		return false;
	for (size_t i = 0; i < v->u.list.n; i++) {
		const char *e = v->u.list.v[i];
		size_t elen = strlen(e);

		if (elen > 0 && e[elen - 1] == '.')
			elen--;
		if (e[0] == '*') {
			/* Left glob: "*.example.com" needs the dot (subdomains only);
			 * "*example.com" also matches example.com and badexample.com. */
			e++;
			elen--;
			if (dlen >= elen && conf_ascii_caseeq_n(domain + dlen - elen, e, elen))
				return true;
		} else if (dlen == elen && conf_ascii_caseeq_n(domain, e, elen)) {
			return true;
		}
	}
	return false;
}
