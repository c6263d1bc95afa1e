/*
 * test_delivery_hooks.c - a module for tests/integration/test_delivery_hooks.py
 *
 * Subscribes to every delivery-side hook, each for one test domain, so
 * the test can see from outside that the daemon runs them:
 *
 *   connection_goal  the goal of goal_domain's queues is 1
 *   client_params    every RCPT TO to param_domain gets X-HOOK=<rcpt's local part
 *                    length>; MAIL FROM gets X-PEER=yes when the server offers
 *                    X-SINK-EXT (imp_params_peer_has), and a bad parameter
 *                    ("X-BAD=a b") is refused by impetusd (journal: "params-refused")
 *   classify         a reply containing "module-magic" is class 177, registered
 *                    as "Module Magic"
 *   log (RDTPBXA)    each event as one journal line:
 *                    "ev|type|message_id|conn_id|recipient|domain|code|class|attempts|line"
 *
 * The journal is the file named by `journal`, appended to and flushed per
 * line (the test reads it while the daemon runs).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <impetus/impetus.h>

static const struct imp_option options[] = {
	{ "journal", IMP_OPT_STRING, NULL, 0, 0, true, "file the events are appended to" },
	{ "goal_domain", IMP_OPT_STRING, "goal.test", 0, 0, false, "domain whose goal is 1" },
	{ "param_domain", IMP_OPT_STRING, "param.test", 0, 0, false, "domain whose RCPTs get X-HOOK" },
};

struct state {
	const char *journal;
	const char *goal_domain;
	const char *param_domain;
};

static struct state st;

static void journal(const char *fmt, const char *a, const char *b)
{
	FILE *f = fopen(st.journal, "a");

	if (f == NULL)
		return;
	fprintf(f, fmt, a, b);
	fclose(f);
}

static uint32_t goal(void *closure, const struct imp_goal_input *in, uint32_t g)
{
	if (strcmp(in->domain, st.goal_domain) == 0)
		return 1;
	return g;
}

static void params(void *closure, const struct imp_message *msg, size_t rcpt_index,
		   struct imp_params *p)
{
	char v[32];

	if (rcpt_index == SIZE_MAX) {
		if (imp_params_peer_has(p, "X-SINK-EXT"))
			imp_params_set(p, "X-PEER", "yes");
		if (imp_params_set(p, "X-BAD", "a b") == -EINVAL)
			journal("params-refused%s%s\n", "", "");
		return;
	}
	const char *rcpt = imp_message_rcpt(msg, rcpt_index);
	const char *at = rcpt ? strrchr(rcpt, '@') : NULL;
	if (at == NULL || strcmp(at + 1, st.param_domain) != 0)
		return;
	snprintf(v, sizeof(v), "%d", (int)(at - rcpt));
	imp_params_set(p, "X-HOOK", v);
}

static int classify(void *closure, int code, const char *status, const char *text,
		    const char *domain)
{
	return strstr(text, "module-magic") ? 177 : 0;
}

static void log_event(void *closure, const struct imp_log_event *ev)
{
	FILE *f = fopen(st.journal, "a");

	if (f == NULL)
		return;
	fprintf(f, "ev|%c|%s|%s|%s|%s|%d|%d|%u|%s\n", (char)ev->type, ev->message_id, ev->conn_id,
		ev->recipient ? ev->recipient : "", ev->domain ? ev->domain : "", ev->code,
		ev->bounce_class, ev->attempts, ev->line);
	fclose(f);
}

static int hooks_init(struct imp_instance *inst, struct imp_error *err)
{
	st.journal = imp_option_string(inst, "journal");
	st.goal_domain = imp_option_string(inst, "goal_domain");
	st.param_domain = imp_option_string(inst, "param_domain");
	int rc = imp_bounce_class_register(177, "Module Magic", "classified by test_delivery_hooks");
	if (rc == 0)
		rc = imp_hook_connection_goal(inst, goal, NULL, IMP_ORDER_DEFAULT);
	if (rc == 0)
		rc = imp_hook_client_params(inst, params, NULL, IMP_ORDER_DEFAULT);
	if (rc == 0)
		rc = imp_hook_classify(inst, classify, NULL, IMP_ORDER_DEFAULT);
	if (rc == 0)
		rc = imp_hook_log(inst, "RDTPBXA", log_event, NULL, IMP_ORDER_DEFAULT);
	if (rc != 0)
		imp_error_set(err, "registration failed: %d", rc);
	return rc;
}

IMP_MODULE_DEFINE(.name = "test_delivery_hooks", .version = "1",
		  .description = "delivery hooks test module", .options = options,
		  .noptions = sizeof(options) / sizeof(options[0]), .init = hooks_init);
