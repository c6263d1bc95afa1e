/*
 * header_stamp.c - add a configured header, with macros, to every message
 *
 *     header_stamp "trace" {
 *       header = "X-Received-Via"
 *       value = "%{msg:id} from %{conn:ip}"
 *       position = "prepend"                 # or "append" (the default)
 *     }
 *
 * A data_spool subscriber: when a message has been received whole, and
 * before it is spooled, the value is expanded (impetus/macro.h, with the
 * session and the message as context) and the header is added at the end
 * of the header block or put on top. The downstream hop and the spool see
 * it; the client's bytes are never touched otherwise.
 *
 * Ownership: the instance's struct stamp is built by init on the scheduler
 * thread and only read afterwards (by the data_spool subscriber, on the
 * I/O loops), until fini frees it when the generation ends.
 *
 * Failure: a bad header name, position or macro syntax refuses the
 * instance at start-up (or keeps the old generation on reload). At run
 * time the stamper never refuses mail: a value that cannot be expanded or
 * added is a paniclog line naming the message, and the message goes on
 * without the header. Bytes an expansion may bring that a header cannot
 * hold (CR, LF, other control characters) become spaces.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L	/* strdup, strcasecmp under -std=c17 (out-of-tree builds) */
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <impetus/impetus.h>

/* A header field name longer than this is refused (RFC 5322 lines are 998 bytes). */
#define STAMP_NAME_MAX 76

static const struct imp_option options[] = {
	{ "header", IMP_OPT_STRING, NULL, 0, 0, true,
	  "name of the header field to add (e.g. X-Received-Via)" },
	{ "value", IMP_OPT_STRING, NULL, 0, 0, true,
	  "value of the field; %{ns:name} macros are expanded per message" },
	{ "position", IMP_OPT_STRING, "append", 0, 0, false,
	  "append (end of the header block) or prepend (top, like a trace header)" },
};

struct stamp {
	struct imp_instance *inst;
	const char *header;	/* the instance's option strings: live as long as it */
	const char *value;
	bool prepend;
	bool constant;		/* value has no macro: add it as written */
};

/* name_ok - whether name is a header field name: 1..STAMP_NAME_MAX bytes of ftext (33..126 but ':'). */
static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > STAMP_NAME_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 33 || *p > 126 || *p == ':')
			return false;
	return true;
}

/* clean_value - turn the bytes a header value cannot carry into spaces, in place. */
static void clean_value(char *v)
{
	for (unsigned char *p = (unsigned char *)v; *p; p++)
		if ((*p < 32 && *p != '\t') || *p == 127)
			*p = ' ';
}

/* stamp_data_spool - the data_spool subscriber: expand the value and add the field. */
static enum imp_verdict stamp_data_spool(void *closure, struct imp_session *s,
					 struct imp_reply *reply)
{
	struct stamp *st = closure;
	struct imp_message *m = imp_session_message(s);
	char id[IMP_ID_TEXT_MAX];
	char *value = NULL;
	int unknown = 0;

	(void)reply;
	if (m == NULL)
		return IMP_CONTINUE;	/* no message in this phase: nothing to stamp */
	imp_message_id_text(m, id);
	if (st->constant) {
		value = strdup(st->value);
		if (value == NULL)
			goto fail_nomem;
	} else {
		struct imp_macro_ctx ctx = { .session = s, .message = m };

		unknown = imp_macro_expand(st->value, &ctx, &value);
		if (unknown < 0) {
			imp_log_panic(st->inst, "%s: cannot expand value=\"%s\": %s; header %s not added",
				      id, st->value, strerror(-unknown), st->header);
			return IMP_CONTINUE;
		}
	}
	clean_value(value);
	int rc = st->prepend ? imp_header_prepend(m, st->header, value)
			     : imp_header_add(m, st->header, value);
	if (rc < 0)
		imp_log_panic(st->inst, "%s: cannot add header %s: %s", id, st->header,
			      strerror(-rc));
	else
		imp_log_debug(st->inst, 1, "%s: %s %s: %s%s", id,
			      st->prepend ? "prepended" : "appended", st->header, value,
			      unknown > 0 ? " (unknown macros expanded to \"\")" : "");
	free(value);
	return IMP_CONTINUE;

fail_nomem:
	imp_log_panic(st->inst, "%s: out of memory; header %s not added", id, st->header);
	return IMP_CONTINUE;
}

/* stamp_init - check the options, register the data_spool subscriber. */
static int stamp_init(struct imp_instance *inst, struct imp_error *err)
{
	const char *header = imp_option_string(inst, "header");
	const char *value = imp_option_string(inst, "value");
	const char *position = imp_option_string(inst, "position");
	bool prepend;

	if (!name_ok(header)) {
		imp_error_set(err, "header \"%s\" is not a header field name (1..%d printable "
			      "characters, no space or colon)", header, STAMP_NAME_MAX);
		return -1;
	}
	if (strcasecmp(position, "append") == 0) {
		prepend = false;
	} else if (strcasecmp(position, "prepend") == 0) {
		prepend = true;
	} else {
		imp_error_set(err, "position \"%s\": expected append or prepend", position);
		return -1;
	}
	/* A syntax error in the value is the operator's: say so now, not per message. */
	int needs = imp_macro_needs(value);
	if (needs < 0) {
		imp_error_set(err, "value \"%s\": bad macro syntax (a \"%%{\" without its \"}\", "
			      "or an empty or too long name)", value);
		return -1;
	}

	struct stamp *st = calloc(1, sizeof(*st));
	if (st == NULL) {
		imp_error_set(err, "out of memory");
		return -1;
	}
	st->inst = inst;
	st->header = header;
	st->value = value;
	st->prepend = prepend;
	st->constant = strchr(value, '%') == NULL;
	int rc = imp_hook_validate(inst, IMP_PHASE_DATA_SPOOL, stamp_data_spool, st,
				   IMP_ORDER_DEFAULT);
	if (rc < 0) {
		free(st);
		imp_error_set(err, "cannot subscribe to data_spool: %s", strerror(-rc));
		return -1;
	}
	imp_instance_set_data(inst, st);
	return 0;
}

/* stamp_fini - free the instance's settings. */
static void stamp_fini(struct imp_instance *inst)
{
	free(imp_instance_data(inst));
}

IMP_MODULE_DEFINE(.name = "header_stamp", .version = "1.0",
		  .description = "add a configured header, with macros, to every message",
		  .options = options, .noptions = sizeof(options) / sizeof(options[0]),
		  .init = stamp_init, .fini = stamp_fini);
