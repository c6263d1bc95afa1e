/*
 * queue_goal.c - how many connections a queue wants
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
 */
#include "queue/queue.h"

uint32_t queue_default_connection_goal(const struct queue_goal_input *in)
{
	uint64_t batch = in->batch_size ? in->batch_size : 1;
	uint64_t want = (in->active + batch - 1) / batch;

	if (in->runs > want)
		want = in->runs;

	if (in->max_connections && want > in->max_connections)
		want = in->max_connections;
	return (uint32_t)want;
}
