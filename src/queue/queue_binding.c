/*
 * queue_binding.c - choosing a binding within a Binding_Group
 *
 * A message may name a Binding_Group but no binding: a set_binding
 * subscriber chose only the group, or Assign_Binding names a group
 * (queue_route.c). Before it is queued it needs one binding of that
 * group: the binding_group_choose_binding hook decides (impetus/hooks.h):
 * the first subscriber that answers a name from the group's list wins;
 * the built-in choice, round robin over the group's bindings in
 * configuration order, is a subscriber at IMP_ORDER_LAST. Without a
 * generation (tests, tools) the round robin decides alone.
 *
 * The group table (group -> its bindings) is read from the configuration
 * once per generation (struct queue.conf_gen), not per message; its
 * strings point into that generation. A group without bindings leaves
 * the message on the default binding, with a paniclog line.
 *
 * Ownership: scheduler thread, the table in struct queue and the round
 * robin positions (process-wide, one per group name, never more than
 * the groups ever configured). Failures: none but memory, which aborts.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "config/config.h"
#include "core/mem.h"
#include "core/strmap.h"
#include "log/log.h"
#include "message/envelope.h"
#include "message/message_view.h"
#include "queue/queue_goal.h"
#include "queue/queue_int.h"

struct qgroup {
	const char *name;		/* as configured */
	const char **bindings;		/* configuration order */
	size_t n;
};

struct queue_groups {
	uint64_t gen;			/* struct queue.conf_gen it was read from */
	struct strmap *map;		/* lower-cased group name -> struct qgroup */
};

/* The round robin's next position per lower-cased group name (scheduler thread). */
static struct strmap *rr_next;

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static void free_group(void *ctx, const char *key, void *value)
{
	struct qgroup *g = value;

	free(g->bindings);
	free(g);
}

void queue_binding_free(struct queue *q)
{
	if (q->groups == NULL)
		return;
	strmap_each(q->groups->map, free_group, NULL);
	strmap_free(q->groups->map);
	free(q->groups);
	q->groups = NULL;
}

/* groups - the group table of q's generation, read again after a reload. */
static struct strmap *groups(struct queue *q)
{
	if (q->groups && q->groups->gen == q->conf_gen)
		return q->groups->map;
	queue_binding_free(q);
	q->groups = XNEW(struct queue_groups);
	q->groups->gen = q->conf_gen;
	q->groups->map = strmap_new();
	for (size_t i = 0; i < conf_binding_count(q->conf); i++) {
		const char *b = conf_binding_name(q->conf, i);
		const char *gname = conf_binding_group_of(q->conf, b);
		if (gname == NULL)
			continue;
		char *key = xstrdup(gname);
		lower(key);
		struct qgroup *g = strmap_get(q->groups->map, key);
		if (g == NULL) {
			g = XNEW(struct qgroup);
			g->name = gname;
			strmap_put(q->groups->map, key, g);
		}
		g->bindings = xrealloc(g->bindings, (g->n + 1) * sizeof(*g->bindings));
		g->bindings[g->n++] = b;
		free(key);
	}
	return q->groups->map;
}

static struct qgroup *group_get(struct queue *q, const char *name)
{
	char *key = xstrdup(name);
	lower(key);
	struct qgroup *g = strmap_get(groups(q), key);
	free(key);
	return g;
}

const char *queue_binding_group_name(struct queue *q, const char *group)
{
	struct qgroup *g = group && *group ? group_get(q, group) : NULL;

	return g ? g->name : NULL;
}

/* round_robin - the built-in choice: the group's bindings in turn. */
static const char *round_robin(void *closure, const struct imp_message *msg, const char *group,
			       const char *const *bindings, size_t n)
{
	(void)closure;
	(void)msg;
	if (n == 0)
		return NULL;
	if (rr_next == NULL)
		rr_next = strmap_new();
	char *key = xstrdup(group);
	lower(key);
	size_t *next = strmap_get(rr_next, key);
	if (next == NULL) {
		next = XNEW(size_t);
		strmap_put(rr_next, key, next);
	}
	free(key);
	return bindings[(*next)++ % n];
}

int queue_binding_builtins_register(struct api_gen *g)
{
	return imp_hook_choose_binding(api_core_instance(g), round_robin, NULL, IMP_ORDER_LAST);
}

/* member - the group's own string for name (any case), or NULL when it is not a member. */
static const char *member(const struct qgroup *g, const char *name)
{
	for (size_t i = 0; name && i < g->n; i++)
		if (strcasecmp(g->bindings[i], name) == 0)
			return g->bindings[i];
	return NULL;
}

void queue_binding_choose(struct queue *q, struct envelope *sm)
{
	if ((sm->binding && *sm->binding) || sm->binding_group == NULL || !*sm->binding_group)
		return;
	struct qgroup *g = group_get(q, sm->binding_group);
	if (g == NULL || g->n == 0) {
		log_panic("binding group=%s has no binding; the default binding sends it",
			  sm->binding_group);
		return;
	}
	const struct api_hook *h = api_hook_of(q->conf, API_HOOK_CHOOSE_BINDING);
	struct imp_message view = { .env = sm };
	const char *chosen = NULL;

	if (h == NULL) {
		chosen = round_robin(NULL, &view, g->name, g->bindings, g->n);
	} else {
		for (size_t i = 0; i < h->n && chosen == NULL; i++) {
			imp_choose_binding_fn fn = (imp_choose_binding_fn)h->v[i].fn;
			/* An answer that is not in the list passes, like NULL. */
			chosen = member(g, fn(h->v[i].closure, &view, g->name, g->bindings, g->n));
		}
	}
	if (chosen == NULL)
		return;
	free(sm->binding);
	sm->binding = xstrdup(chosen);
	free(sm->binding_group);
	sm->binding_group = xstrdup(g->name);
}
