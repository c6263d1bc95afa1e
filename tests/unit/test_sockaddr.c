/*
 * test_sockaddr.c - src/core/sockaddr.c: address text and 16-byte keys
 *
 * Table-driven: each row is an address as text, parsed with inet_pton
 * into the family's sockaddr, formatted back, and compared with the
 * expected "ip" and "full" texts. Then the edges: other families, short
 * buffers (cut, terminated, -ENOSPC, never a byte past the end).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

#include "check.h"
#include "core/sockaddr.h"

/* make - a sockaddr_storage for text and port; false when text is no literal. */
static int make(const char *text, unsigned port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, text, &a->sin6_addr) == 1;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, text, &a->sin_addr) == 1;
}

static const struct {
	const char *in;
	unsigned port;
	const char *ip, *full;
} rows[] = {
	{ "192.0.2.1", 25, "192.0.2.1", "192.0.2.1:25" },
	{ "0.0.0.0", 0, "0.0.0.0", "0.0.0.0:0" },
	{ "255.255.255.255", 65535, "255.255.255.255", "255.255.255.255:65535" },
	{ "2001:db8::1", 2525, "2001:db8::1", "[2001:db8::1]:2525" },
	{ "::1", 25, "::1", "[::1]:25" },
	{ "::", 0, "::", "[::]:0" },
	/* IPv4-mapped: shown as the kernel gave it, still bracketed. */
	{ "::ffff:192.0.2.1", 587, "::ffff:192.0.2.1", "[::ffff:192.0.2.1]:587" },
	/* The longest text glibc writes for IPv6 (39 bytes), longest port. */
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535" },
};

/* test_table - every row formats to its ip and full texts. */
static void test_table(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sockaddr_storage ss;
		char ip[SOCKADDR_IP_TEXT_MAX], full[SOCKADDR_TEXT_MAX];

		CHECK(make(rows[i].in, rows[i].port, &ss));
		CHECK_INTEQ(sockaddr_format((struct sockaddr *)&ss, ip, sizeof(ip), full, sizeof(full)), 0);
		CHECK_STREQ(ip, rows[i].ip);
		CHECK_STREQ(full, rows[i].full);
		/* Either buffer alone. */
		memset(full, 'x', sizeof(full));
		CHECK_INTEQ(sockaddr_format((struct sockaddr *)&ss, NULL, 0, full, sizeof(full)), 0);
		CHECK_STREQ(full, rows[i].full);
		CHECK_INTEQ(sockaddr_format((struct sockaddr *)&ss, ip, sizeof(ip), NULL, 0), 0);
		CHECK_STREQ(ip, rows[i].ip);
	}
}

/* test_other_family - a unix socket, AF_UNSPEC and NULL give "?". */
static void test_other_family(void)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX, .sun_path = "/run/impetus.sock" };
	struct sockaddr_storage unspec;
	char ip[16], full[16];

	CHECK_INTEQ(sockaddr_format((struct sockaddr *)&un, ip, sizeof(ip), full, sizeof(full)),
		    -EAFNOSUPPORT);
	CHECK_STREQ(ip, "?");
	CHECK_STREQ(full, "?");
	memset(&unspec, 0, sizeof(unspec));
	CHECK_INTEQ(sockaddr_format((struct sockaddr *)&unspec, ip, sizeof(ip), full, sizeof(full)),
		    -EAFNOSUPPORT);
	CHECK_STREQ(full, "?");
	CHECK_INTEQ(sockaddr_format(NULL, ip, sizeof(ip), NULL, 0), -EAFNOSUPPORT);
	CHECK_STREQ(ip, "?");
}

/* test_short_buffers - cut to fit, NUL-terminated, nothing written past the end. */
static void test_short_buffers(void)
{
	struct sockaddr_storage ss;
	char buf[32];

	CHECK(make("2001:db8::1", 2525, &ss));	/* full text: "[2001:db8::1]:2525" (18) */
	for (size_t len = 0; len <= 19; len++) {
		memset(buf, 'x', sizeof(buf));
		int rc = sockaddr_format((struct sockaddr *)&ss, NULL, 0, buf, len);

		CHECK_INTEQ(rc, len == 19 ? 0 : -ENOSPC);
		if (len > 0) {
			CHECK_INTEQ(strlen(buf), len - 1 < 18 ? len - 1 : 18);
			CHECK(strncmp(buf, "[2001:db8::1]:2525", strlen(buf)) == 0);
		}
		for (size_t i = len; i < sizeof(buf); i++)
			CHECK(buf[i] == 'x');
	}
	/* A short ip buffer: cut, and the full text is still whole. */
	char ip[5], full[SOCKADDR_TEXT_MAX];
	CHECK_INTEQ(sockaddr_format((struct sockaddr *)&ss, ip, sizeof(ip), full, sizeof(full)), -ENOSPC);
	CHECK_STREQ(ip, "2001");
	CHECK_STREQ(full, "[2001:db8::1]:2525");
	/* IPv4, one byte short of the port's last digit. */
	CHECK(make("192.0.2.1", 25, &ss));
	CHECK_INTEQ(sockaddr_format((struct sockaddr *)&ss, NULL, 0, buf, 12), -ENOSPC);
	CHECK_STREQ(buf, "192.0.2.1:2");
	/* A unix address into a buffer of size 1: "" and no overrun. */
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	memset(buf, 'x', sizeof(buf));
	CHECK_INTEQ(sockaddr_format((struct sockaddr *)&un, buf, 1, NULL, 0), -EAFNOSUPPORT);
	CHECK(buf[0] == '\0' && buf[1] == 'x');
}

/* test_ip16 - IPv4 and its mapped IPv6 form give one key; others none. */
static void test_ip16(void)
{
	struct sockaddr_storage v4, mapped, v6;
	uint8_t k4[SOCKADDR_IP16_LEN], km[SOCKADDR_IP16_LEN], k6[SOCKADDR_IP16_LEN];
	static const uint8_t want4[SOCKADDR_IP16_LEN] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1,
	};

	CHECK(make("192.0.2.1", 25, &v4));
	CHECK(make("::ffff:192.0.2.1", 2525, &mapped));
	CHECK(make("2001:db8::1", 25, &v6));
	CHECK(sockaddr_ip16((struct sockaddr *)&v4, k4));
	CHECK(sockaddr_ip16((struct sockaddr *)&mapped, km));
	CHECK(sockaddr_ip16((struct sockaddr *)&v6, k6));
	CHECK(memcmp(k4, want4, sizeof(want4)) == 0);
	CHECK(memcmp(k4, km, sizeof(k4)) == 0);
	CHECK(memcmp(k6, k4, sizeof(k4)) != 0);
	CHECK(k6[0] == 0x20 && k6[1] == 0x01 && k6[15] == 1);

	struct sockaddr_un un = { .sun_family = AF_UNIX };
	uint8_t zero[SOCKADDR_IP16_LEN] = { 0 };
	memset(k4, 0xaa, sizeof(k4));
	CHECK(!sockaddr_ip16((struct sockaddr *)&un, k4));
	CHECK(memcmp(k4, zero, sizeof(zero)) == 0);
	CHECK(!sockaddr_ip16(NULL, k4));
}

int main(void)
{
	test_table();
	test_other_family();
	test_short_buffers();
	test_ip16();
	return check_done();
}
