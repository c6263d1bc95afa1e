/*
 * test_hooks_delivery.c - the delivery-side hooks of impetus/hooks.h (C unit test)
 *
 * Each test builds a generation the way the daemon does (api_gen_new,
 * the built-ins, the test's own subscribers, freeze, attach to a conf
 * loaded from text) and checks the chain through the component that runs
 * it: the connection goal (queue_goal), classification
 * (bounce_classify_conf, Bounce_Classification), client parameters
 * (smtpc_format_mail / smtpc_format_rcpt with the hook, the esmtp syntax
 * checks), log events (log_event_emit against a real mainlog), and the
 * binding choice in a Binding_Group (queue_accept).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#include "api/api.h"
#include "api/api_module.h"
#include "config/config.h"
#include "core/mem.h"
#include "core/str.h"
#include "log/log.h"
#include "log/log_event.h"
#include "message/envelope.h"
#include "message/message_view.h"
#include "policy/bounce_class.h"
#include "queue/queue.h"
#include "queue/queue_goal.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_client_int.h"

/* A generation with the built-ins, then what setup registers, attached to a conf of text. */
static struct conf *conf_with(const char *text, void (*setup)(struct api_gen *g))
{
	struct str err = STR_INIT;
	struct conf *c = conf_load_string(text, "t.conf", &err);

	if (c == NULL) {
		fprintf(stderr, "config: %s\n", str_cstr(&err));
		exit(1);
	}
	str_free(&err);
	struct api_gen *g = api_gen_new();
	api_builtins_register(g);
	if (setup)
		setup(g);
	api_gen_freeze(g);
	api_gen_attach(g, c);
	return c;
}

/* ---- connection goal ---------------------------------------------------- */

static uint32_t goal_seen[4];
static size_t ngoal_seen;

static uint32_t goal_half(void *closure, const struct imp_goal_input *in, uint32_t goal)
{
	goal_seen[ngoal_seen++ % 4] = goal;
	CHECK_STREQ(in->domain, "example.com");
	return goal / 2;
}

static uint32_t goal_huge(void *closure, const struct imp_goal_input *in, uint32_t goal)
{
	goal_seen[ngoal_seen++ % 4] = goal;
	return *(uint32_t *)closure;
}

static uint32_t huge_answer = 100000;

static void setup_goal(struct api_gen *g)
{
	struct imp_instance *core = api_core_instance(g);

	/* Registered last-first: the order numbers, not the calls, decide. */
	CHECK_INTEQ(imp_hook_connection_goal(core, goal_huge, &huge_answer, IMP_ORDER_LAST), 0);
	CHECK_INTEQ(imp_hook_connection_goal(core, goal_half, NULL, IMP_ORDER_DEFAULT), 0);
}

/* test_goal_chain - built-in first, then the modules in order; the limit always holds. */
static void test_goal_chain(void)
{
	struct conf *c = conf_with("", setup_goal);
	const struct api_hook *h = api_hook_of(c, API_HOOK_CONNECTION_GOAL);
	struct imp_goal_input in = {
		.binding = "", .domain = "example.com", .active = 40, .runs = 40,
		.max_connections = 32, .batch_size = 100,
	};

	CHECK(h != NULL && h->n == 3);
	ngoal_seen = 0;
	uint32_t goal = queue_goal(h, &in);
	CHECK_INTEQ(ngoal_seen, 2);
	CHECK_INTEQ(goal_seen[0], 32);		/* the built-in's answer */
	CHECK_INTEQ(goal_seen[1], 16);		/* then half of it */
	CHECK_INTEQ(goal, 32);			/* 100000, capped */
	huge_answer = 1;
	CHECK_INTEQ(queue_goal(h, &in), 1);
	in.max_connections = 0;
	huge_answer = 5000;
	CHECK_INTEQ(queue_goal(h, &in), 5000);	/* no limit configured */
	/* Without a generation: the built-in alone. */
	in.max_connections = 32;
	CHECK_INTEQ(queue_goal(NULL, &in), 32);
	CHECK_INTEQ(api_hook_of(NULL, API_HOOK_CONNECTION_GOAL) == NULL, 1);
	conf_unref(c);
}

/* ---- classification ----------------------------------------------------- */

static int classify_calls;

static int classify_magic(void *closure, int code, const char *status, const char *text,
			  const char *domain)
{
	classify_calls++;
	CHECK(status != NULL && text != NULL && domain != NULL);
	if (strstr(text, "magic") && strcmp(domain, "example.com") == 0)
		return 177;
	return 0;
}

