/*
 * spool_compact.c - compaction: move the live messages out of the oldest
 * segments so that oldest-first reclaiming can remove them
 * (docs/spool.md, "Compaction")
 *
 * One message deferred for days keeps its segment, and because segments
 * go oldest first, every newer one too. Compaction copies such a message
 * to the head as a new MESSAGE record flagged RELOCATED, carrying the
 * durable state of every recipient (state, retries, next attempt) from the
 * spool thread's index, followed by its recipients' RCPT_FAILURE records.
 * Once that copy is durable the old segment has no live message, and
 * after the owner of the message's queue entries acknowledged the new
 * location (spool_options.moved / spool_moved_ack) reclaim() removes it.
 *
 * Rules, in order:
 *   1. The victim is the oldest segment that holds live messages, never
 *      the current one. It is compacted when, for some segment k at or
 *      after it (before the current one), the live bytes of the segments
 *      up to k are at most `threshold` percent of all their bytes: moving
 *      them frees everything up to k (reclaim is oldest-first), so every
 *      byte copied frees at least 100 / threshold bytes.
 *   2. Copies are written by commit() *before* the batch's records, from
 *      the index as it is at that moment, which is exactly the durable
 *      state: every state record not reflected in the copy sits after it
 *      in the log and so applies to it on recovery.
 *   3. At most COMPACT_STEP_BYTES of records per commit (at least one
 *      message); bodies are read in COMPACT_CHUNK pieces and copied with
 *      spool_copy_range (copy_file_range when the kernel can, the same
 *      code that copies a streamed body in): the group commit is never
 *      held up by more than that and memory stays bounded whatever the
 *      message size.
 *   4. The old record is verified (its CRC over header, envelope and body)
 *      before it is copied, so compaction never launders damage into a
 *      fresh CRC. A message that cannot be read or verified is reported
 *      and left where it is; its segment is then not compacted again.
 *
 * Ownership: everything here runs on the spool thread (or on the main
 * thread while the spool thread is not running). Failure: a problem with
 * one message costs only that message's move; a write error during a copy
 * cuts the copy away and the batch goes on.
 */
#include "spool/spool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/crc32c.h"
#include "core/fsutil.h"
#include "core/loop.h"
#include "core/mem.h"
#include "msgs/msgs.h"
#include "spool/spool_record.h"

#define COMPACT_STEP_BYTES (4u << 20)	/* relocated bytes per commit, at most (one message more) */
#define COMPACT_CHUNK (256u << 10)	/* body bytes read or copied at a time */
#define STATS_INTERVAL_SECONDS 300	/* periodic "spool: stats" line, when something changed */
#define PAUSE_SECONDS 1			/* no compaction step this long after a failed copy */

/* A move waiting for its owner's acknowledgement. */
struct spool_pin {
	uint64_t seg;
};

/* A moved notice on its way to the owner's loop. */
struct moved_post {
	spool_moved_fn fn;
	void *ctx;
	impetus_id id;
	struct envelope_loc loc;
};

/* An acknowledgement on its way to the spool thread. */
struct ack_post {
	struct spool *sp;
	impetus_id id;
};

static void on_step(evutil_socket_t fd, short what, void *arg);

/* mono_seconds - a clock for the periodic line that does not jump. */
static int64_t mono_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

void spool_compact_init(struct spool *sp)
{
	struct spool_compact *c = &sp->compact;

	c->threshold = sp->opts.compact_threshold > 100 ? 100 : sp->opts.compact_threshold;
	c->vfd = -1;
	spool_idmap_init(&c->moves);
	c->last_stats = mono_seconds();
}

void spool_compact_start(struct spool *sp)
{
	sp->compact.ev = event_new(loop_base(sp->loop), -1, 0, on_step, sp);
}

/* victim_close - stop working on the victim. */
static void victim_close(struct spool_compact *c)
{
	if (c->vfd >= 0)
		close(c->vfd);
	c->vfd = -1;
	c->victim = 0;
	free(c->items);
	c->items = NULL;
	c->nitems = c->next = 0;
}

