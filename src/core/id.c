/*
 * id.c - time-sortable unique ids (see id.h)
 */
#include "core/id.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

static _Atomic uint64_t last_id;

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

impetus_id id_next(void)
{
	uint64_t now = now_usec();
	uint64_t prev = atomic_load_explicit(&last_id, memory_order_relaxed);
	uint64_t next;

	do {
		next = now > prev ? now : prev + 1;
	} while (!atomic_compare_exchange_weak_explicit(&last_id, &prev, next,
							memory_order_relaxed,
							memory_order_relaxed));
	return next;
}

void id_observe(impetus_id id)
{
	uint64_t prev = atomic_load_explicit(&last_id, memory_order_relaxed);

	while (prev < id &&
	       !atomic_compare_exchange_weak_explicit(&last_id, &prev, id,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
}

char *id_format(impetus_id id, char buf[ID_BUF_SIZE])
{
	static const char hex[] = "0123456789ABCDEF";

	for (int i = ID_TEXT_LEN - 1; i >= 0; i--) {
		buf[i] = hex[id & 0xf];
		id >>= 4;
	}
	buf[ID_TEXT_LEN] = '\0';
	return buf;
}

bool id_parse(const char *s, impetus_id *out)
{
	uint64_t v = 0;

	if (strlen(s) != ID_TEXT_LEN)
		return false;
	for (int i = 0; i < ID_TEXT_LEN; i++) {
		char c = s[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return true;
}