static int classify_after(void *closure, int code, const char *status, const char *text,
			  const char *domain)
{
	return 99;	/* after the built-in: reached only if the rules said nothing */
}

static void setup_classify(struct api_gen *g)
{
	struct imp_instance *core = api_core_instance(g);

	CHECK_INTEQ(imp_hook_classify(core, classify_after, NULL, IMP_ORDER_LAST), 0);
	CHECK_INTEQ(imp_hook_classify(core, classify_magic, NULL, IMP_ORDER_DEFAULT), 0);
}

static void test_classify_chain(void)
{
	struct conf *c = conf_with("", setup_classify);
	struct conf *off = conf_with("Bounce_Classification = false", setup_classify);
	struct conf *bare = conf_load_string("", "t.conf", NULL);

	CHECK_INTEQ(imp_bounce_class_register(177, "Magic Block", "a module's class"), 0);
	CHECK_INTEQ(imp_bounce_class_register(177, "Magic Block", "a module's class"), 0);
	CHECK_INTEQ(imp_bounce_class_register(177, "Other", "taken"), -EEXIST);
	CHECK_INTEQ(imp_bounce_class_register(10, "Mine", "built-in code"), -EEXIST);
	CHECK_STREQ(imp_bounce_class_name(177), "Magic Block");
	CHECK_STREQ(imp_bounce_class_name(10), "Invalid Recipient");

	classify_calls = 0;
	CHECK_INTEQ(bounce_classify_conf(c, 550, "5.7.1", "550 5.7.1 magic filter", "example.com"), 177);
	/* Not for this module: the built-in rules decide, the later subscriber never runs. */
	CHECK_INTEQ(bounce_classify_conf(c, 550, "5.1.1", "550 5.1.1 user unknown", "example.com"),
		    BOUNCE_INVALID_RECIPIENT);
	CHECK_INTEQ(bounce_classify_conf(c, 550, "5.7.1", "550 magic", "example.net"),
		    bounce_classify(550, "5.7.1", "550 magic"));
	CHECK_INTEQ(classify_calls, 3);
	/* NULL strings reach subscribers as "". */
	CHECK_INTEQ(bounce_classify_conf(c, 0, NULL, NULL, NULL), BOUNCE_UNDETERMINED);
	/* Off: everything is Undetermined, and no subscriber runs. */
	classify_calls = 0;
	CHECK_INTEQ(bounce_classify_conf(off, 550, "5.1.1", "550 5.1.1 magic", "example.com"),
		    BOUNCE_UNDETERMINED);
	CHECK_INTEQ(classify_calls, 0);
	/* No generation: the rules alone. */
	CHECK_INTEQ(bounce_classify_conf(bare, 550, "5.1.1", "magic", "example.com"),
		    BOUNCE_INVALID_RECIPIENT);
	CHECK_INTEQ(bounce_classify_conf(NULL, 452, "4.2.2", "mailbox full", ""),
		    BOUNCE_MAILBOX_FULL);
	conf_unref(c);
	conf_unref(off);
	conf_unref(bare);
}

/* ---- client parameters -------------------------------------------------- */

static int params_refused;
static size_t params_seen_index[8];
static size_t nparams_seen;

static void params_sub(void *closure, const struct imp_message *msg, size_t rcpt_index,
		       struct imp_params *p)
{
	static const char *const bad_keys[] = {
		"", "-X", "X_Y", "X Y", "X=Y", "\x01", "K\xc3\xa9",
		"A123456789012345678901234567890123456789012345678901234567890123456789",
	};
	static const char *const bad_values[] = { "", "a b", "a=b", "a\r\nRCPT TO:<x>", "\x7f", "caf\xc3\xa9" };

