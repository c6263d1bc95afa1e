/*
 * smtp_tarpit.c - failed SMTP AUTH attempts per client address (see smtp_tarpit.h)
 *
 * One ipmap entry per address (the /64 of an IPv6 client), holding the
 * failures counted since the address was last quiet for a whole window
 * and the time of the last one. The delay of the n-th failure is
 * delay * 2^(n-1), capped; the limit-th failure answers 421 instead.
 * Scheduler thread only.
 */
#include "smtp/smtp_tarpit.h"

#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/ipmap.h"
#include "core/mem.h"
#include "core/sockaddr.h"

struct tarpit_entry {
	struct ipmap_node node;		/* key: the address (/64 for IPv6), or all 0xff for the overflow */
	uint32_t failures;
	int64_t last_ms;		/* the last failure */
};

struct smtp_tarpit {
	struct ipmap map;
	struct smtp_tarpit_conf conf;
};

struct smtp_tarpit *smtp_tarpit_new(void)
{
	struct smtp_tarpit *t = XNEW(struct smtp_tarpit);

	ipmap_init(&t->map);
	t->conf.limit = 5;
	t->conf.window_ms = 600000;
	t->conf.delay_ms = 1000;
	t->conf.max_delay_ms = 16000;
	return t;
}

/* drop_all - ipmap_sweep callback that frees every entry. */
static bool drop_all(void *ctx, struct ipmap_node *n)
{
	(void)ctx;
	free(IPMAP_ENTRY(n, struct tarpit_entry, node));
	return true;
}

void smtp_tarpit_free(struct smtp_tarpit *t)
{
	if (t == NULL)
		return;
	ipmap_sweep(&t->map, drop_all, NULL);
	ipmap_destroy(&t->map);
	free(t);
}

void smtp_tarpit_configure(struct smtp_tarpit *t, const struct smtp_tarpit_conf *tc)
{
	t->conf = *tc;
}

void smtp_tarpit_set_conf(struct smtp_tarpit *t, const struct conf *c)
{
	struct smtp_tarpit_conf tc = {
		.limit = (uint32_t)conf_int(c, CONF_OPT_AUTH_FAILURE_LIMIT),
		.window_ms = conf_int(c, CONF_OPT_AUTH_FAILURE_WINDOW) * 1000,
		.delay_ms = conf_int(c, CONF_OPT_AUTH_TARPIT_DELAY) * 1000,
		.max_delay_ms = conf_int(c, CONF_OPT_AUTH_TARPIT_MAX_DELAY) * 1000,
	};

	smtp_tarpit_configure(t, &tc);
}

/* key_of - the table key of a client: IPv4 (mapped) as is, IPv6 cut to its /64. */
static void key_of(const struct sockaddr_storage *peer, uint8_t key[IPMAP_KEY_LEN])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (!sockaddr_ip16((const struct sockaddr *)peer, key)) {
		memset(key, 0, IPMAP_KEY_LEN);	/* not IP (never for a TCP listener): one shared entry */
		return;
	}
	if (memcmp(key, mapped, sizeof(mapped)) != 0)
		memset(key + 8, 0, 8);
}

/* lookup - the entry of peer, forgetting it when its window passed; NULL when none. */
static struct tarpit_entry *lookup(struct smtp_tarpit *t, const uint8_t key[IPMAP_KEY_LEN],
				   int64_t now)
{
	struct ipmap_node *n = ipmap_get(&t->map, key);
	struct tarpit_entry *e;

	if (n == NULL) {
		static const uint8_t overflow[IPMAP_KEY_LEN] = {
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		};
		if (ipmap_count(&t->map) < SMTP_TARPIT_MAX_ENTRIES)
			return NULL;
		n = ipmap_get(&t->map, overflow);
		if (n == NULL)
			return NULL;
	}
	e = IPMAP_ENTRY(n, struct tarpit_entry, node);
	if (now - e->last_ms > t->conf.window_ms) {
		e->failures = 0;	/* quiet for a whole window: a fresh start */
	}
	return e;
}

bool smtp_tarpit_blocked(struct smtp_tarpit *t, const struct sockaddr_storage *peer, int64_t now_ms)
{
	uint8_t key[IPMAP_KEY_LEN];
	struct tarpit_entry *e;

	if (t->conf.limit == 0)
		return false;
	key_of(peer, key);
	e = lookup(t, key, now_ms);
	return e != NULL && e->failures >= t->conf.limit;
}

int64_t smtp_tarpit_failed(struct smtp_tarpit *t, const struct sockaddr_storage *peer,
			   int64_t now_ms, bool *block)
{
	uint8_t key[IPMAP_KEY_LEN];
	struct tarpit_entry *e;
	int64_t delay;

	key_of(peer, key);
	e = lookup(t, key, now_ms);
	if (e == NULL) {
		e = XNEW(struct tarpit_entry);
		if (ipmap_count(&t->map) >= SMTP_TARPIT_MAX_ENTRIES)
			memset(e->node.addr, 0xff, IPMAP_KEY_LEN);	/* the shared overflow entry */
		else
			memcpy(e->node.addr, key, IPMAP_KEY_LEN);
		ipmap_insert(&t->map, &e->node);
	}
	if (e->failures < UINT32_MAX)
		e->failures++;
	e->last_ms = now_ms;
	*block = t->conf.limit > 0 && e->failures >= t->conf.limit;
	/* delay * 2^(failures-1), capped; the shift stops before it can overflow. */
	delay = t->conf.delay_ms;
	for (uint32_t i = 1; i < e->failures && delay < t->conf.max_delay_ms; i++)
		delay *= 2;
	if (delay > t->conf.max_delay_ms)
		delay = t->conf.max_delay_ms;
	return delay;
}

struct sweep_ctx {
	int64_t now, window;
};

/* sweep_one - free an entry whose last failure is older than the window. */
static bool sweep_one(void *arg, struct ipmap_node *n)
{
	struct sweep_ctx *c = arg;
	struct tarpit_entry *e = IPMAP_ENTRY(n, struct tarpit_entry, node);

	if (c->now - e->last_ms <= c->window)
		return false;
	free(e);
	return true;
}

void smtp_tarpit_sweep(struct smtp_tarpit *t, int64_t now_ms)
{
	struct sweep_ctx c = { now_ms, t->conf.window_ms };

	ipmap_sweep(&t->map, sweep_one, &c);
}

size_t smtp_tarpit_count(const struct smtp_tarpit *t)
{
	return ipmap_count(&t->map);
}
