/*
 * slow_start.c - few connections to a destination while it is new or failing
 * (module slow_start, a singleton)
 *
 * A connection_goal subscriber. The built-in goal opens one connection
 * per ready batch, up to Max_Outbound_Connections: fifty messages to a
 * domain never seen before open fifty connections at once, which is how
 * a new sending IP gets itself throttled or blocked. slow_start caps the
 * goal of each (binding, domain) queue by how long it has been known:
 *
 *     cap  = initial + step * floor(elapsed / interval)
 *     goal = min(goal so far, cap)
 *
 * where elapsed runs from the first time the queue asked for a goal, or
 * from its latest failure: while a queue reports failed connection
 * attempts (recent_failures > 0, the manager resets it on the first
 * success) the ramp starts again from `initial` (restart_on_failure).
 * A destination not asked about for `forget` is new again and its entry
 * is freed, so a million domains seen once do not stay in memory.
 *
 * Ownership. The table of destinations is the scheduler thread's: the
 * hook, the sweep timer, init and fini all run there. It is one table for
 * the module, not one per instance, so a reload (a new generation, a new
 * instance) does not restart every ramp: each instance takes a reference
 * in init and drops it in fini; the last one frees the table. The options
 * are read per instance, so a reload that changes them applies at once.
 *
 * Failures: none at run time. When memory for a new entry cannot be had,
 * the goal passes through uncapped for that call (failing open: the
 * destination's own limits still hold).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/impetus.h>

static const struct imp_option options[] = {
	{ "initial", IMP_OPT_INT, "1", 1, 100000, false,
	  "connections a new or failing destination may have" },
	{ "step", IMP_OPT_INT, "1", 0, 100000, false,
	  "connections added for each interval the destination has been known" },
	{ "interval", IMP_OPT_INTERVAL, "60", 1, 86400, false,
	  "how long each step takes" },
	{ "forget", IMP_OPT_INTERVAL, "3600", 60, 604800, false,
	  "a destination not seen for this long is new again" },
	{ "restart_on_failure", IMP_OPT_BOOL, "true", 0, 0, false,
	  "failed connection attempts restart the ramp from initial" },
};

/* One (binding, domain) queue the hook has seen. */
struct ss_dest {
	struct ss_dest *next;		/* hash chain */
	uint64_t hash;
	uint64_t start_ms;		/* the ramp's origin */
	uint64_t seen_ms;		/* the last time the hook asked */
	uint32_t last_cap;		/* for the debug log: the cap last answered */
	char key[];			/* binding, NUL, domain, NUL */
};

/* The table shared by the module's instances: scheduler thread (file header). */
struct ss_table {
	struct ss_dest **buckets;
	size_t nbuckets, count;
	int refs;			/* instances alive */
	struct imp_timer *sweep;	/* periodic */
	uint64_t forget_ms;		/* the newest instance's forget */
	struct imp_instance *owner;	/* the newest instance, for the sweep's debug log */
};

static struct ss_table table;

struct ss_conf {
	struct imp_instance *inst;
	uint32_t initial, step;
	uint64_t interval_ms;
	bool restart_on_failure;
};

/* ------------------------------------------------------------------ */
/* the table                                                           */