void spool_compact_fini(struct spool *sp)
{
	struct spool_compact *c = &sp->compact;

	victim_close(c);
	for (size_t i = 0; i < c->moves.cap; i++)
		if (c->moves.slots[i].key)
			free(c->moves.slots[i].val);
	spool_idmap_free(&c->moves);
	if (c->ev)
		event_free(c->ev);
	c->ev = NULL;
	free(c->batch);
	c->batch = NULL;
	free(c->buf);
	c->buf = NULL;
}

bool spool_compact_due(const struct spool *sp)
{
	const struct spool_compact *c = &sp->compact;

	return c->victim != 0 && c->next < c->nitems && !sp->stopping &&
	       (c->pause_until == 0 || mono_seconds() >= c->pause_until);
}

/* ==================== copying one message ==================== */

/*
 * read_old - read and verify the old MESSAGE record of l: header and
 * envelope into *msg (states from the index applied), the CRC checked over
 * the whole record, and *ncrc extended over the body for the new header
 * in *rec (built here). Returns 0, or -errno / -EBADMSG with *why.
 */
static int read_old(struct spool *sp, const struct live *l, struct str *rec,
		    struct envelope **msg, uint32_t *ncrc, size_t *body_off, const char **why)
{
	struct spool_compact *c = &sp->compact;
	uint8_t hdr[SPOOL_REC_HDR_SIZE + 4];
	struct str env = STR_INIT;
	struct spool_rec r;
	uint32_t envlen, ocrc;
	uint64_t pos, left;
	int rc;

	*msg = NULL;
	rc = fs_pread_all(c->vfd, hdr, sizeof(hdr), l->rec_off);
	if (rc < 0) {
		*why = "cannot read the record header";
		return rc;
	}
	envlen = (uint32_t)hdr[16] | (uint32_t)hdr[17] << 8 | (uint32_t)hdr[18] << 16 |
		 (uint32_t)hdr[19] << 24;
	if (hdr[0] != SPOOL_REC_MAGIC0 || hdr[4] != SPOOL_REC_MESSAGE ||
	    (uint64_t)SPOOL_REC_HDR_SIZE + spool_rec_header_len(hdr) != live_rec_len(l) ||
	    (uint64_t)SPOOL_REC_HDR_SIZE + 4 + envlen + l->loc.length != live_rec_len(l)) {
		*why = "the record header does not match the index";
		return -EBADMSG;
	}
	str_reserve(&env, 4 + (size_t)envlen);
	memcpy(env.s, hdr + SPOOL_REC_HDR_SIZE, 4);
	rc = fs_pread_all(c->vfd, env.s + 4, envlen, l->rec_off + sizeof(hdr));
	if (rc < 0) {
		*why = "cannot read the envelope";
		goto out;
	}
	env.len = 4 + (size_t)envlen;
	ocrc = crc32c(crc32c(0, hdr, 12), env.s, env.len);
	if (spool_rec_decode_payload(SPOOL_REC_MESSAGE, (const uint8_t *)env.s, env.len, true,
				     &r, why) < 0) {
		rc = -EBADMSG;
		goto out;
	}
	if (r.msg->nrcpt != l->nrcpt) {
		*why = "recipient count differs from the index";
		envelope_free(r.msg);
		rc = -EBADMSG;
		goto out;
	}
	*msg = r.msg;
	for (uint32_t i = 0; i < l->nrcpt; i++) {
		(*msg)->rcpts[i].state = l->rcpts[i].state;
		(*msg)->rcpts[i].retries = l->rcpts[i].retries;
		(*msg)->rcpts[i].next_attempt = l->rcpts[i].next_attempt;
	}
	if (l->binding) {
		/* A BINDING record changed it: the copy says so itself. */
		free((*msg)->binding);
		free((*msg)->binding_group);
		(*msg)->binding = xstrdup(l->binding);
		(*msg)->binding_group = xstrdup(l->binding_group);
	}
	*body_off = spool_rec_encode_relocated(rec, *msg, l->loc.length, ncrc);
	if (*body_off == 0) {
		*why = "the copy would be too large";
		rc = -EFBIG;
		goto out;
	}
	/* Verify the old record and compute the new CRC over the body in one pass. */
	if (c->buf == NULL)
		c->buf = xmalloc(COMPACT_CHUNK);
	for (pos = l->loc.offset, left = l->loc.length; left > 0;) {
		size_t n = left > COMPACT_CHUNK ? COMPACT_CHUNK : (size_t)left;

		rc = fs_pread_all(c->vfd, c->buf, n, pos);
		if (rc < 0) {
			*why = "cannot read the body";
			goto out;
		}
		ocrc = crc32c(ocrc, c->buf, n);
		*ncrc = crc32c(*ncrc, c->buf, n);
		pos += n;
		left -= n;
	}
	if (ocrc != spool_rec_header_crc(hdr)) {
		*why = "bad record crc";
		rc = -EBADMSG;
	}
out:
	str_free(&env);
	if (rc < 0) {
		envelope_free(*msg);
		*msg = NULL;
	}
	return rc;
}

