/*
 * test_validate.c - a module for tests/integration/test_validate.py
 *
 * Subscribes to every validation phase at IMP_ORDER_DEFAULT (before the
 * built-ins) and to signing. What it does is read from the session, so
 * one daemon serves every case: a phase acts when its subject holds the
 * word "<phase>-<action>" ("rcptto-reject@x.test"):
 *
 *   phase       subject              phase         subject
 *   ehlo        the EHLO name        data          the sender
 *   mailfrom    the sender           dataspool     the sender
 *   rcptto      the recipient        eachrcpt      the recipient
 *   setbinding  the sender
 *
 * and the connect phase does the `connect` option's action. Actions:
 * accept, reject (550 5.7.9 "test <phase> reject"), tempfail (452 4.7.9),
 * disconnect, badcode (REJECT with a 4xx code: the daemon must use its
 * default), continue, and suspend / suspendreject / suspendlong: suspend,
 * then resume from another thread after 300 ms (CONTINUE, REJECT) or 3 s
 * (CONTINUE).
 *
 * Besides: in rcptto it sets the message vctx "test.rcpt.<n>" to the
 * recipient; in data_spool it adds the header X-Test-Vctx with the value
 * of "test.rcpt.0" (seen through imp_message_vctx_get on the view) and,
 * per word in the sender, "hdr-add" appends X-Test-Added, "hdr-prepend"
 * puts X-Test-Top at the top, "hdr-delete" removes the first Subject.
 * With `sign = true` a sign subscriber prepends X-Test-Signed (the
 * message id). A resume thread appends "resumed <phase>" to the file
 * `journal` names after imp_session_resume returned, so a test knows
 * when a late resume has happened.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <impetus/impetus.h>

static const struct imp_option options[] = {
	{ "connect", IMP_OPT_STRING, "continue", 0, 0, false, "the connect phase's action" },
	{ "journal", IMP_OPT_STRING, "", 0, 0, false, "file for resume lines" },
	{ "sign", IMP_OPT_BOOL, "false", 0, 0, false, "subscribe to signing" },
};

struct phase_sub {
	enum imp_phase phase;
	const char *word;		/* "rcptto" in "rcptto-reject" */
	struct imp_instance *inst;
};

static struct phase_sub subs[IMP_PHASE__COUNT] = {
	{ IMP_PHASE_CONNECT, "connect", NULL },
	{ IMP_PHASE_EHLO, "ehlo", NULL },
	{ IMP_PHASE_MAILFROM, "mailfrom", NULL },
	{ IMP_PHASE_RCPTTO, "rcptto", NULL },
	{ IMP_PHASE_DATA, "data", NULL },
	{ IMP_PHASE_DATA_SPOOL, "dataspool", NULL },
	{ IMP_PHASE_DATA_SPOOL_EACH_RCPT, "eachrcpt", NULL },
	{ IMP_PHASE_SET_BINDING, "setbinding", NULL },
};

/* subject - the string a phase's action is read from. */
static const char *subject(struct phase_sub *ps, struct imp_session *s)
{
	const char *v;

	switch (ps->phase) {
	case IMP_PHASE_CONNECT:
		return imp_option_string(ps->inst, "connect");
	case IMP_PHASE_EHLO:
		return imp_session_helo(s);
	case IMP_PHASE_RCPTTO:
	case IMP_PHASE_DATA_SPOOL_EACH_RCPT:
		v = imp_session_rcpt(s);
		return v ? v : "";
	default:
		v = imp_session_mailfrom(s);
		return v ? v : "";
	}
}

/* action - the action named after "<word>-" in subj ("" when none). */
static void action(const char *subj, const char *word, char *out, size_t size)
{
	char key[64];
	const char *p;

	out[0] = '\0';
	snprintf(key, sizeof(key), "%s-", word);
	/* connect's subject is the action itself. */
	if (strcmp(word, "connect") == 0) {
		snprintf(out, size, "%s", subj);
		return;
	}
	for (p = subj; (p = strstr(p, key)) != NULL; p++) {
		/* A whole word: "data-" must not match inside "...dataspool-". */
		if (p != subj && p[-1] != '.' && p[-1] != '+' && p[-1] != '_' && p[-1] != '<')
			continue;
		p += strlen(key);
		size_t n = strcspn(p, "@._+>");
		if (n >= size)
			n = size - 1;
		memcpy(out, p, n);
		out[n] = '\0';
		return;
	}
}

struct resumer {
	struct imp_resume *token;
	enum imp_verdict verdict;
	unsigned ms;
	const char *phase;
	struct imp_instance *inst;
};

/* resume_later - another thread: wait, then answer the suspended phase. */
static void *resume_later(void *arg)
{
	struct resumer *r = arg;
	struct timespec ts = { r->ms / 1000, (long)(r->ms % 1000) * 1000000L };
	struct imp_reply reply;

	nanosleep(&ts, NULL);
	imp_reply_set(&reply, 550, "5.7.9", "test %s suspendreject", r->phase);
	imp_session_resume(r->token, r->verdict, r->verdict == IMP_REJECT ? &reply : NULL);
	const char *j = imp_option_string(r->inst, "journal");
	if (j && *j) {
		FILE *f = fopen(j, "a");
		if (f) {
			fprintf(f, "resumed %s\n", r->phase);
			fclose(f);
		}
	}
	free(r);
	return NULL;
}

