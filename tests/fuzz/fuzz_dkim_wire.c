/*
 * fuzz_dkim_wire.c - the opendkim signer's view of the received message
 * (modules/opendkim/od_wire.c, compiled in here) against the SMTP
 * client's body writer (smtpc_body_write, in impetus_lib)
 *
 * Property: the client's DATA bytes for the input, terminator removed
 * and dot-stuffing undone, equal od_wire_view's output (or the input
 * when it says no copy is needed); every wire line is at most 998
 * octets. Byte 0 picks how the input is split for the client.
 */
#include "fuzz.h"

#include <event2/buffer.h>

#include "smtp/smtp_client_int.h"
#include "../../modules/opendkim/od_wire.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = 1 + data[0] % 64;
	const char *msg = (const char *)data + 1;
	size_t len = size - 1;
	struct evbuffer *out = evbuffer_new();
	struct smtpc_body w;

	MUST(out != NULL);
	smtpc_body_init(&w);
	for (size_t at = 0; at < len; at += step)
		smtpc_body_write(&w, out, msg + at, len - at < step ? len - at : step);
	smtpc_body_end(&w, out);

	size_t wl = evbuffer_get_length(out), n = 0;
	char *wire = malloc(wl + 1), *r = malloc(wl + 1);
	MUST(wire && r);
	evbuffer_remove(out, wire, wl);
	evbuffer_free(out);
	MUST(wl >= 3 && memcmp(wire + wl - 3, ".\r\n", 3) == 0);
	wl -= 3;
	size_t col = 0;
	int bol = 1;
	for (size_t i = 0; i < wl; i++) {
		if (bol && wire[i] == '.') {
			MUST(i + 1 < wl && wire[i + 1] == '.');
			i++;
			col++;
		}
		bol = 0;
		r[n++] = wire[i];
		if (wire[i] == '\n') {
			bol = 1;
			col = 0;
		} else if (wire[i] != '\r') {
			MUST(++col <= OD_WIRE_LINE_MAX);
		}
	}
	size_t vl = 0;
	char *v = od_wire_view(msg, len, &vl);
	if (v == NULL)
		MUST(n == len && memcmp(r, msg, len) == 0);
	else
		MUST(n == vl && memcmp(r, v, vl) == 0);
	free(v);
	free(wire);
	free(r);
	return 0;
}