#define RELOCATE_LATER 2	/* relocate: the copy failed on our side; same message next step */

/*
 * relocate - copy the message of item it to *off. Returns 1 when copied
 * (*off advanced, the move recorded for spool_compact_applied), 0 when
 * the message is left where it is, RELOCATE_LATER after a write error
 * (the copy was cut away again), -errno when the segment could not be cut
 * back after a failed copy.
 */
static int relocate(struct spool *sp, const struct compact_item *it, uint64_t *off)
{
	struct spool_compact *c = &sp->compact;
	struct live *l = spool_idmap_get(&sp->live, it->id);
	struct envelope *msg = NULL;
	struct str rec = STR_INIT, tail = STR_INIT;
	char idbuf[ID_BUF_SIZE], name[SPOOL_SEG_NAME_SIZE];
	const char *why = NULL;
	uint32_t ncrc = 0;
	size_t body_off = 0;
	int rc;

	if (l == NULL || l->loc.segment != c->victim || l->rec_off != it->rec_off ||
	    spool_idmap_get(&c->moves, it->id))
		return 0;	/* finished, or already moved and not yet acknowledged */
	if (l->nqueued == 0)
		return 0;	/* only its bounce is due: MESSAGE_DONE comes soon, a move
				   would pull the body from under the bounce job */
	rc = read_old(sp, l, &rec, &msg, &ncrc, &body_off, &why);
	if (rc < 0) {
		SPOOL_REPORT(sp, "spool: %s cannot be relocated from segment=%s/%s offset=%" PRIu64
			     ": %s (%s); it stays, and so does its segment",
			     id_format(it->id, idbuf), sp->dir, spool_seg_name(c->victim, name),
			     l->rec_off, why ? why : "error", strerror(-rc));
		c->stuck = c->victim;
		c->next = c->nitems;	/* its segment cannot go: moving the others is no use */
		rc = 0;
		goto out;
	}
	spool_rec_store_crc(rec.s, ncrc);
	/*
	 * The recipients' failure details follow the copy in the same commit
	 * (they are not part of the envelope): replay applies them to it, so
	 * the DSN they describe outlives the old segment.
	 */
	for (uint32_t i = 0; i < l->nfails; i++)
		str_append(&tail, l->fails[i].rec.s, l->fails[i].rec.len);
	rc = fs_pwrite_all(sp->cur_fd, rec.s, rec.len, *off);
	if (rc == 0)
		rc = spool_copy_range(c->vfd, l->loc.offset, sp->cur_fd, *off + rec.len,
				      l->loc.length);
	if (rc == 0 && tail.len)
		rc = fs_pwrite_all(sp->cur_fd, tail.s, tail.len, *off + rec.len + l->loc.length);
	if (rc < 0) {
		int crc = spool_cut_back(sp, *off);

		SPOOL_REPORT(sp, "spool: %s relocation to segment=%s/%s offset=%" PRIu64
			     " failed: %s; will try again", id_format(it->id, idbuf), sp->dir,
			     spool_seg_name(sp->segs[sp->nsegs - 1].seq, name), *off,
			     strerror(-rc));
		spool_stat_add(&sp->st_write_errors, 1);
		rc = crc < 0 ? crc : RELOCATE_LATER;
		goto out;
	}
	if (c->nbatch == c->capbatch) {
		c->capbatch = c->capbatch ? c->capbatch * 2 : 16;
		c->batch = xrealloc(c->batch, c->capbatch * sizeof(*c->batch));
	}
	c->batch[c->nbatch++] = (struct spool_moved){
		.id = it->id,
		.rec_off = *off,
		.loc = {
			.segment = sp->segs[sp->nsegs - 1].seq,
			.offset = *off + body_off,
			.length = l->loc.length,
		},
	};
	*off += rec.len + l->loc.length + tail.len;
	rc = 1;
out:
	envelope_free(msg);
	str_free(&rec);
	str_free(&tail);
	return rc;
}

