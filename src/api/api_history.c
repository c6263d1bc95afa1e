/*
 * api_history.c - the rates ring and the bounces ring (see api_history.h)
 *
 * Plain fixed arrays written in place: a push overwrites the oldest
 * element when the ring is full, so the daemon's memory for the history
 * is the size of two static structures, whatever the traffic. Strings
 * are copied into fixed fields and cut on a UTF-8 character boundary,
 * so a cut one is still valid UTF-8 for the JSON answer.
 *
 * Owner: whoever holds the ring (the scheduler thread in the daemon, the
 * test in the unit test). Nothing here allocates or fails.
 */
#include "api/api_history.h"

#include <assert.h>
#include <string.h>

bool history_copy(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;
	bool cut = false;

	assert(cap >= 1);
	if (n >= cap) {
		n = cap - 1;
		/* Back off over continuation bytes (10xxxxxx): never half a character. */
		while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--;
		cut = true;
	}
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
	return cut;
}

void history_rates_push(struct history_rates *r, const struct history_point *p)
{
	r->v[r->next] = *p;
	r->next = (r->next + 1) % HISTORY_RATE_POINTS;
	if (r->n < HISTORY_RATE_POINTS)
		r->n++;
}

const struct history_point *history_rates_at(const struct history_rates *r, size_t last, size_t i)
{
	assert(last <= r->n && i < last);
	/* The newest is at next - 1; the first of the last `last` is `last` before next. */
	size_t k = (r->next + HISTORY_RATE_POINTS - last + i) % HISTORY_RATE_POINTS;
	return &r->v[k];
}

struct history_bounce *history_bounces_next(struct history_bounces *b)
{
	struct history_bounce *e = &b->v[b->next];

	b->next = (b->next + 1) % HISTORY_BOUNCES;
	if (b->n < HISTORY_BOUNCES)
		b->n++;
	b->total++;
	memset(e, 0, sizeof(*e));
	return e;
}

const struct history_bounce *history_bounces_at(const struct history_bounces *b, size_t last,
						size_t i)
{
	assert(last <= b->n && i < last);
	(void)last;
	/* Newest first: i = 0 is the one just before next. */
	return &b->v[(b->next + HISTORY_BOUNCES - 1 - i) % HISTORY_BOUNCES];
}
