/*
 * queue_int.h - the queue manager's structures (private to src/queue/)
 *
 * All of these belong to the scheduler thread.
 *
 * Memory per queued recipient: one struct qentry (40 bytes) plus its share
 * of the struct qmsg and the spool_msg envelope (the recipient's address
 * and ~40 bytes of struct spool_rcpt). See docs/queue.md for measurements.
 */
#ifndef IMPETUS_QUEUE_QUEUE_INT_H
#define IMPETUS_QUEUE_QUEUE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "queue/queue.h"
#include "queue/throttle.h"

struct event;
struct smtp_client;
struct spool_msg;
struct dq;

/* A permanent failure remembered for the message's bounce. */
struct qfail {
	uint32_t rcpt;
	int code;
	uint8_t stage;
	char *response;
	char *remote;		/* remote MTA (IP or name), may be NULL */
	int64_t when;
};

/* One message with recipients still to deliver. */
struct qmsg {
	struct spool_msg *sm;		/* envelope; no body */
	uint32_t pending;		/* recipients without a final state */
	uint32_t inflight;		/* batches out with a copy of sm->loc */
	bool ack_pending;		/* the spool moved it; ack once inflight is 0 */
	size_t nfails;
	struct qfail *fails;
};

/* One recipient in one queue. */
struct qentry {
	struct qmsg *m;
	struct qentry *next;		/* active FIFO */
	int64_t next_attempt;		/* unix seconds */
	uint32_t rcpt;			/* index in m->sm->rcpts */
	uint32_t retries;
	uint32_t heap_idx;
};

/* An outbound connection as the scheduler sees it. */
struct qconn {
	struct queue *q;
	struct dq *dq;
	struct smtp_client *c;		/* NULL until the first batch_done */
	struct qconn *next_idle;
	bool idle;
};

/* The batch's side record: which entries its recipients are. */
struct qbatch {
	struct dq *dq;
	size_t n;
	struct qentry *entries[];
};

/* The queue of one (binding, routing domain) pair. */
struct dq {
	char *binding;			/* "" = default */
	char *domain;
	struct qentry *head, *tail;	/* active */
	uint64_t nactive;
	uint64_t runs;			/* active entries starting a new message: batches at least */
	struct qentry **heap;		/* delayed, min-heap on next_attempt */
	uint32_t nheap, heapcap;
	uint32_t conns;
	struct qconn *idle;		/* idle connections, LIFO */
	/* where the mail goes */
	bool resolving;
	int64_t hosts_expiry;		/* unix seconds; 0 = never resolved */
	size_t naddr;
	struct sockaddr_storage *addrs;
	char **names;
	/* shaping */
	struct throttle msg_tb, conn_tb;
	struct event *timer;
	int64_t timer_at_us;		/* 0 when not armed */
	struct queue *q;
};

#endif
