/*
 * fuzz_console_ops.c - libFuzzer target for the operations commands' argument
 * handling (src/api/api_console_ops.c), reached the way the daemon reaches them
 *
 * The input is a request line: split by ctl_request_parse as control.c
 * does, then run with api_console_run in a generation holding the
 * built-in and operations commands, with no daemon lent (so nothing is
 * reloaded, stopped or looked up) and no configuration running. Checks,
 * besides memory safety and UB:
 *   - every command answers 0 or -1; a failure's answer is exactly one
 *     non-empty line (the client prints it on stderr as it is);
 *   - a JSON answer that succeeded starts with '{' and ends with "}\n";
 *   - the trace switch described afterwards is either off or names an
 *     address inet_pton accepts.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "api/api.h"
#include "api/api_console.h"
#include "control/control_proto.h"
#include "core/str.h"
#include "smtp/smtp_trace.h"

#include "fuzz.h"

static struct api_gen *gen;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[CTL_REQUEST_MAX + 1];
	struct ctl_request req;
	struct str out = STR_INIT;

	if (gen == NULL) {
		gen = api_gen_new();
		api_console_builtins_register(gen);
		api_console_ops_register(gen);
		api_gen_freeze(gen);
	}
	if (size > CTL_REQUEST_MAX)
		size = CTL_REQUEST_MAX;
	const uint8_t *nl = memchr(data, '\n', size);
	size_t len = nl ? (size_t)(nl - data) : size;
	memcpy(line, data, len);
	line[len] = '\0';
	if (ctl_request_parse(line, len, &req, &out) < 0) {
		str_free(&out);
		return 0;
	}
	/* The one command that would act on a real daemon needs none here; skip writing ones. */
	if (strcmp(req.argv[0], "reopen") == 0 || strcmp(req.argv[0], "shutdown") == 0) {
		str_free(&out);
		return 0;
	}
	int rc = api_console_run(gen, req.argc, req.argv, req.json, &out);
	MUST(rc == 0 || rc == -1);
	if (rc < 0) {
		MUST(out.len > 0);
		MUST(memchr(out.s, '\n', out.len) == NULL);
	} else if (req.json && out.len) {
		MUST(out.s[0] == '{');
		MUST(out.len >= 2 && out.s[out.len - 2] == '}' && out.s[out.len - 1] == '\n');
	}
	unsigned mask;
	struct str ip = STR_INIT;
	smtp_trace_describe(&mask, &ip);
	if (ip.len) {
		unsigned char buf[16];
		MUST(inet_pton(AF_INET, ip.s, buf) == 1 || inet_pton(AF_INET6, ip.s, buf) == 1);
	}
	str_free(&ip);
	str_free(&out);
	return 0;
}
