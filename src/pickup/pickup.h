/*
 * pickup.h - the daemon's pickup importer: messages `impetus sendmail`
 * left in <Spoolbase>/pickup while the daemon was down (or refusing)
 *
 * Owned by the scheduler thread: created before the spool is recovered
 * (recovery tells it which pickup files were already spooled), started
 * once the queue runs, stopped when the scheduler's loop ends. Reading
 * and parsing the files runs on the IO pool; injecting, unlinking and
 * logging on the scheduler. docs/sendmail.md describes the directory,
 * the file format and the exactly-once rule.
 */
#ifndef IMPETUS_PICKUP_PICKUP_H
#define IMPETUS_PICKUP_PICKUP_H

#include "core/str.h"

struct envelope;
struct loop;
struct pool;
struct queue;
struct spool;

/* The message-context keys a picked-up message carries. */
#define PICKUP_VCTX_FILE "impetus.pickup_file"	/* the pickup file's name */
#define PICKUP_VCTX_UID "impetus.pickup_uid"	/* the file's owner */

struct pickup;

/*
 * pickup_new - the importer of <spoolbase>/pickup, which it creates
 * (mode 1733, like Postfix's maildrop: any local user may drop a file,
 * none may list them) with bad/ (0700) beside. NULL + err when the
 * directory cannot be made.
 */
struct pickup *pickup_new(const char *spoolbase, struct str *err);

/* pickup_note_recovered - recovery: remember a message that came from a pickup file. */
void pickup_note_recovered(struct pickup *p, const struct envelope *env);

/* pickup_start - scan now and every second from the scheduler's loop. */
void pickup_start(struct pickup *p, struct loop *scheduler, struct pool *io_pool,
		  struct pool *cpu_pool, struct spool *spool, struct queue *queue);

/* pickup_stop - no new scan or injection; results still arriving are dropped. */
void pickup_stop(struct pickup *p);

/* pickup_free - after the pools and the spool are stopped. */
void pickup_free(struct pickup *p);

#endif