int spool_compact_write(struct spool *sp, uint64_t *off)
{
	struct spool_compact *c = &sp->compact;
	uint64_t start = *off;

	c->nbatch = 0;
	while (spool_compact_due(sp)) {
		const struct compact_item *it = &c->items[c->next];
		int rc;

		if (*off - start >= COMPACT_STEP_BYTES)
			break;
		rc = relocate(sp, it, off);
		if (rc < 0)
			return rc;
		if (rc == RELOCATE_LATER) {
			c->pause_until = mono_seconds() + PAUSE_SECONDS;
			break;
		}
		if (c->next < c->nitems)
			c->next++;
	}
	return 0;
}

void spool_compact_abort(struct spool *sp)
{
	struct spool_compact *c = &sp->compact;

	/* The items will be met again: rewind to the first one of this batch. */
	if (c->nbatch && c->victim) {
		while (c->next > 0 && c->items[c->next - 1].id != c->batch[0].id)
			c->next--;
		if (c->next > 0)
			c->next--;
	}
	c->nbatch = 0;
}

/* ==================== after the commit ==================== */

/* spool_compact_on_moved - on the owner's loop: tell it the new location. */
void spool_compact_on_moved(void *arg)
{
	struct moved_post *mp = arg;

	mp->fn(mp->ctx, mp->id, &mp->loc);
	free(mp);
}

void spool_compact_applied(struct spool *sp)
{
	struct spool_compact *c = &sp->compact;

	for (size_t i = 0; i < c->nbatch; i++) {
		const struct spool_moved *mv = &c->batch[i];
		struct live *l = spool_idmap_get(&sp->live, mv->id);
		struct spool_seg *old;
		uint64_t old_len, new_len;

		if (l == NULL)
			continue;	/* cannot happen: nothing changes the index in between */
		old = spool_seg_find(sp, l->loc.segment);
		old_len = live_rec_len(l);
		if (old) {
			old->live--;
			old->live_bytes -= old_len <= old->live_bytes ? old_len : old->live_bytes;
		}
		l->loc = mv->loc;
		l->rec_off = mv->rec_off;
		new_len = live_rec_len(l);
		sp->segs[sp->nsegs - 1].live++;
		sp->segs[sp->nsegs - 1].live_bytes += new_len;
		spool_stat_add(&sp->st_live_bytes, new_len - old_len);
		spool_stat_add(&sp->st_moved_messages, 1);
		spool_stat_add(&sp->st_moved_bytes, new_len);
		c->v_moved++;
		c->v_moved_bytes += new_len;
		if (sp->opts.moved && old) {
			struct spool_pin *pin = XNEW(struct spool_pin);
			struct moved_post *mp = XNEW(struct moved_post);

			/* The old copy stays readable until the owner says it is done with it. */
			pin->seg = old->seq;
			old->pins++;
			free(spool_idmap_put(&c->moves, mv->id, pin));
			mp->fn = sp->opts.moved;
			mp->ctx = sp->opts.moved_ctx;
			mp->id = mv->id;
			mp->loc = mv->loc;
			if (sp->opts.moved_loop)
				msgs_post(sp->opts.moved_loop, MSGS_SPOOL_MOVED, mp);
			else
				spool_compact_on_moved(mp);
		}
	}
	c->nbatch = 0;
}

