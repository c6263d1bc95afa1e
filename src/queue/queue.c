/*
 * queue.c - holding accepted messages and logging their reception
 *
 * Owned by the scheduler thread. Messages are kept without their bodies
 * (the spool has those); the list is the seed of the per-domain queues of
 * the delivery milestone.
 */
#include "queue/queue.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/id.h"
#include "core/mem.h"
#include "core/str.h"
#include "log/log.h"
#include "spool/spool.h"

struct queue {
	struct spool_msg **msgs;
	size_t n, cap;
	size_t rcpts;
};

struct queue *queue_new(void)
{
	return XNEW(struct queue);
}

static void queue_hold(struct queue *q, struct spool_msg *msg)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 1024;
		q->msgs = xrealloc(q->msgs, q->cap * sizeof(*q->msgs));
	}
	q->msgs[q->n++] = msg;
	for (size_t i = 0; i < msg->nrcpt; i++)
		if (msg->rcpts[i].state == SPOOL_RCPT_QUEUED)
			q->rcpts++;
}

/* split_addr - local part and domain of an address (domain "" when none). */
static void split_addr(const char *addr, struct str *local, const char **domain)
{
	const char *at = strrchr(addr, '@');

	str_clear(local);
	if (at == NULL) {
		str_appends(local, addr);
		*domain = "";
	} else {
		str_append(local, addr, (size_t)(at - addr));
		*domain = at + 1;
	}
}

/*
 * log_reception - one R line per recipient:
 * time@id@batch@conn@R@rcpt-local@rcpt-domain@sender-local@sender-domain@
 * ip@size@protocol@binding-group@binding
 */
static void log_reception(const struct spool_msg *msg)
{
	struct str line = STR_INIT, rl = STR_INIT, sl = STR_INIT;
	const char *rd, *sd;
	char id[ID_BUF_SIZE], conn[ID_BUF_SIZE];
	long long now = (long long)time(NULL);

	id_format(msg->id, id);
	if (msg->conn_id)
		id_format(msg->conn_id, conn);
	else
		conn[0] = '\0';
	split_addr(msg->sender, &sl, &sd);
	for (size_t i = 0; i < msg->nrcpt; i++) {
		split_addr(msg->rcpts[i].addr, &rl, &rd);
		str_clear(&line);
		str_appendf(&line, "%lld@%s@@%s@R@%s@%s@%s@%s@%s@%llu@%s@%s@%s", now, id, conn,
			    str_cstr(&rl), rd, str_cstr(&sl), sd, msg->client_ip,
			    (unsigned long long)msg->loc.length, msg->protocol,
			    *msg->binding_group ? msg->binding_group : "default",
			    *msg->binding ? msg->binding : "default");
		log_line(LOG_MAIN, line.s, line.len);
	}
	str_free(&line);
	str_free(&rl);
	str_free(&sl);
}

void queue_accept(struct queue *q, struct spool_msg *msg)
{
	log_reception(msg);
	queue_hold(q, msg);
}

void queue_recovered(struct queue *q, struct spool_msg *msg)
{
	queue_hold(q, msg);
}

size_t queue_message_count(const struct queue *q)
{
	return q->n;
}

size_t queue_recipient_count(const struct queue *q)
{
	return q->rcpts;
}

void queue_free(struct queue *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->n; i++)
		spool_msg_free(q->msgs[i]);
	free(q->msgs);
	free(q);
}
