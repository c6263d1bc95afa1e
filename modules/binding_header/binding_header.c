/*
 * binding_header.c - choose a message's binding from one of its headers
 *
 *     binding_header {
 *       header = "X-Binding"     # the default
 *       strip = true             # the default: the header is not delivered
 *     }
 *
 * The common Momentum deployment in which the injecting application says
 * which binding (source IP, EHLO name, limits) a message leaves from. A
 * set_binding subscriber: after the data_spool phases, before the message
 * is spooled, the first field named `header` (top down) is read, its
 * value trimmed of white space, and the session told to send the message
 * from the Binding of that name (names match without regard to case, as
 * in the configuration). With `strip`, every field of that name is then
 * removed, whatever its value, so the next hop never sees it.
 *
 * A binding chosen this way ends the set_binding phase (IMP_ACCEPT): later
 * subscribers, the built-in Assign_Binding included, do not run for that
 * message. A name the configuration has no Binding for is logged to the
 * paniclog with the message id and ignored, like a message without the
 * header: the phase goes on and the message gets the binding later
 * subscribers (Assign_Binding of its domain) give it, or the default.
 *
 * Ownership: a singleton; its struct chooser is built by init on the
 * scheduler thread and only read by the subscriber (on the I/O loops)
 * until fini frees it. Failure: init refuses a header option that is not
 * a field name; at run time the module never refuses mail.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/impetus.h>

/* A binding name longer than this is not looked up (it cannot be one). */
#define CHOOSER_NAME_MAX 255

static const struct imp_option options[] = {
	{ "header", IMP_OPT_STRING, "X-Binding", 0, 0, false,
	  "header field whose value names the binding" },
	{ "strip", IMP_OPT_BOOL, "true", 0, 0, false,
	  "remove the header before the message is spooled" },
};

struct chooser {
	struct imp_instance *inst;
	const char *header;	/* the instance's option string */
	bool strip;
};

/* name_ok - whether name is a header field name (printable, no space or colon). */
static bool name_ok(const char *name)
{
	if (*name == '\0' || strlen(name) > 76)
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 33 || *p > 126 || *p == ':')
			return false;
	return true;
}

/*
 * trimmed - the value without leading and trailing white space (folding
 * included) in buf, or NULL when that is empty or longer than a name.
 */
static const char *trimmed(const char *v, char buf[CHOOSER_NAME_MAX + 1])
{
	while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
		v++;
	size_t n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' ||
			 v[n - 1] == '\n'))
		n--;
	if (n == 0 || n > CHOOSER_NAME_MAX)
		return NULL;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return buf;
}

/* chooser_set_binding - the set_binding subscriber: header value -> binding, then strip. */
static enum imp_verdict chooser_set_binding(void *closure, struct imp_session *s,
					    struct imp_reply *reply)
{
	struct chooser *c = closure;
	struct imp_message *m = imp_session_message(s);
	char id[IMP_ID_TEXT_MAX];
	char name[CHOOSER_NAME_MAX + 1];
	enum imp_verdict verdict = IMP_CONTINUE;

	(void)reply;
	if (m == NULL)
		return IMP_CONTINUE;
	const char *v = imp_header_get(m, c->header, 0);
	if (v == NULL)
		return IMP_CONTINUE;
	imp_message_id_text(m, id);
	const char *b = trimmed(v, name);
	if (b == NULL) {
		imp_log_panic(c->inst, "%s: header %s does not name a binding (empty or over %d "
			      "bytes); ignored", id, c->header, CHOOSER_NAME_MAX);
	} else {
		int rc = imp_session_set_binding(s, b);
		if (rc == -ENOENT)
			imp_log_panic(c->inst, "%s: %s: %s names no configured Binding; ignored", id,
				      c->header, b);
		else if (rc < 0)
			imp_log_panic(c->inst, "%s: cannot set binding %s: %s", id, b,
				      strerror(-rc));
		else {
			imp_log_debug(c->inst, 1, "%s: binding %s from %s", id, b, c->header);
			verdict = IMP_ACCEPT;	/* decided: the built-in Assign_Binding must not undo it */
		}
	}
	if (c->strip) {
		/* v points into the message: it dies with the first delete. */
		size_t n = 0;
		while (imp_header_delete(m, c->header, 0) == 0)
			n++;
		imp_log_debug(c->inst, 2, "%s: removed %zu %s field(s)", id, n, c->header);
	}
	return verdict;
}

/* chooser_init - read the options, subscribe to set_binding. */
static int chooser_init(struct imp_instance *inst, struct imp_error *err)
{
	const char *header = imp_option_string(inst, "header");

	if (!name_ok(header)) {
		imp_error_set(err, "header \"%s\" is not a header field name (1..76 printable "
			      "characters, no space or colon)", header);
		return -1;
	}
	struct chooser *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		imp_error_set(err, "out of memory");
		return -1;
	}
	c->inst = inst;
	c->header = header;
	c->strip = imp_option_bool(inst, "strip");
	/*
	 * Before the built-in binding assignment (Assign_Binding, at
	 * IMP_ORDER_BUILTIN); a chosen binding answers ACCEPT, which ends the
	 * phase, so the built-in applies only to messages the header did not
	 * place.
	 */
	int rc = imp_hook_validate(inst, IMP_PHASE_SET_BINDING, chooser_set_binding, c,
				   IMP_ORDER_DEFAULT);
	if (rc < 0) {
		free(c);
		imp_error_set(err, "cannot subscribe to set_binding: %s", strerror(-rc));
		return -1;
	}
	imp_instance_set_data(inst, c);
	return 0;
}

/* chooser_fini - free the instance's settings. */
static void chooser_fini(struct imp_instance *inst)
{
	free(imp_instance_data(inst));
}

IMP_MODULE_DEFINE(.name = "binding_header", .version = "1.0",
		  .description = "choose the binding from a message header (X-Binding)",
		  .flags = IMP_MODULE_SINGLETON, .options = options,
		  .noptions = sizeof(options) / sizeof(options[0]), .init = chooser_init,
		  .fini = chooser_fini);