static enum imp_verdict suspend(struct phase_sub *ps, struct imp_session *s,
				enum imp_verdict verdict, unsigned ms)
{
	struct resumer *r = calloc(1, sizeof(*r));
	pthread_t t;

	r->token = imp_session_suspend(s);
	r->verdict = verdict;
	r->ms = ms;
	r->phase = ps->word;
	r->inst = ps->inst;
	if (r->token == NULL || pthread_create(&t, NULL, resume_later, r) != 0) {
		free(r);
		return IMP_TEMPFAIL;
	}
	pthread_detach(t);
	return IMP_SUSPEND;
}

/* side_effects - what the module does besides answering (vctx, headers). */
static void side_effects(struct phase_sub *ps, struct imp_session *s)
{
	const char *from = imp_session_mailfrom(s);

	if (ps->phase == IMP_PHASE_RCPTTO) {
		char key[64];

		snprintf(key, sizeof(key), "test.rcpt.%zu", imp_session_rcpt_count(s));
		imp_vctx_set(s, IMP_VCTX_MESS, key, imp_session_rcpt(s));
		/* The connection scope outlives the transaction. */
		imp_vctx_set(s, IMP_VCTX_CONN, "test.rcpts_seen", "yes");
	}
	if (ps->phase == IMP_PHASE_DATA_SPOOL) {
		struct imp_message *m = imp_session_message(s);
		const char *v;

		if (m == NULL)
			return;
		v = imp_message_vctx_get(m, "test.rcpt.0");
		imp_header_add(m, "X-Test-Vctx", v ? v : "(none)");
		imp_header_add(m, "X-Test-Conn", imp_vctx_get(s, IMP_VCTX_CONN, "test.rcpts_seen") ?
						       "seen" : "unseen");
		if (from && strstr(from, "hdr-add"))
			imp_header_add(m, "X-Test-Added", "added by test_validate");
		if (from && strstr(from, "hdr-prepend"))
			imp_header_prepend(m, "X-Test-Top", "prepended by test_validate");
		if (from && strstr(from, "hdr-delete"))
			imp_header_delete(m, "Subject", 0);
	}
}

static enum imp_verdict validate(void *closure, struct imp_session *s, struct imp_reply *reply)
{
	struct phase_sub *ps = closure;
	char act[32];

	side_effects(ps, s);
	action(subject(ps, s), ps->word, act, sizeof(act));
	if (strcmp(act, "accept") == 0)
		return IMP_ACCEPT;
	if (strcmp(act, "reject") == 0) {
		imp_reply_set(reply, 550, "5.7.9", "test %s reject", ps->word);
		return IMP_REJECT;
	}
	if (strcmp(act, "tempfail") == 0) {
		imp_reply_set(reply, 452, "4.7.9", "test %s tempfail", ps->word);
		return IMP_TEMPFAIL;
	}
	if (strcmp(act, "disconnect") == 0)
		return IMP_DISCONNECT;
	if (strcmp(act, "badcode") == 0) {
		imp_reply_set(reply, 450, NULL, "wrong class");
		return IMP_REJECT;
	}
	if (strcmp(act, "suspend") == 0)
		return suspend(ps, s, IMP_CONTINUE, 300);
	if (strcmp(act, "suspendreject") == 0)
		return suspend(ps, s, IMP_REJECT, 300);
	if (strcmp(act, "suspendlong") == 0)
		return suspend(ps, s, IMP_CONTINUE, 3000);
	return IMP_CONTINUE;
}

static void sign(void *closure, struct imp_message *m)
{
	char id[IMP_ID_TEXT_MAX];

	imp_message_id_text(m, id);
	imp_header_prepend(m, "X-Test-Signed", id);
}

static int validate_init(struct imp_instance *inst, struct imp_error *err)
{
	for (size_t i = 0; i < IMP_PHASE__COUNT; i++) {
		subs[i].inst = inst;
		if (imp_hook_validate(inst, subs[i].phase, validate, &subs[i], IMP_ORDER_DEFAULT) < 0) {
			imp_error_set(err, "cannot subscribe to %s", imp_phase_name(subs[i].phase));
			return -1;
		}
	}
	if (imp_option_bool(inst, "sign") && imp_hook_sign(inst, sign, NULL, IMP_ORDER_DEFAULT) < 0) {
		imp_error_set(err, "cannot subscribe to signing");
		return -1;
	}
	return 0;
}

IMP_MODULE_DEFINE(.name = "test_validate", .version = "1",
		  .description = "validation phases test module", .flags = IMP_MODULE_SINGLETON,
		  .options = options, .noptions = sizeof(options) / sizeof(options[0]),
		  .init = validate_init);
