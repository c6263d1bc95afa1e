/*
 * test_ipmap.c - src/core/ipmap.c: the IP-keyed map
 *
 * Checked against a plain array as the reference: many IPv4 and IPv6
 * keys (IPv4 in its mapped form, as sockaddr_ip16 gives them) inserted,
 * found, removed in a scrambled order, with the bucket array growing and
 * shrinking under it; sweeps that keep some nodes, free others inside the
 * callback and visit each node exactly once; intrusive entries whose
 * pointers stay valid across growth. ASan (the sanitizer suite) catches
 * a node touched after its entry was freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/ipmap.h"

#define N 20000

struct entry {
	int tag;
	struct ipmap_node node;	/* not first: IPMAP_ENTRY must do its sum */
	int value;
	bool visited;
};

/* make_key - key i: even i an IPv4-mapped address, odd i an IPv6 one in one /64. */
static void make_key(int i, uint8_t key[IPMAP_KEY_LEN])
{
	memset(key, 0, IPMAP_KEY_LEN);
	if (i % 2 == 0) {
		key[10] = key[11] = 0xff;
		key[12] = 10;
		key[13] = (uint8_t)(i >> 16);
		key[14] = (uint8_t)(i >> 8);
		key[15] = (uint8_t)i;
	} else {
		key[0] = 0x20;
		key[1] = 0x01;
		key[2] = 0x0d;
		key[3] = 0xb8;
		key[14] = (uint8_t)(i >> 8);
		key[15] = (uint8_t)i;
		key[13] = (uint8_t)(i >> 16);
	}
}

static struct entry *entries[N];

/* find - the entry of key i, or NULL. */
static struct entry *find(struct ipmap *m, int i)
{
	uint8_t key[IPMAP_KEY_LEN];

	make_key(i, key);
	struct ipmap_node *n = ipmap_get(m, key);
	return n ? IPMAP_ENTRY(n, struct entry, node) : NULL;
}

/* test_basic - empty map, one key, v4 and v6 keys distinct. */
static void test_basic(void)
{
	struct ipmap m;
	uint8_t key[IPMAP_KEY_LEN];
	struct entry a = { .value = 1 }, b = { .value = 2 };

	ipmap_init(&m);
	make_key(0, key);
	CHECK(ipmap_get(&m, key) == NULL);
	CHECK_INTEQ(ipmap_count(&m), 0);
	memcpy(a.node.addr, key, IPMAP_KEY_LEN);
	ipmap_insert(&m, &a.node);
	make_key(1, b.node.addr);
	ipmap_insert(&m, &b.node);
	CHECK_INTEQ(ipmap_count(&m), 2);
	CHECK(find(&m, 0) == &a);
	CHECK(find(&m, 1) == &b);
	CHECK(find(&m, 2) == NULL);
	ipmap_remove(&m, &a.node);
	CHECK(find(&m, 0) == NULL);
	CHECK(find(&m, 1) == &b);
	ipmap_remove(&m, &b.node);
	CHECK_INTEQ(ipmap_count(&m), 0);
	ipmap_destroy(&m);
	ipmap_destroy(&m);	/* twice is harmless */
}

/* test_many - N keys in, pointers stable through growth, removed scrambled, shrink. */
static void test_many(void)
{
	struct ipmap m;
	int order[N];

	ipmap_init(&m);
	for (int i = 0; i < N; i++) {
		entries[i] = calloc(1, sizeof(struct entry));
		entries[i]->value = i;
		make_key(i, entries[i]->node.addr);
		ipmap_insert(&m, &entries[i]->node);
	}
	CHECK_INTEQ(ipmap_count(&m), N);
	CHECK(m.nbuckets >= N);		/* grew: load at most one per bucket */
	int bad = 0;
	for (int i = 0; i < N; i++)
		bad += find(&m, i) != entries[i];
	CHECK_INTEQ(bad, 0);

	/* Remove all but 10 in a scrambled order; the rest stay found. */
	for (int i = 0; i < N; i++)
		order[i] = i;
	srand(6);
	for (int i = N - 1; i > 0; i--) {
		int j = rand() % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int k = 0; k < N - 10; k++) {
		int i = order[k];
		ipmap_remove(&m, &entries[i]->node);
		free(entries[i]);
		entries[i] = NULL;
	}
	CHECK_INTEQ(ipmap_count(&m), 10);
	CHECK(m.nbuckets <= 128);	/* shrank back */
	bad = 0;
	for (int i = 0; i < N; i++)
		bad += find(&m, i) != entries[i];
	CHECK_INTEQ(bad, 0);
	for (int k = N - 10; k < N; k++) {
		ipmap_remove(&m, &entries[order[k]]->node);
		free(entries[order[k]]);
		entries[order[k]] = NULL;
	}
	CHECK_INTEQ(ipmap_count(&m), 0);
	ipmap_destroy(&m);
}

/* sweep_odd - visit once; free and unlink odd values. */
static bool sweep_odd(void *ctx, struct ipmap_node *n)
{
	struct entry *e = IPMAP_ENTRY(n, struct entry, node);
	int *visits = ctx;

	CHECK(!e->visited);
	e->visited = true;
	(*visits)++;
	if (e->value % 2) {
		entries[e->value] = NULL;
		free(e);
		return true;
	}
	return false;
}

/* sweep_all - free everything. */
static bool sweep_all(void *ctx, struct ipmap_node *n)
{
	struct entry *e = IPMAP_ENTRY(n, struct entry, node);

	entries[e->value] = NULL;
	free(e);
	return true;
}

/* test_sweep - every node once; removal while sweeping; the rest intact. */
static void test_sweep(void)
{
	struct ipmap m;
	int visits = 0;

	ipmap_init(&m);
	for (int i = 0; i < 5000; i++) {
		entries[i] = calloc(1, sizeof(struct entry));
		entries[i]->value = i;
		make_key(i, entries[i]->node.addr);
		ipmap_insert(&m, &entries[i]->node);
	}
	ipmap_sweep(&m, sweep_odd, &visits);
	CHECK_INTEQ(visits, 5000);
	CHECK_INTEQ(ipmap_count(&m), 2500);
	int bad = 0;
	for (int i = 0; i < 5000; i++)
		bad += find(&m, i) != entries[i] || (i % 2 == 0) != (entries[i] != NULL);
	CHECK_INTEQ(bad, 0);
	ipmap_sweep(&m, sweep_all, NULL);
	CHECK_INTEQ(ipmap_count(&m), 0);
	CHECK(find(&m, 0) == NULL);
	ipmap_destroy(&m);
}

int main(void)
{
	test_basic();
	test_many();
	test_sweep();
	return check_done();
}
