/*
 * queue_goal.c - how many connections a queue wants (the connection_goal hook)
 *
 * The default goal opens one connection per batch that is ready: a batch
 * holds recipients of one message only, so the number of batches is at
 * least the number of different messages queued (runs) and at least the
 * recipients divided by Max_Recipients_Per_Batch. Ten recipients of one
 * message get one connection; 5,000 single-recipient messages get as many
 * as Max_Outbound_Connections allows; never more connections than there
 * are batches to fill them. Connections that
 * are already open count towards the goal (they take the next batch when
 * their current one is done), so the goal is compared with the number
 * open, not added to it.
 *
 * The default is the first subscriber of the hook (IMP_ORDER_FIRST), so
 * every module sees its answer as the goal so far and may change it.
 * queue_goal runs the chain; without subscribers (no generation) it is
 * the default alone. Scheduler thread; nothing here fails.
 */
#include "queue/queue_goal.h"

#include "api/api.h"
#include "queue/queue.h"

uint32_t queue_default_connection_goal(const struct imp_goal_input *in)
{
	uint64_t batch = in->batch_size ? in->batch_size : 1;
	uint64_t want = (in->active + batch - 1) / batch;

	if (in->runs > want)
		want = in->runs;

	if (in->max_connections && want > in->max_connections)
		want = in->max_connections;
	return (uint32_t)want;
}

/* builtin_goal - the default goal as a subscriber: it starts the chain, so it ignores goal. */
static uint32_t builtin_goal(void *closure, const struct imp_goal_input *in, uint32_t goal)
{
	(void)closure;
	(void)goal;
	return queue_default_connection_goal(in);
}

uint32_t queue_goal(const struct api_hook *h, const struct imp_goal_input *in)
{
	uint32_t goal;

	if (h == NULL) {
		goal = queue_default_connection_goal(in);
	} else {
		goal = 0;
		for (size_t i = 0; i < h->n; i++) {
			imp_goal_fn fn = (imp_goal_fn)h->v[i].fn;
			goal = fn(h->v[i].closure, in, goal);
		}
	}
	/* Whatever a module answers, the limit holds. */
	if (in->max_connections && goal > in->max_connections)
		goal = in->max_connections;
	return goal;
}

void queue_builtins_register(struct api_gen *g)
{
	struct imp_instance *core = api_core_instance(g);

	if (imp_hook_connection_goal(core, builtin_goal, NULL, IMP_ORDER_FIRST) < 0 ||
	    queue_binding_builtins_register(g) < 0)
		abort();
	queue_console_register(g);
}
