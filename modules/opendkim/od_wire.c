/*
 * od_wire.c - the received form of a message (see od_wire.h)
 *
 * First a scan that only reads: a message with CRLF line ends only, no
 * line near the limit and a final CRLF (nearly every message) needs no
 * copy. Otherwise the copy is made by the same state machine as the SMTP
 * client's body writer, less the stuffing dot it emits (which still
 * counts towards the line length, as on the wire).
 */
#include "od_wire.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

/* unchanged - whether the client would send msg as it is (dot-stuffing aside). */
static bool unchanged(const char *p, size_t len)
{
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\r') {
			if (i + 1 >= len || p[i + 1] != '\n')
				return false;
			i++;
			col = 0;
			continue;
		}
		if (p[i] == '\n')
			return false;
		/* A leading dot counts twice on the wire; keep a margin of one. */
		if (++col >= OD_WIRE_LINE_MAX)
			return false;
	}
	return col == 0;
}

char *od_wire_view(const char *p, size_t len, size_t *outlen)
{
	if (unchanged(p, len))
		return NULL;
	/*
	 * Bound: each CR or LF may become two bytes, each fold adds three per
	 * 997 octets, plus the final CRLF.
	 */
	size_t cap = len * 2 + len / (OD_WIRE_LINE_MAX - 1) * 3 + 8;
	char *out = malloc(cap);
	size_t n = 0, col = 0;
	bool at_bol = true, cr = false;

	if (out == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (cr) {
			/* CR LF, or a bare CR: either way the line ends with CRLF. */
			cr = false;
			out[n++] = '\r';
			out[n++] = '\n';
			at_bol = true;
			col = 0;
			if (c == '\n')
				continue;
		}
		if (c == '\r') {
			cr = true;
			continue;
		}
		if (c == '\n') {
			out[n++] = '\r';
			out[n++] = '\n';
			at_bol = true;
			col = 0;
			continue;
		}
		if (at_bol && c == '.')
			col++;		/* the stuffing dot: on the wire, not in what is received */
		if (col >= OD_WIRE_LINE_MAX) {
			out[n++] = '\r';
			out[n++] = '\n';
			out[n++] = ' ';
			col = 1;
		}
		out[n++] = c;
		col++;
		at_bol = false;
	}
	if (cr || !at_bol) {
		out[n++] = '\r';
		out[n++] = '\n';
	}
	*outlen = n;
	return out;
}
