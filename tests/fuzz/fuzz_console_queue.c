/*
 * fuzz_console_queue.c - libFuzzer target for the queue console commands' arguments
 *
 * The commands of src/queue/queue_console.c and src/api/api_summary.c
 * parse what an operator types: domains, bindings, message ids,
 * LIMIT,OFFSET, sub-commands. This target runs them, through
 * api_console_run as the control server does, on a queue (not started:
 * nothing is delivered) holding a few messages for a.test, b.test and a
 * delayed one for c.test, with a Binding "b1". Byte 0 picks the command;
 * the rest, split on blanks, is its arguments.
 *
 * Commands that write to the spool (flush, fail, rebind, message
 * retry|fail) are not run: there is no spool here; their arguments go
 * through the same helpers as the ones run (domain_arg, binding_arg,
 * id_arg), and test_console_queue.py runs them against the daemon.
 * `message` is always `message details`.
 *
 * Besides memory safety and UB it checks: an error is one line; a JSON
 * answer is one document (starts with '{', ends with "}\n", brackets
 * balanced outside strings, no raw control byte inside a string); a
 * text answer ends with a newline. The run-time controls (suspend,
 * reroute) are forgotten after each input so state does not pile up.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/api_console.h"
#include "api/api_runtime.h"
#include "config/config.h"
#include "core/mem.h"
#include "core/str.h"
#include "message/envelope.h"
#include "queue/queue.h"
#include "queue/queue_int.h"

#include "fuzz.h"

#define MAX_WORDS 8

static const char *const commands[] = {
	"summary", "mailq", "domain", "binding", "showqueue", "message", "suspend", "resume",
	"reroute",
};

static struct api_gen *gen;
static struct queue *q;

/* add_msg - a recovered message to rcpt, due at next (0: now). */
static void add_msg(uint64_t id, const char *rcpt, int64_t next)
{
	struct envelope *e = envelope_new();

	e->id = id;
	e->received = 1;
	e->sender = xstrdup("s@src.test");
	e->rcpts = xcalloc(1, sizeof(*e->rcpts));
	e->nrcpt = 1;
	e->rcpts[0].addr = xstrdup(rcpt);
	e->rcpts[0].next_attempt = next;
	e->rcpts[0].retries = next ? 1 : 0;
	queue_recovered(q, e);
}

static void setup(void)
{
	struct str err = STR_INIT;
	struct conf *c = conf_load_string("Binding \"b1\" { }\n", "fuzz.conf", &err);

	MUST(c != NULL);
	q = queue_new(c);
	add_msg(1, "x@a.test", 0);
	add_msg(2, "y@a.test", 0);
	add_msg(3, "z@b.test", 0);
	add_msg(4, "w@c.test", INT64_C(4000000000));
	gen = api_gen_new();
	api_builtins_register(gen);
	api_gen_freeze(gen);
	struct api_runtime rt = { 0 };
	rt.queue = q;
	api_runtime_set(&rt);
	str_free(&err);
}

/* json_ok - one JSON document: balanced outside strings, no control byte in a string. */
static bool json_ok(const char *s, size_t n)
{
	int depth = 0;
	bool in_str = false;

	if (n < 3 || s[0] != '{' || s[n - 1] != '\n' || s[n - 2] != '}')
		return false;
	for (size_t i = 0; i < n - 1; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (in_str) {
			if (ch < 0x20)
				return false;
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
			continue;
		}
		if (ch == '"')
			in_str = true;
		else if (ch == '{' || ch == '[')
			depth++;
		else if (ch == '}' || ch == ']')
			depth--;
		if (depth < 0 || (depth == 0 && i != n - 2))
			return false;
	}
	return depth == 0 && !in_str;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *argv[MAX_WORDS + 1];
	int argc = 0;
	struct str out = STR_INIT;

	if (gen == NULL)
		setup();
	if (size < 1)
		return 0;
	bool json = data[0] & 0x80;
	argv[argc++] = commands[(data[0] & 0x7f) % (sizeof(commands) / sizeof(commands[0]))];
	char *line = fuzz_strndup(data + 1, size - 1);
	char *save = NULL;
	/* The protocol never gives a command an empty word or one with a blank or control byte. */
	for (char *w = strtok_r(line, " \t\r\n\v\f", &save); w && argc < MAX_WORDS;
	     w = strtok_r(NULL, " \t\r\n\v\f", &save)) {
		bool ctl = false;
		for (char *p = w; *p; p++)
			ctl |= (unsigned char)*p < 0x20 || *p == 0x7f;
		if (!ctl)
			argv[argc++] = w;
	}
	if (strcmp(argv[0], "message") == 0 && argc >= 2)
		argv[1] = "details";
	argv[argc] = NULL;

	int rc = api_console_run(gen, argc, argv, json, &out);
	if (rc < 0)
		MUST(out.len > 0 && memchr(out.s, '\n', out.len) == NULL);
	else if (json)
		MUST(json_ok(out.s, out.len));
	else
		MUST(out.len > 0 && out.s[out.len - 1] == '\n');
	str_free(&out);
	free(line);
	queue_admin_free(q);	/* suspend and reroute rules: start each input afresh */
	return 0;
}