/* fnv1a - FNV-1a over the binding, a separator and the domain. */
static uint64_t fnv1a(const char *binding, const char *domain)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *p = binding; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0xFF) * 1099511628211ULL;	/* no binding/domain split collides */
	for (const char *p = domain; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

/* grow - double the buckets when the table is fuller than one entry each. */
static void grow(void)
{
	size_t n = table.nbuckets ? table.nbuckets * 2 : 64;
	struct ss_dest **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return;		/* longer chains, still correct */
	for (size_t i = 0; i < table.nbuckets; i++) {
		struct ss_dest *d = table.buckets[i];
		while (d) {
			struct ss_dest *next = d->next;
			d->next = b[d->hash & (n - 1)];
			b[d->hash & (n - 1)] = d;
			d = next;
		}
	}
	free(table.buckets);
	table.buckets = b;
	table.nbuckets = n;
}

/* lookup - the entry of (binding, domain), made when missing; NULL without memory. */
static struct ss_dest *lookup(const char *binding, const char *domain, uint64_t now,
			      bool *created)
{
	uint64_t h = fnv1a(binding, domain);
	size_t lb = strlen(binding), ld = strlen(domain);

	*created = false;
	if (table.nbuckets) {
		for (struct ss_dest *d = table.buckets[h & (table.nbuckets - 1)]; d; d = d->next)
			if (d->hash == h && strcmp(d->key, binding) == 0 &&
			    strcmp(d->key + lb + 1, domain) == 0)
				return d;
	}
	if (table.count >= table.nbuckets)
		grow();
	if (table.nbuckets == 0)
		return NULL;
	struct ss_dest *d = malloc(sizeof(*d) + lb + ld + 2);
	if (d == NULL)
		return NULL;
	d->hash = h;
	d->start_ms = now;
	d->seen_ms = now;
	d->last_cap = 0;
	memcpy(d->key, binding, lb + 1);
	memcpy(d->key + lb + 1, domain, ld + 1);
	d->next = table.buckets[h & (table.nbuckets - 1)];
	table.buckets[h & (table.nbuckets - 1)] = d;
	table.count++;
	*created = true;
	return d;
}

/* sweep - free the entries not seen for forget (the periodic timer). */
static void sweep(void *arg)
{
	uint64_t now = imp_now_ms();
	size_t freed = 0;

	(void)arg;
	for (size_t i = 0; i < table.nbuckets; i++) {
		struct ss_dest **pp = &table.buckets[i];
		while (*pp) {
			struct ss_dest *d = *pp;
			if (now - d->seen_ms >= table.forget_ms) {
				*pp = d->next;
				free(d);
				freed++;
			} else {
				pp = &d->next;
			}
		}
	}
	table.count -= freed;
	if (freed && table.owner)
		imp_log_debug(table.owner, 2, "forgot=%zu destinations remaining=%zu", freed,
			      table.count);
}

static void table_free(void)
{
	for (size_t i = 0; i < table.nbuckets; i++) {
		struct ss_dest *d = table.buckets[i];
		while (d) {
			struct ss_dest *next = d->next;
			free(d);
			d = next;
		}
	}
	free(table.buckets);
	memset(&table, 0, sizeof(table));
}

/* ------------------------------------------------------------------ */
/* the hook                                                            */

/* ss_goal - cap the goal by the destination's age (see the file header). */
static uint32_t ss_goal(void *closure, const struct imp_goal_input *in, uint32_t goal)
{
	const struct ss_conf *c = closure;
	uint64_t now = imp_now_ms();
	bool created;
	struct ss_dest *d = lookup(in->binding, in->domain, now, &created);

	if (d == NULL)
		return goal;
	d->seen_ms = now;
	if (created)
		imp_log_debug(c->inst, 1, "new destination domain=%s binding=%s cap=%" PRIu32,
			      in->domain, in->binding[0] ? in->binding : "default", c->initial);
	if (c->restart_on_failure && in->recent_failures > 0) {
		if (d->last_cap > c->initial)
			imp_log_debug(c->inst, 1, "failing destination domain=%s binding=%s "
				      "failures=%" PRIu32 " cap=%" PRIu32, in->domain,
				      in->binding[0] ? in->binding : "default",
				      in->recent_failures, c->initial);
		d->start_ms = now;
	}
	/* The ramp, saturating: a step of 0 keeps the cap at initial for ever. */
	uint64_t steps = (now - d->start_ms) / c->interval_ms;
	uint64_t cap = c->initial + (uint64_t)c->step * steps;
	if (cap > UINT32_MAX)
		cap = UINT32_MAX;
	if (goal > cap)
		imp_log_debug(c->inst, 3, "domain=%s binding=%s goal=%" PRIu32 " capped=%" PRIu64,
			      in->domain, in->binding[0] ? in->binding : "default", goal, cap);
	d->last_cap = (uint32_t)cap;
	return goal < cap ? goal : (uint32_t)cap;
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

static int ss_init(struct imp_instance *inst, struct imp_error *err)
{
	struct ss_conf *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		imp_error_set(err, "out of memory");
		return -1;
	}
	c->inst = inst;
	c->initial = (uint32_t)imp_option_int(inst, "initial");
	c->step = (uint32_t)imp_option_int(inst, "step");
	c->interval_ms = (uint64_t)imp_option_int(inst, "interval") * 1000;
	c->restart_on_failure = imp_option_bool(inst, "restart_on_failure");
	uint64_t forget_ms = (uint64_t)imp_option_int(inst, "forget") * 1000;

	if (table.refs == 0) {
		/* Sweep often enough that an entry outlives forget by at most a quarter of it. */
		table.sweep = imp_timer_add(forget_ms / 4, true, sweep, NULL);
		if (table.sweep == NULL) {
			free(c);
			imp_error_set(err, "cannot start the sweep timer (init not on a loop thread)");
			return -1;
		}
	}
	if (imp_hook_connection_goal(inst, ss_goal, c, IMP_ORDER_DEFAULT) < 0) {
		if (table.refs == 0) {
			imp_timer_cancel(table.sweep);
			table.sweep = NULL;
		}
		free(c);
		imp_error_set(err, "cannot subscribe to connection_goal");
		return -1;
	}
	table.refs++;
	table.forget_ms = forget_ms;
	table.owner = inst;
	imp_instance_set_data(inst, c);
	imp_log_debug(inst, 1, "initial=%" PRIu32 " step=%" PRIu32 " interval_ms=%" PRIu64
		      " known_destinations=%zu", c->initial, c->step, c->interval_ms, table.count);
	return 0;
}

static void ss_fini(struct imp_instance *inst)
{
	struct ss_conf *c = imp_instance_data(inst);

	if (table.owner == inst)
		table.owner = NULL;
	if (--table.refs == 0) {
		imp_timer_cancel(table.sweep);
		table_free();
	}
	free(c);
}

IMP_MODULE_DEFINE(.name = "slow_start", .version = "1.0",
		  .description = "cap the connections of new or failing destinations, growing with time",
		  .flags = IMP_MODULE_SINGLETON,
		  .options = options, .noptions = sizeof(options) / sizeof(options[0]),
		  .init = ss_init, .fini = ss_fini);