/* spool_compact_on_moved_ack - spool thread: the owner is done with an old location. */
void spool_compact_on_moved_ack(void *arg)
{
	struct ack_post *ap = arg;
	struct spool *sp = ap->sp;
	struct spool_pin *pin = spool_idmap_del(&sp->compact.moves, ap->id);

	if (pin) {
		struct spool_seg *s = spool_seg_find(sp, pin->seg);

		sp->compact.waiting = 0;
		if (s && s->pins)
			s->pins--;
		free(pin);
		/* The drain hook commits next, and its reclaim() removes what is free now. */
		if (!spool_compact_due(sp) && sp->compact.ev && !sp->compact.scheduled) {
			sp->compact.scheduled = true;
			event_active(sp->compact.ev, EV_TIMEOUT, 0);
		}
	}
	free(ap);
}

void spool_moved_ack(struct spool *sp, impetus_id id)
{
	struct ack_post *ap = XNEW(struct ack_post);

	ap->sp = sp;
	ap->id = id;
	msgs_post(sp->loop, MSGS_SPOOL_MOVED_ACK, ap);
}

/* ==================== choosing the victim ==================== */

/* cmp_item - victim's messages in record order, so reads go forward. */
static int cmp_item(const void *a, const void *b)
{
	uint64_t x = ((const struct compact_item *)a)->rec_off;
	uint64_t y = ((const struct compact_item *)b)->rec_off;

	return x < y ? -1 : x > y;
}

/* pick_victim - rule 1 of the file header; 0 when nothing is worth moving. */
static uint64_t pick_victim(struct spool *sp)
{
	struct spool_compact *c = &sp->compact;
	uint64_t live = 0, bytes = 0, victim = 0;

	for (size_t i = 0; i + 1 < sp->nsegs; i++) {
		const struct spool_seg *s = &sp->segs[i];

		if (victim == 0 && s->live > 0) {
			if (s->seq == c->stuck || s->seq == c->waiting)
				return 0;
			victim = s->seq;
		}
		live += s->live_bytes;
		bytes += s->size;
		if (victim && live * 100 <= (uint64_t)c->threshold * bytes)
			return victim;
	}
	return 0;
}

/* victim_open - collect the victim's live messages and open it for reading. */
static bool victim_open(struct spool *sp, uint64_t seq)
{
	struct spool_compact *c = &sp->compact;
	const struct spool_seg *s = spool_seg_find(sp, seq);
	char name[SPOOL_SEG_NAME_SIZE];
	size_t cap = s->live ? s->live : 1;

	c->vfd = openat(sp->dirfd, spool_seg_name(seq, name), O_RDONLY | O_CLOEXEC);
	if (c->vfd < 0) {
		SPOOL_REPORT(sp, "spool: cannot open segment=%s/%s for compaction: %s", sp->dir,
			     name, strerror(errno));
		c->stuck = seq;
		return false;
	}
	c->items = xcalloc(cap, sizeof(*c->items));
	for (size_t i = 0; i < sp->live.cap; i++) {
		const struct live *l = sp->live.slots[i].val;

		if (sp->live.slots[i].key == 0 || l->loc.segment != seq)
			continue;
		if (c->nitems == cap) {
			cap *= 2;
			c->items = xrealloc(c->items, cap * sizeof(*c->items));
		}
		c->items[c->nitems++] = (struct compact_item){ l->rec_off, sp->live.slots[i].key };
	}
	qsort(c->items, c->nitems, sizeof(*c->items), cmp_item);
	c->victim = seq;
	c->next = 0;
	c->v_size = s->size;
	c->v_live = s->live;
	c->v_live_bytes = s->live_bytes;
	c->v_moved = c->v_moved_bytes = 0;
	return true;
}

