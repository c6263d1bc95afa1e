/*
 * smtp_server.h - the inbound ESMTP service: listeners, limits, sessions
 *
 * The server is a manager (smtp_server.c) on the scheduler thread and
 * sessions (smtp_server_session.c) on the I/O loops:
 *
 *   scheduler: binds the listeners (a socket per I/O loop), receives
 *              every message the spool made durable (on_message), drives
 *              graceful shutdown.
 *   I/O loop:  accepts on its own sockets, admits each connection against
 *              Concurrency and Max_Connections_Per_IP (counts shared by
 *              every loop, under the server's mutex), runs one state
 *              machine per connection; talks to the spool and back to the
 *              scheduler only by posting.
 *
 * Ownership: struct smtp_server belongs to the scheduler thread, except
 * the fields its mutex guards (smtp_server.c); the listeners are the
 * scheduler's and are shared by reference with the loops that accept on
 * them (smtp_server_int.h); struct smtp_io (one per I/O loop), its
 * sockets and its sessions belong to that loop's thread. The
 * configuration generation is immutable and reference-counted, so
 * sessions read it directly.
 */
#ifndef IMPETUS_SMTP_SMTP_SERVER_H
#define IMPETUS_SMTP_SMTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/histo.h"
#include "core/str.h"

struct conf;
struct loop;
struct pool;
struct spool;
struct envelope;
struct smtp_server;

/* on_message - a durable message, on the scheduler thread; callee owns msg. */
typedef void (*smtp_message_fn)(void *ctx, struct envelope *msg);

struct smtp_server *smtp_server_new(struct loop *scheduler, struct loop **io, size_t nio,
				    struct spool *sp, smtp_message_fn on_message, void *ctx);
/*
 * smtp_server_listen - bind every ESMTP listener of conf and load their TLS
 * certificates. Scheduler thread, before the loops run. 0 or -1 with err.
 */
int smtp_server_listen(struct smtp_server *srv, struct conf *conf, struct str *err);
/*
 * smtp_server_set_spool - where sessions submit messages, and the IO pool
 * that streams large ones to disk (NULL: they stay in memory). Before the
 * loops run.
 */
void smtp_server_set_spool(struct smtp_server *srv, struct spool *sp, struct pool *io_pool);
/*
 * smtp_server_set_conf - new sessions use this generation from now on.
 * After smtp_server_listen (a reload), the listeners follow it too: a
 * Listen added is bound, one removed is closed (its sessions finish),
 * certificates are read again; what cannot be bound is a paniclog error
 * and the rest applies (smtp_server.c, "Reloading listeners"). Scheduler.
 */
void smtp_server_set_conf(struct smtp_server *srv, struct conf *conf);
/*
 * smtp_server_shutdown - stop accepting, answer idle sessions 421, let
 * transactions in flight finish for up to grace_seconds, then close the
 * rest; done(arg) runs on the scheduler when no session is left.
 */
void smtp_server_shutdown(struct smtp_server *srv, int grace_seconds,
			  void (*done)(void *arg), void *arg);
/* What the console's summary reads of the inbound side. */
struct smtp_server_stats {
	uint32_t sessions;	/* open SMTP sessions, all loops */
	uint64_t rejected;	/* rejections since start: connections, commands, recipients */
};
/* smtp_server_get_stats - the counters; any thread (sessions is read under the server's mutex). */
void smtp_server_get_stats(struct smtp_server *srv, struct smtp_server_stats *st);
/* What GET /metrics reads of the inbound side beyond the stats. */
struct smtp_server_metrics {
	uint64_t rejected_smtp;		/* rejections before or without EHLO */
	uint64_t rejected_esmtp;	/* rejections after EHLO */
	struct histo_snap time_to_250_us;	/* end of data -> 250 queued, microseconds */
};
/* smtp_server_get_metrics - those numbers; any thread (atomics). */
void smtp_server_get_metrics(const struct smtp_server *srv, struct smtp_server_metrics *out);
void smtp_server_free(struct smtp_server *srv);

#endif