	params_seen_index[nparams_seen++ % 8] = rcpt_index;
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
		if (imp_params_set(p, bad_keys[i], "v") == -EINVAL)
			params_refused++;
	for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++)
		if (imp_params_set(p, "X-OK", bad_values[i]) == -EINVAL)
			params_refused++;
	if (imp_params_set(p, NULL, "v") == -EINVAL)
		params_refused++;
	CHECK_STREQ(imp_message_sender(msg), "a@b.example");
	if (rcpt_index == SIZE_MAX) {
		CHECK_STREQ(imp_params_get(p, "size"), "1234");
		CHECK_STREQ(imp_params_get(p, "SMTPUTF8"), "");
		CHECK(imp_params_get(p, "ENVID") == NULL);
		CHECK_INTEQ(imp_params_remove(p, "Size"), 0);
		CHECK_INTEQ(imp_params_remove(p, "SIZE"), -ENOENT);
		CHECK(imp_params_peer_has(p, "x-vendor"));
		CHECK(imp_params_peer_has(p, "SIZE"));
		CHECK(!imp_params_peer_has(p, "X-VEN"));
		CHECK(!imp_params_peer_has(p, "CHUNKING"));
		CHECK_INTEQ(imp_params_set(p, "X-VENDOR", NULL), 0);
	} else {
		CHECK_STREQ(imp_message_rcpt(msg, rcpt_index),
			    rcpt_index == 0 ? "x@y.example" : "z@y.example");
		CHECK_INTEQ(imp_params_set(p, "NOTIFY", "NEVER"), 0);	/* replaces */
		CHECK_INTEQ(imp_params_set(p, "X-TAG", "t+2B1"), 0);
	}
}

static void setup_params(struct api_gen *g)
{
	CHECK_INTEQ(imp_hook_client_params(api_core_instance(g), params_sub, NULL,
					   IMP_ORDER_DEFAULT), 0);
}

static void test_params(void)
{
	struct conf *c = conf_with("", setup_params);
	struct smtp_caps caps;
	const char *ehlo[] = { "mx.example", "PIPELINING", "size 10000", "SMTPUTF8", "DSN",
			       "x-vendor ab", "8BITMIME" };
	struct smtp_batch b;
	struct smtp_rcpt_result r[2];
	struct str out = STR_INIT;
	struct envelope *env = envelope_new();

	smtp_caps_parse(&caps, ehlo, sizeof(ehlo) / sizeof(ehlo[0]));
	CHECK_STREQ(caps.keywords, "PIPELINING SIZE SMTPUTF8 DSN X-VENDOR 8BITMIME ");
	env->sender = xstrdup("a@b.example");
	env->nrcpt = 2;
	env->rcpts = xcalloc(2, sizeof(*env->rcpts));
	env->rcpts[0].addr = xstrdup("x@y.example");
	env->rcpts[1].addr = xstrdup("z@y.example");
	memset(&b, 0, sizeof(b));
	memset(r, 0, sizeof(r));
	b.sender = "a@b.example";
	b.loc.length = 1234;
	b.smtputf8 = true;
	b.nrcpt = 2;
	b.rcpts = r;
	r[0].addr = "x@y.example";
	r[0].notify = ENVELOPE_NOTIFY_FAILURE;
	r[1].addr = "z@y.example";
	b.params_hook = api_hook_of(c, API_HOOK_CLIENT_PARAMS);
	b.view = message_view_new(env, true);
	CHECK(b.params_hook != NULL);

	params_refused = 0;
	nparams_seen = 0;
	smtpc_format_mail(&out, &b, &caps);
	CHECK_STREQ(str_cstr(&out), "MAIL FROM:<a@b.example> SMTPUTF8 X-VENDOR\r\n");
	CHECK_INTEQ(params_refused, 15);
	str_clear(&out);
	smtpc_format_rcpt(&out, &b, 0, &caps);
	CHECK_STREQ(str_cstr(&out), "RCPT TO:<x@y.example> NOTIFY=NEVER X-TAG=t+2B1\r\n");
	str_clear(&out);
	smtpc_format_rcpt(&out, &b, 1, &caps);
	CHECK_STREQ(str_cstr(&out), "RCPT TO:<z@y.example> NOTIFY=NEVER X-TAG=t+2B1\r\n");
	CHECK_INTEQ(nparams_seen, 3);
	CHECK_INTEQ(params_seen_index[0], SIZE_MAX);
	CHECK_INTEQ(params_seen_index[1], 0);
	CHECK_INTEQ(params_seen_index[2], 1);
	/* No hook: exactly the built-in parameters. */
	b.params_hook = NULL;
	str_clear(&out);
	smtpc_format_mail(&out, &b, &caps);
	CHECK_STREQ(str_cstr(&out), "MAIL FROM:<a@b.example> SIZE=1234 SMTPUTF8\r\n");
	str_free(&out);
	message_view_free(b.view);
	conf_unref(c);
}

/* ---- log events --------------------------------------------------------- */

struct seen_event {
	char type;
	char line[512];
	char recipient[64];
	int code;
};
static struct seen_event events[16];
static size_t nevents;