/* ratio_permille - a/b in tenths of a percent, for log lines. */
static unsigned ratio_permille(uint64_t a, uint64_t b)
{
	return b ? (unsigned)(a * 1000 / b) : 0;
}

/* stats_line - the periodic summary, when something changed since the last one. */
static void stats_line(struct spool *sp)
{
	struct spool_compact *c = &sp->compact;
	uint64_t bytes = atomic_load_explicit(&sp->st_bytes, memory_order_relaxed);
	uint64_t live = atomic_load_explicit(&sp->st_live_bytes, memory_order_relaxed);
	int64_t now = mono_seconds();
	unsigned r;

	if (now - c->last_stats < STATS_INTERVAL_SECONDS)
		return;
	c->last_stats = now;
	if (bytes == c->last_stats_bytes && live == c->last_stats_live)
		return;
	c->last_stats_bytes = bytes;
	c->last_stats_live = live;
	r = ratio_permille(live, bytes);
	SPOOL_REPORT(sp, "spool: stats segments=%zu bytes=%" PRIu64 " live_messages=%zu"
		     " live_bytes=%" PRIu64 " live_ratio=%u.%u%% compacted_segments=%" PRIu64
		     " moved_messages=%" PRIu64 " moved_bytes=%" PRIu64,
		     sp->nsegs, bytes, sp->live.count, live, r / 10, r % 10,
		     atomic_load_explicit(&sp->st_compacted_segments, memory_order_relaxed),
		     atomic_load_explicit(&sp->st_moved_messages, memory_order_relaxed),
		     atomic_load_explicit(&sp->st_moved_bytes, memory_order_relaxed));
}

/* victim_done - every message of the victim was tried: log the segment's line. */
static void victim_done(struct spool *sp)
{
	struct spool_compact *c = &sp->compact;
	const struct spool_seg *s = spool_seg_find(sp, c->victim);
	char name[SPOOL_SEG_NAME_SIZE];
	unsigned r = ratio_permille(c->v_live_bytes, c->v_size);

	/*
	 * Messages left behind whose previous move is not acknowledged yet:
	 * try this segment again after the next acknowledgement, not in a
	 * loop of empty steps now.
	 */
	if (s && s->live > 0 && c->stuck != c->victim)
		c->waiting = c->victim;
	spool_stat_add(&sp->st_compacted_segments, s && s->live ? 0 : 1);
	SPOOL_REPORT(sp, "spool: compacted segment=%s/%s live_ratio=%u.%u%% live_messages=%"
		     PRIu64 " moved_messages=%" PRIu64 " moved_bytes=%" PRIu64 " left=%" PRIu64,
		     sp->dir, spool_seg_name(c->victim, name), r / 10, r % 10, c->v_live,
		     c->v_moved, c->v_moved_bytes, s ? s->live : 0);
	victim_close(c);
}

void spool_compact_plan(struct spool *sp)
{
	struct spool_compact *c = &sp->compact;

	stats_line(sp);
	if (c->threshold == 0 || sp->stopping)
		return;
	if (c->victim && c->next >= c->nitems)
		victim_done(sp);
	if (c->victim == 0) {
		uint64_t v = pick_victim(sp);

		if (v == 0 || !victim_open(sp, v))
			return;
	}
	/* The next commit writes the next step; make sure one comes. */
	if (c->ev && !c->scheduled) {
		c->scheduled = true;
		if (c->pause_until && mono_seconds() < c->pause_until) {
			struct timeval tv = { PAUSE_SECONDS, 0 };

			event_add(c->ev, &tv);
		} else {
			c->pause_until = 0;
			event_active(c->ev, EV_TIMEOUT, 0);
		}
	}
}

/* on_step - no batch brought the step along: commit one on its own. */
static void on_step(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;

	sp->compact.scheduled = false;
	spool_commit_now(sp);
}
