/*
 * queue_memory.c - resident memory of the queue manager per queued recipient
 *
 * Builds a queue (not started: nothing is delivered) and adds N messages of
 * R recipients each, the way spool recovery hands them over (envelope only,
 * no body), then reports the growth of the process's RSS per recipient.
 *
 *   cc ... bench/queue_memory.c (linked with impetus_lib; see docs/PERFORMANCE.md)
 *   ./queue_memory [messages] [recipients-per-message] [domains]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/id.h"
#include "core/mem.h"
#include "message/envelope.h"
#include "queue/queue.h"

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = atol(line + 6);
	if (f)
		fclose(f);
	return kib;
}

int main(int argc, char **argv)
{
	long nmsg = argc > 1 ? atol(argv[1]) : 1000000;
	long nrcpt = argc > 2 ? atol(argv[2]) : 1;
	long ndom = argc > 3 ? atol(argv[3]) : 1000;
	struct str err = STR_INIT;
	struct conf *c = conf_load_string("", "bench", &err);
	struct queue *q = queue_new(c);
	long before = rss_kib();

	for (long i = 0; i < nmsg; i++) {
		struct envelope *m = envelope_new();
		char addr[128];
		m->id = id_next();
		m->received = 1800000000;
		m->sender = xstrdup("newsletter-bounces@sender.example.com");
		m->client_ip = xstrdup("192.0.2.10");
		m->helo = xstrdup("client.example.com");
		m->protocol = xstrdup("esmtp");
		m->binding_group = xstrdup("");
		m->binding = xstrdup("");
		m->nrcpt = (size_t)nrcpt;
		m->rcpts = xcalloc((size_t)nrcpt, sizeof(*m->rcpts));
		for (long r = 0; r < nrcpt; r++) {
			snprintf(addr, sizeof(addr), "user%ld.%ld@domain%ld.example", i, r,
				 (i * nrcpt + r) % ndom);
			m->rcpts[r].addr = xstrdup(addr);
		}
		m->loc.length = 4096;
		queue_recovered(q, m);
	}
	long after = rss_kib();
	long total = nmsg * nrcpt;
	printf("messages=%ld recipients_per_message=%ld domains=%ld recipients=%ld\n", nmsg, nrcpt,
	       ndom, total);
	printf("rss_before_kib=%ld rss_after_kib=%ld growth_mib=%.1f bytes_per_recipient=%.0f\n",
	       before, after, (after - before) / 1024.0, (after - before) * 1024.0 / (double)total);
	queue_free(q);
	conf_unref(c);
	return 0;
}
