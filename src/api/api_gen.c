/*
 * api_gen.c - module generations and hook registration (see api.h)
 *
 * Registration happens only while a generation is building, on the
 * scheduler thread; each list is kept sorted by (order, registration
 * sequence) with an insertion, so a hook call walks an array in order
 * and pays nothing for sorting. Lists are never changed once the
 * generation is frozen, which is what lets I/O loops walk them without
 * a lock.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/api_runtime.h"
#include "config/config.h"
#include "core/loop.h"
#include "core/mem.h"
#include "log/log.h"
#include "msgs/msgs.h"

/* The pseudo-instance of the built-in subscribers: never initialised by a module. */
struct core_instance {
	struct imp_instance inst;
};

struct api_gen *api_gen_new(void)
{
	struct api_gen *g = xcalloc(1, sizeof(*g));
	struct core_instance *core = xcalloc(1, sizeof(*core));

	atomic_init(&g->refs, 1);
	g->building = true;
	core->inst.gen = g;
	core->inst.module_name = "core";
	core->inst.name = "";
	core->inst.enabled = true;
	/* Slot 0 is always the core instance; modules follow in configuration order. */
	g->inst = xcalloc(4, sizeof(*g->inst));
	g->inst_cap = 4;
	g->inst[g->ninst++] = &core->inst;
	return g;
}

static _Thread_local struct api_gen *current_gen;

struct api_gen *api_gen_enter(struct api_gen *g)
{
	struct api_gen *prev = current_gen;

	current_gen = g;
	return prev;
}

void api_gen_leave(struct api_gen *prev)
{
	current_gen = prev;
}

struct api_gen *api_gen_current(void)
{
	return current_gen;
}

struct imp_instance *api_core_instance(struct api_gen *g)
{
	return g->inst[0];
}

void api_gen_freeze(struct api_gen *g)
{
	g->building = false;
}

/* on_conf_released - the conf's last reference went: release g on the scheduler thread. */
static void on_conf_released(void *arg)
{
	struct api_gen *g = arg;
	struct loop *sched = api_runtime()->scheduler;

	if (sched == NULL || loop_current() == sched)
		api_gen_release(g);
	else if (api_runtime_stopped())
		loop_call_as(sched, api_gen_on_release, g);
	else
		msgs_post(sched, MSGS_API_GEN_RELEASE, g);
}

void api_gen_on_release(void *arg)
{
	api_gen_release(arg);
}

void api_gen_attach(struct api_gen *g, struct conf *conf)
{
	g->conf = conf;
	conf_attach(conf, g, on_conf_released);
}

struct api_gen *api_gen_of(const struct conf *conf)
{
	return conf ? conf_attached(conf) : NULL;
}

void (*api_instance_fini_hook)(struct imp_instance *inst);

void api_gen_release(struct api_gen *g)
{
	if (g == NULL)
		return;
	/* Last declared first: an instance may depend on one declared before it. */
	for (size_t i = g->ninst; i-- > 1;)
		if (api_instance_fini_hook)
			api_instance_fini_hook(g->inst[i]);
	free(g->inst[0]);
	free(g->inst);
	for (size_t i = 0; i < API_HOOK__COUNT; i++)
		free(g->hooks[i].v);
	if (g->macros_free)
		g->macros_free(g->macros);
	for (size_t i = 0; i < g->ncmds; i++) {
		free(g->cmds[i].name);
		free(g->cmds[i].help);
	}
	free(g->cmds);
	free(g);
}

int api_hook_add(struct imp_instance *inst, enum api_hook_id id, void (*fn)(void), void *closure,
		 int order, uint32_t log_types)
{
	if (inst == NULL || inst->gen == NULL || !inst->gen->building || fn == NULL ||
	    (unsigned)id >= API_HOOK__COUNT)
		return -EINVAL;
	struct api_gen *g = inst->gen;
	struct api_hook *h = &g->hooks[id];

	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 4;
		h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	struct api_sub sub = {
		.fn = fn, .closure = closure, .order = order, .seq = g->seq++,
		.inst = inst, .log_types = log_types,
	};
	/* Insert after every subscriber of a lower or equal order: ties keep registration order. */
	size_t at = h->n;
	while (at > 0 && h->v[at - 1].order > order)
		at--;
	memmove(&h->v[at + 1], &h->v[at], (h->n - at) * sizeof(*h->v));
	h->v[at] = sub;
	h->n++;
	return 0;
}

