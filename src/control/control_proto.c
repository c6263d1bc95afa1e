/*
 * control_proto.c - parsing and formatting the console protocol (control_proto.h)
 *
 * Both parsers take bytes from the other end of a socket: every length is
 * checked before it is used, nothing is allocated per word, and any byte
 * sequence gets either a result or a clear error (tests/fuzz covers
 * them).
 */
#include <string.h>

#include "control/control_proto.h"

/* is_blank - a word separator. */
static bool is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

int ctl_request_parse(char *line, size_t len, struct ctl_request *req, struct str *err)
{
	req->argc = 0;
	req->json = false;
	req->argv[0] = NULL;
	if (len + 1 > CTL_REQUEST_MAX) {
		str_appendf(err, "request longer than %d bytes", CTL_REQUEST_MAX);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			str_appendf(err, "control byte 0x%02x at offset %zu in the request", c, i);
			return -1;
		}
	}
	line[len] = '\0';
	size_t i = 0;
	for (;;) {
		while (i < len && is_blank((unsigned char)line[i]))
			line[i++] = '\0';
		if (i >= len)
			break;
		const char *word = line + i;

		while (i < len && !is_blank((unsigned char)line[i]))
			i++;
		if (i < len)
			line[i++] = '\0';
		if (strcmp(word, "--json") == 0) {
			req->json = true;
			continue;
		}
		if (req->argc == CTL_ARGS_MAX) {
			str_appendf(err, "more than %d words in the request", CTL_ARGS_MAX);
			req->argc = 0;
			req->argv[0] = NULL;
			return -1;
		}
		req->argv[req->argc++] = word;
	}
	req->argv[req->argc] = NULL;
	if (req->argc == 0) {
		str_appends(err, "empty request (try \"help\")");
		return -1;
	}
	return 0;
}

void ctl_reply_format(struct str *out, bool ok, const char *body, size_t len)
{
	str_appendf(out, "%s %zu\n", ok ? "OK" : "ERR", len);
	if (len)
		str_append(out, body, len);
}

int ctl_reply_header_parse(const char *buf, size_t len, bool *ok, size_t *body_len,
			   size_t *header_len)
{
	size_t n = len < CTL_HEADER_MAX ? len : CTL_HEADER_MAX;
	const char *nl = memchr(buf, '\n', n);
	size_t p;

	if (nl == NULL)
		return len >= CTL_HEADER_MAX ? -1 : 0;
	size_t end = (size_t)(nl - buf);
	if (end >= 3 && memcmp(buf, "OK ", 3) == 0) {
		*ok = true;
		p = 3;
	} else if (end >= 4 && memcmp(buf, "ERR ", 4) == 0) {
		*ok = false;
		p = 4;
	} else {
		return -1;
	}
	if (p == end)
		return -1;
	size_t v = 0;
	for (; p < end; p++) {
		if (buf[p] < '0' || buf[p] > '9')
			return -1;
		v = v * 10 + (size_t)(buf[p] - '0');
		if (v > CTL_REPLY_MAX)
			return -1;
	}
	*body_len = v;
	*header_len = end + 1;
	return 1;
}

bool ctl_word_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c == 0x7f)
			return false;
	}
	return true;
}
