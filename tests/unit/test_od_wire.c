/*
 * test_od_wire.c - the signer's view of the received message
 * (modules/opendkim/od_wire.c) against the SMTP client's body writer
 * (src/smtp/smtp_client.c, smtpc_body_write)
 *
 * For crafted and random messages (dots at line starts, bare CR and LF,
 * lines of 996 to 5,000 octets, no final line end), the client's DATA
 * bytes, with the terminator removed and the dot-stuffing undone as a
 * receiver does, must equal od_wire_view's output (or the input, when it
 * says no copy is needed). If the client changes what it sends, this
 * fails, and DKIM signatures would break at the next hop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "check.h"
#include "od_wire.h"
#include "smtp/smtp_client_int.h"

/* received - what a receiver stores of the client's DATA for msg (split at random). */
static char *received(const char *msg, size_t len, size_t *outlen, unsigned *seed)
{
	struct evbuffer *out = evbuffer_new();
	struct smtpc_body w;
	size_t at = 0;

	smtpc_body_init(&w);
	while (at < len) {
		size_t n = 1 + (size_t)(rand_r(seed) % 700);

		if (n > len - at)
			n = len - at;
		smtpc_body_write(&w, out, msg + at, n);
		at += n;
	}
	smtpc_body_end(&w, out);
	size_t wl = evbuffer_get_length(out);
	char *wire = malloc(wl + 1), *r = malloc(wl + 1);
	size_t n = 0;

	evbuffer_remove(out, wire, wl);
	evbuffer_free(out);
	CHECK(wl >= 3 && memcmp(wire + wl - 3, ".\r\n", 3) == 0);
	wl -= 3;
	/* undo dot-stuffing; check every wire line is within the limit */
	for (size_t i = 0, bol = 1, col = 0; i < wl; i++) {
		if (bol && wire[i] == '.') {
			CHECK(i + 1 < wl && wire[i + 1] == '.');
			i++;
			col++;
		}
		bol = 0;
		r[n++] = wire[i];
		if (wire[i] == '\n') {
			CHECK(n >= 2 && r[n - 2] == '\r');
			bol = 1;
			col = 0;
		} else if (wire[i] != '\r') {
			col++;
			CHECK(col <= OD_WIRE_LINE_MAX);
		}
	}
	free(wire);
	*outlen = n;
	return r;
}

static int compare(const char *msg, size_t len, unsigned *seed)
{
	size_t rl, vl;
	char *r = received(msg, len, &rl, seed);
	char *v = od_wire_view(msg, len, &vl);
	int same;

	if (v == NULL) {
		v = (char *)msg;
		vl = len;
	}
	same = rl == vl && memcmp(r, v, rl) == 0;
	if (!same) {
		fprintf(stderr, "differs for a message of %zu bytes: received %zu, view %zu\n", len, rl, vl);
		check_failures++;
	}
	if (v != msg)
		free(v);
	free(r);
	return same;
}

static void test_crafted(unsigned *seed)
{
	static char buf[20000];
	const char *simple[] = {
		"", "A: 1\r\n\r\nbody\r\n", "no final line end", "bare\nLF\n", "bare\rCR\r",
		"CR at end\r", ".dot\r\n..two\r\n", "mixed\r\r\n\n\r",
	};

	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
		compare(simple[i], strlen(simple[i]), seed);
	/* lines around the limit, with and without a leading dot */
	for (size_t n = 995; n <= 1000; n++)
		for (int dot = 0; dot < 2; dot++) {
			memset(buf, 'x', n);
			if (dot)
				buf[0] = '.';
			memcpy(buf + n, "\r\n", 2);
			compare(buf, n + 2, seed);
		}
	memset(buf, 'y', 5000);
	memcpy(buf + 5000, "\r\n", 2);
	compare(buf, 5002, seed);
	/* the common case needs no copy */
	size_t vl;
	CHECK(od_wire_view("A: 1\r\n\r\nbody\r\n", 14, &vl) == NULL);
	CHECK(od_wire_view("", 0, &vl) == NULL);
	char *v = od_wire_view("x\n", 2, &vl);
	CHECK(v != NULL && vl == 3 && memcmp(v, "x\r\n", 3) == 0);
	free(v);
}

static void test_random(unsigned *seed)
{
	static char buf[12000];
	const char alphabet[] = "ab .\r\n";

	for (int round = 0; round < 3000; round++) {
		size_t len = (size_t)(rand_r(seed) % sizeof(buf));
		/* mostly letters, so that long lines happen */
		for (size_t i = 0; i < len; i++)
			buf[i] = rand_r(seed) % 50 ? 'a' : alphabet[rand_r(seed) % 6];
		if (!compare(buf, len, seed))
			break;
	}
}

int main(void)
{
	unsigned seed = 12345;

	test_crafted(&seed);
	test_random(&seed);
	return check_done();
}
