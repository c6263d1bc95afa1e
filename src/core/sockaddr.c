/*
 * sockaddr.c - socket addresses as text and as 16-byte keys (see sockaddr.h)
 *
 * Before this file the SMTP server, the SMTP client and the configuration
 * each had their own formatter, and they disagreed: the server wrote IPv6
 * peers as "2001:db8::1:25", the client and the Listen canon as
 * "[2001:db8::1]:25". There is now one, and it brackets.
 *
 * inet_ntop writes into a local buffer of the full size first: on a short
 * caller buffer it would fail and leave nothing, where a cut text is more
 * useful in a log line than none.
 */
#include "core/sockaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* copy_cut - s into buf of size len, cut to fit; false when cut. */
static bool copy_cut(char *buf, size_t len, const char *s)
{
	size_t n = strlen(s);

	if (len == 0)
		return false;
	if (n >= len) {
		memcpy(buf, s, len - 1);
		buf[len - 1] = '\0';
		return false;
	}
	memcpy(buf, s, n + 1);
	return true;
}

int sockaddr_format(const struct sockaddr *sa, char *ip, size_t iplen, char *full, size_t fulllen)
{
	char text[SOCKADDR_IP_TEXT_MAX];
	char both[SOCKADDR_TEXT_MAX];
	unsigned port;
	bool v6;

	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
		port = ntohs(sin->sin_port);
		v6 = false;
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
		port = ntohs(sin6->sin6_port);
		v6 = true;
	} else {
		if (ip)
			copy_cut(ip, iplen, "?");
		if (full)
			copy_cut(full, fulllen, "?");
		return -EAFNOSUPPORT;
	}
	snprintf(both, sizeof(both), v6 ? "[%s]:%u" : "%s:%u", text, port);

	bool ok = true;
	if (ip)
		ok &= copy_cut(ip, iplen, text);
	if (full)
		ok &= copy_cut(full, fulllen, both);
	return ok ? 0 : -ENOSPC;
}

bool sockaddr_ip16(const struct sockaddr *sa, uint8_t out[SOCKADDR_IP16_LEN])
{
	memset(out, 0, SOCKADDR_IP16_LEN);
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		out[10] = 0xff;
		out[11] = 0xff;
		memcpy(out + 12, &sin->sin_addr, 4);
		return true;
	}
	if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(out, &sin6->sin6_addr, SOCKADDR_IP16_LEN);
		return true;
	}
	return false;
}
