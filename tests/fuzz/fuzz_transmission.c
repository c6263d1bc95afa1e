/*
 * fuzz_transmission.c - libFuzzer target for the JSON injection requests
 *
 * transmission_parse and transmission_render (src/message/transmission.c)
 * take the bodies of POST /api/v1/transmissions and POST /api/inject/v1
 * from HTTP clients; a crash there takes the daemon down, a bad message
 * goes on to other MTAs. Properties, abort() on the first violation:
 *   - a refused request has status 400 or 422 and says why; 400 only
 *     when the body is not JSON;
 *   - a recipient refused at render names a field under
 *     "recipients[i]" or "content", with a reason;
 *   - an accepted recipient has a non-empty envelope address without
 *     CR, LF, '<' or '>', a message that is CRLF-only and ends with
 *     CRLF, and context pairs with keys and values;
 *   - rendering twice gives the same bytes but for Message-ID (the
 *     unique token is fixed here, so exactly the same bytes).
 *
 * Input: byte 0 picks the shape (even: SparkPost, odd: KumoMTA); the
 * rest is the body. At most 8 recipients are rendered per input.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/str.h"
#include "message/transmission.h"

#include "fuzz.h"

/* check_msg - the properties of an accepted recipient's message. */
static void check_msg(const struct tx_msg *m)
{
	MUST(m->rcpt && *m->rcpt && strpbrk(m->rcpt, "\r\n<>") == NULL);
	MUST(m->data.len >= 2 && memcmp(m->data.s + m->data.len - 2, "\r\n", 2) == 0);
	for (size_t i = 0; i < m->data.len; i++) {
		if (m->data.s[i] == '\r')
			MUST(i + 1 < m->data.len && m->data.s[i + 1] == '\n');
		if (m->data.s[i] == '\n')
			MUST(i > 0 && m->data.s[i - 1] == '\r');
	}
	for (size_t i = 0; i < m->nvctx; i++)
		MUST(m->vctx[2 * i] && *m->vctx[2 * i] && m->vctx[2 * i + 1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct transmission *tx;
	struct tx_err err;

	if (size < 1)
		return 0;
	enum tx_shape shape = data[0] & 1 ? TX_KUMO : TX_SPARKPOST;

	if (transmission_parse(shape, (const char *)data + 1, size - 1, &tx, &err) < 0) {
		MUST(err.status == 400 || err.status == 422);
		MUST(err.text[0] != '\0');
		return 0;
	}
	struct msg_build_opts o = { .hostname = "fuzz.example", .unique = "FUZZ", .now = 1700000000 };
	size_t n = transmission_count(tx);

	MUST(n >= 1);
	for (size_t i = 0; i < n && i < 8; i++) {
		struct tx_msg m, again;
		struct tx_err e;

		if (transmission_render(tx, i, 42, &o, &m, &e) < 0) {
			char want[32];

			snprintf(want, sizeof(want), "recipients[%zu]", i);
			MUST(strncmp(e.field, want, strlen(want)) == 0 ||
			     strncmp(e.field, "content", 7) == 0);
			MUST(e.text[0] != '\0');
			tx_msg_free(&m);
			continue;
		}
		check_msg(&m);
		MUST(transmission_render(tx, i, 42, &o, &again, &e) == 0);
		MUST(again.data.len == m.data.len && memcmp(again.data.s, m.data.s, m.data.len) == 0);
		tx_msg_free(&again);
		tx_msg_free(&m);
	}
	transmission_free(tx);
	return 0;
}
