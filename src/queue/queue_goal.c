/*
 * queue_goal.c - how many connections a queue wants
 *
 * The default goal opens one connection per batch's worth of ready
 * recipients, so a queue of 10 recipients gets one connection and a queue
 * of 5,000 gets as many as Max_Outbound_Connections allows, and never
 * more connections than there are batches to fill them. Connections that
 * are already open count towards the goal (they take the next batch when
 * their current one is done), so the goal is compared with the number
 * open, not added to it.
 */
#include "queue/queue.h"

uint32_t queue_default_connection_goal(const struct queue_goal_input *in)
{
	uint64_t batch = in->batch_size ? in->batch_size : 1;
	uint64_t want = (in->active + batch - 1) / batch;

	if (in->max_connections && want > in->max_connections)
		want = in->max_connections;
	return (uint32_t)want;
}