/* ---- the typed registration functions of impetus/hooks.h ---------------- */

int imp_hook_validate(struct imp_instance *inst, enum imp_phase phase, imp_validate_fn fn,
		      void *closure, int order)
{
	if ((unsigned)phase >= IMP_PHASE__COUNT)
		return -EINVAL;
	return api_hook_add(inst, API_HOOK_VALIDATE_FIRST + phase, (void (*)(void))fn, closure,
			    order, 0);
}

int imp_hook_sign(struct imp_instance *inst, imp_sign_fn fn, void *closure, int order)
{
	return api_hook_add(inst, API_HOOK_SIGN, (void (*)(void))fn, closure, order, 0);
}

int imp_hook_connection_goal(struct imp_instance *inst, imp_goal_fn fn, void *closure, int order)
{
	return api_hook_add(inst, API_HOOK_CONNECTION_GOAL, (void (*)(void))fn, closure, order, 0);
}

int imp_hook_choose_binding(struct imp_instance *inst, imp_choose_binding_fn fn, void *closure,
			    int order)
{
	return api_hook_add(inst, API_HOOK_CHOOSE_BINDING, (void (*)(void))fn, closure, order, 0);
}

int imp_hook_client_params(struct imp_instance *inst, imp_client_params_fn fn, void *closure,
			   int order)
{
	return api_hook_add(inst, API_HOOK_CLIENT_PARAMS, (void (*)(void))fn, closure, order, 0);
}

int imp_hook_classify(struct imp_instance *inst, imp_classify_fn fn, void *closure, int order)
{
	return api_hook_add(inst, API_HOOK_CLASSIFY, (void (*)(void))fn, closure, order, 0);
}

int imp_hook_log(struct imp_instance *inst, const char *types, imp_log_fn fn, void *closure,
		 int order)
{
	uint32_t mask = 0;

	if (types == NULL)
		return -EINVAL;
	for (const char *t = types; *t; t++) {
		if (strchr("RDTPBXA", *t) == NULL)
			return -EINVAL;
		mask |= api_log_type_bit(*t);
	}
	if (mask == 0)
		return -EINVAL;
	return api_hook_add(inst, API_HOOK_LOG, (void (*)(void))fn, closure, order, mask);
}

const char *imp_phase_name(enum imp_phase phase)
{
	static const char *const names[IMP_PHASE__COUNT] = {
		[IMP_PHASE_CONNECT] = "connect",
		[IMP_PHASE_EHLO] = "ehlo",
		[IMP_PHASE_MAILFROM] = "mailfrom",
		[IMP_PHASE_RCPTTO] = "rcptto",
		[IMP_PHASE_DATA] = "data",
		[IMP_PHASE_DATA_SPOOL] = "data_spool",
		[IMP_PHASE_DATA_SPOOL_EACH_RCPT] = "data_spool_each_rcpt",
		[IMP_PHASE_SET_BINDING] = "set_binding",
	};
	return (unsigned)phase < IMP_PHASE__COUNT ? names[phase] : "?";
}

void imp_reply_set(struct imp_reply *r, int code, const char *status, const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	snprintf(r->status, sizeof(r->status), "%s", status ? status : "");
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
	/* One line: a CR or LF would let a module split the reply. */
	for (char *p = r->text; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
}

/* ---- instances ---------------------------------------------------------- */

const char *imp_instance_module(const struct imp_instance *inst)
{
	return inst->module_name;
}

const char *imp_instance_name(const struct imp_instance *inst)
{
	return inst->name;
}

int imp_instance_debug_level(const struct imp_instance *inst)
{
	return inst->debug_level;
}

void imp_instance_set_data(struct imp_instance *inst, void *data)
{
	inst->data = data;
}

void *imp_instance_data(const struct imp_instance *inst)
{
	return inst->data;
}