static void log_sub(void *closure, const struct imp_log_event *ev)
{
	struct seen_event *e = &events[nevents++ % 16];

	e->type = (char)ev->type;
	snprintf(e->line, sizeof(e->line), "%s", ev->line);
	snprintf(e->recipient, sizeof(e->recipient), "%s", ev->recipient ? ev->recipient : "");
	e->code = ev->code;
}

static void setup_log(struct api_gen *g)
{
	struct imp_instance *core = api_core_instance(g);

	CHECK_INTEQ(imp_hook_log(core, "RX", log_sub, NULL, IMP_ORDER_DEFAULT), 0);
	CHECK_INTEQ(imp_hook_log(core, "RQ", log_sub, NULL, IMP_ORDER_DEFAULT), -EINVAL);
	CHECK_INTEQ(imp_hook_log(core, "", log_sub, NULL, IMP_ORDER_DEFAULT), -EINVAL);
}

static void setup_log_a(struct api_gen *g)
{
	CHECK_INTEQ(imp_hook_log(api_core_instance(g), "A", log_sub, NULL, IMP_ORDER_DEFAULT), 0);
}

/* read_file - the whole file (caller frees), "" when absent. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	struct str s = STR_INIT;
	char buf[4096];
	size_t n;

	if (f) {
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			str_append(&s, buf, n);
		fclose(f);
	}
	char *r = xstrdup(str_cstr(&s));
	str_free(&s);
	return r;
}

static void test_log_events(const char *dir)
{
	struct conf *c = conf_with("", setup_log);
	struct conf *with_a = conf_with("", setup_log_a);
	struct conf *bare = conf_load_string("", "t.conf", NULL);
	char path[512];

	nevents = 0;
	struct imp_log_event ev = {
		.type = IMP_LOG_RECEPTION, .message_id = "", .conn_id = "", .sender = "s@x",
		.recipient = "r@y", .line = "LINE-R-1",
	};
	log_event_emit(c, &ev);
	ev.type = IMP_LOG_DELIVERY;
	ev.line = "LINE-D-1";
	log_event_emit(c, &ev);		/* no subscriber for D but the writer */
	ev.line = "LINE-D-2";
	log_event_emit(bare, &ev);	/* no generation: written directly */
	ev.type = IMP_LOG_BOUNCE;
	ev.line = "LINE-B-1";
	log_event_emit(c, &ev);
	log_reject(c, "192.0.2.1", "127.0.0.1:25", "C1", "rcptto", "550 5.7.1 relaying denied");
	log_flush();

	CHECK_INTEQ(nevents, 2);
	CHECK(events[0].type == 'R' && strcmp(events[0].line, "LINE-R-1") == 0);
	CHECK_STREQ(events[0].recipient, "r@y");
	CHECK(events[1].type == 'X' && events[1].code == 550);
	snprintf(path, sizeof(path), "%s/mainlog", dir);
	char *mainlog = read_file(path);
	CHECK_STREQ(mainlog, "LINE-R-1\nLINE-D-1\nLINE-D-2\n");
	snprintf(path, sizeof(path), "%s/bouncelog", dir);
	char *bouncelog = read_file(path);
	CHECK_STREQ(bouncelog, "LINE-B-1\n");
	snprintf(path, sizeof(path), "%s/rejectlog", dir);
	char *rejectlog = read_file(path);
	/* The X event carries the very line the rejectlog got. */
	CHECK(strstr(rejectlog, events[1].line) != NULL);
	CHECK(strstr(events[1].line, "P=\"rcptto\" E=550 5.7.1 relaying denied") != NULL);
	free(mainlog);
	free(bouncelog);
	free(rejectlog);

	CHECK(!log_event_wanted(c, IMP_LOG_ATTEMPT));
	CHECK(log_event_wanted(with_a, IMP_LOG_ATTEMPT));
	CHECK(!log_event_wanted(bare, IMP_LOG_RECEPTION));
	conf_unref(c);
	conf_unref(with_a);
	conf_unref(bare);
}

/* ---- binding choice ----------------------------------------------------- */

static const char *choose_by_sender(void *closure, const struct imp_message *msg,
				    const char *group, const char *const *bindings, size_t n)
{
	CHECK_STREQ(group, "Pool");
	CHECK_INTEQ(n, 3);
	if (strcmp(imp_message_sender(msg), "pick-c@x.example") == 0)
		return "C";		/* any case: the group's own spelling is kept */
	if (strcmp(imp_message_sender(msg), "bogus@x.example") == 0)
		return "not-a-member";	/* passes, like NULL */
	return NULL;
}

