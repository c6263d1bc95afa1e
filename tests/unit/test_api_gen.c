/*
 * test_api_gen.c - module generations: ordered hook lists, registration rules
 *
 * Subscribers must run in (order, registration) order, registration must
 * be refused once a generation is frozen or for bad arguments, and a
 * generation attached to a configuration must be released (fini of its
 * instances) exactly when the configuration's last reference goes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "check.h"
#include "config/config.h"

static void fn_a(void) { }
static void fn_b(void) { }

static void test_order(void)
{
	struct api_gen *g = api_gen_new();
	struct imp_instance *core = api_core_instance(g);
	int tags[6] = { 0, 1, 2, 3, 4, 5 };

	/* orders 500, 0, 500, 900, 0, 1000 registered in this sequence */
	CHECK_INTEQ(api_hook_add(core, API_HOOK_CLASSIFY, fn_a, &tags[0], 500, 0), 0);
	CHECK_INTEQ(api_hook_add(core, API_HOOK_CLASSIFY, fn_a, &tags[1], 0, 0), 0);
	CHECK_INTEQ(api_hook_add(core, API_HOOK_CLASSIFY, fn_b, &tags[2], 500, 0), 0);
	CHECK_INTEQ(api_hook_add(core, API_HOOK_CLASSIFY, fn_b, &tags[3], 900, 0), 0);
	CHECK_INTEQ(api_hook_add(core, API_HOOK_CLASSIFY, fn_a, &tags[4], 0, 0), 0);
	CHECK_INTEQ(api_hook_add(core, API_HOOK_CLASSIFY, fn_a, &tags[5], 1000, 0), 0);
	const struct api_hook *h = &g->hooks[API_HOOK_CLASSIFY];
	int want[6] = { 1, 4, 0, 2, 3, 5 };
	CHECK_INTEQ((int)h->n, 6);
	for (size_t i = 0; i < h->n; i++)
		CHECK_INTEQ(*(int *)h->v[i].closure, want[i]);
	/* Other hooks are untouched. */
	CHECK_INTEQ((int)g->hooks[API_HOOK_SIGN].n, 0);
	api_gen_freeze(g);
	CHECK_INTEQ(api_hook_add(core, API_HOOK_CLASSIFY, fn_a, NULL, 0, 0), -EINVAL);
	api_gen_release(g);
}

static enum imp_verdict validate_nop(void *c, struct imp_session *s, struct imp_reply *r)
{
	return IMP_CONTINUE;
}

static void log_nop(void *c, const struct imp_log_event *ev) { }

static void test_typed_registration(void)
{
	struct api_gen *g = api_gen_new();
	struct imp_instance *core = api_core_instance(g);

	CHECK_INTEQ(imp_hook_validate(core, IMP_PHASE_RCPTTO, validate_nop, NULL, IMP_ORDER_DEFAULT), 0);
	CHECK_INTEQ((int)g->hooks[API_HOOK_VALIDATE_FIRST + IMP_PHASE_RCPTTO].n, 1);
	CHECK_INTEQ(imp_hook_validate(core, IMP_PHASE__COUNT, validate_nop, NULL, 0), -EINVAL);
	CHECK_INTEQ(imp_hook_validate(core, IMP_PHASE_EHLO, NULL, NULL, 0), -EINVAL);
	CHECK_INTEQ(imp_hook_log(core, "DTP", log_nop, NULL, 0), 0);
	CHECK_INTEQ((int)g->hooks[API_HOOK_LOG].v[0].log_types,
		    (int)(api_log_type_bit('D') | api_log_type_bit('T') | api_log_type_bit('P')));
	CHECK_INTEQ(imp_hook_log(core, "DQ", log_nop, NULL, 0), -EINVAL);
	CHECK_INTEQ(imp_hook_log(core, "", log_nop, NULL, 0), -EINVAL);
	CHECK_INTEQ(imp_hook_log(core, NULL, log_nop, NULL, 0), -EINVAL);
	CHECK_STREQ(imp_phase_name(IMP_PHASE_DATA_SPOOL_EACH_RCPT), "data_spool_each_rcpt");
	CHECK_STREQ(imp_phase_name(IMP_PHASE__COUNT), "?");
	api_gen_release(g);
}

static void test_reply_set(void)
{
	struct imp_reply r;
	char longtext[1000];

	imp_reply_set(&r, 550, "5.7.1", "no %s\r\nhere", "relay");
	CHECK_INTEQ(r.code, 550);
	CHECK_STREQ(r.status, "5.7.1");
	CHECK_STREQ(r.text, "no relay  here");
	memset(longtext, 'x', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	imp_reply_set(&r, 451, NULL, "%s", longtext);
	CHECK_INTEQ((int)strlen(r.text), (int)sizeof(r.text) - 1);
	CHECK_STREQ(r.status, "");
}

static int released;
static void count_fini(struct imp_instance *inst)
{
	released++;
	free(inst);
}

static void test_attach_release(void)
{
	struct str err = STR_INIT;
	struct conf *c = conf_load_string("Hostname = \"x.test\"\n", "t.conf", &err);
	struct api_gen *g = api_gen_new();
	struct imp_instance *fake = calloc(1, sizeof(*fake));

	CHECK(c != NULL);
	CHECK(api_gen_of(c) == NULL);
	fake->gen = g;
	g->inst = realloc(g->inst, 2 * sizeof(*g->inst));
	g->inst[g->ninst++] = fake;
	api_instance_fini_hook = count_fini;
	api_gen_freeze(g);
	api_gen_attach(g, c);
	CHECK(api_gen_of(c) == g);
	conf_ref(c);
	conf_unref(c);
	CHECK_INTEQ(released, 0);
	conf_unref(c);		/* the last reference: no runtime, released inline */
	CHECK_INTEQ(released, 1);
	api_instance_fini_hook = NULL;
	str_free(&err);
}

int main(void)
{
	test_order();
	test_typed_registration();
	test_reply_set();
	test_attach_release();
	return check_done();
}