static void setup_choose(struct api_gen *g)
{
	CHECK_INTEQ(imp_hook_choose_binding(api_core_instance(g), choose_by_sender, NULL,
					    IMP_ORDER_DEFAULT), 0);
}

static const char *pool_conf =
	"Binding_Group \"Pool\" {\n"
	"  Binding \"a\" { }\n"
	"  Binding \"b\" { }\n"
	"  Binding \"c\" { }\n"
	"}\n"
	"Binding \"solo\" { }\n"
	"Domain \"rr.example\" { Assign_Binding = \"pool\" }\n"
	"Domain \"solo.example\" { Assign_Binding = \"solo\" }\n";

static struct envelope *message(const char *sender, const char *rcpt, const char *group)
{
	static uint64_t next_id = 1;
	struct envelope *e = envelope_new();

	e->id = next_id++;
	e->sender = xstrdup(sender);
	e->client_ip = xstrdup("");
	e->protocol = xstrdup("esmtp");
	e->helo = xstrdup("");
	e->binding = xstrdup("");
	e->binding_group = xstrdup(group);
	e->nrcpt = 1;
	e->rcpts = xcalloc(1, sizeof(*e->rcpts));
	e->rcpts[0].addr = xstrdup(rcpt);
	return e;
}

static void test_choose_binding(void)
{
	struct conf *c = conf_with(pool_conf, setup_choose);
	struct conf *bare = conf_load_string(pool_conf, "t.conf", NULL);
	struct queue *q = queue_new(c);
	struct envelope *m[8];

	/* Assign_Binding names the group: round robin, in configuration order. */
	m[0] = message("s@x.example", "u@rr.example", "");
	m[1] = message("s@x.example", "u@rr.example", "");
	m[2] = message("s@x.example", "u@rr.example", "");
	m[3] = message("s@x.example", "u@rr.example", "");
	/* A module's answer decides; one that is not in the group passes. */
	m[4] = message("pick-c@x.example", "u@rr.example", "");
	m[5] = message("bogus@x.example", "u@rr.example", "");
	/* A group set by policy, not by Assign_Binding; a plain binding is untouched. */
	m[6] = message("s@x.example", "u@other.example", "POOL");
	m[7] = message("s@x.example", "u@solo.example", "");
	for (size_t i = 0; i < 8; i++)
		queue_accept(q, m[i]);
	const char *first = m[0]->binding;
	CHECK(strcmp(first, "a") == 0 || strcmp(first, "b") == 0 || strcmp(first, "c") == 0);
	/* Four in a row cover the group and come back to the first. */
	CHECK(strcmp(m[0]->binding, m[1]->binding) != 0);
	CHECK(strcmp(m[1]->binding, m[2]->binding) != 0);
	CHECK(strcmp(m[0]->binding, m[2]->binding) != 0);
	CHECK_STREQ(m[3]->binding, m[0]->binding);
	for (size_t i = 0; i < 4; i++)
		CHECK_STREQ(m[i]->binding_group, "Pool");
	CHECK_STREQ(m[4]->binding, "c");
	CHECK_STREQ(m[5]->binding, m[1]->binding);	/* round robin went on */
	CHECK_STREQ(m[6]->binding, m[2]->binding);
	CHECK_STREQ(m[6]->binding_group, "Pool");
	CHECK_STREQ(m[7]->binding, "solo");
	CHECK_STREQ(m[7]->binding_group, "");
	CHECK_INTEQ(queue_message_count(q), 8);
	queue_free(q);

	/* Without a generation the round robin decides alone. */
	q = queue_new(bare);
	struct envelope *x = message("pick-c@x.example", "u@rr.example", "");
	queue_accept(q, x);
	CHECK(strcmp(x->binding, "a") == 0 || strcmp(x->binding, "b") == 0 ||
	      strcmp(x->binding, "c") == 0);
	queue_free(q);
	conf_unref(c);
	conf_unref(bare);
}

int main(void)
{
	char dir[] = "/tmp/test_hooks_delivery.XXXXXX";
	struct str err = STR_INIT;

	if (mkdtemp(dir) == NULL || log_open(dir, &err) < 0) {
		perror("log dir");
		return 1;
	}
	test_goal_chain();
	test_classify_chain();
	test_params();
	test_log_events(dir);
	test_choose_binding();
	log_close();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	str_free(&err);
	return check_done();
}
