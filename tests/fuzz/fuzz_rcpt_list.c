/*
 * fuzz_rcpt_list.c - libFuzzer target for rcpt_filter's list file parser
 *
 * modules/rcpt_filter/rcpt_list.c reads an operator's file of "key action
 * [text]" lines (docs/modules/rcpt_filter.md) on an IO pool thread of the
 * daemon, at every change of the file; a crash there takes the daemon
 * down. The input is the file's bytes. Besides memory safety and UB it
 * checks, for a list that parses:
 *   - keys are sorted, unique, lower-case, printable, with an '@' that
 *     has something after it; texts are NULL or within the reply's limits;
 *   - every key finds its own entry, and an address made of any local
 *     part and an "@domain" key's domain finds that entry unless the
 *     address itself is listed;
 *   - parsing is deterministic (the same bytes again give the same list);
 * and for a list that does not: the error names the file.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_rcpt_list -runs=1000000
 */
#include "../../modules/rcpt_filter/rcpt_list.c"

#include "fuzz.h"

/* parse - the bytes as a list file, or NULL with err. */
static struct rcpt_list *parse(const uint8_t *data, size_t size, char *err, size_t errsize)
{
	/* fmemopen of 0 bytes fails on some libcs: a 1-byte buffer read as empty. */
	static const char empty[1];
	FILE *fp = fmemopen(size ? (void *)data : (void *)empty, size ? size : 1, "r");
	MUST(fp != NULL);
	if (size == 0)
		fgetc(fp);
	struct rcpt_list *l = rcpt_list_read(fp, "list.txt", err, errsize);
	fclose(fp);
	return l;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	struct rcpt_list *l = parse(data, size, err, sizeof(err));

	if (l == NULL) {
		MUST(strncmp(err, "list.txt", 8) == 0 || strncmp(err, "cannot read list.txt", 20) == 0);
		return 0;
	}
	for (size_t i = 0; i < l->n; i++) {
		const struct rcpt_entry *e = &l->v[i];
		const char *at = strrchr(e->key, '@');

		MUST(at != NULL && at[1] != '\0');
		for (const char *p = e->key; *p; p++)
			MUST(*p > 32 && *p < 127 && !(*p >= 'A' && *p <= 'Z'));
		if (i > 0)
			MUST(strcmp(l->v[i - 1].key, e->key) < 0);
		MUST(e->action == RCPT_REJECT || e->action == RCPT_TEMPFAIL);
		MUST(e->text == NULL || (*e->text != '\0' && rcpt_list_text_ok(e->text)));
		MUST(rcpt_list_lookup(l, e->key) == e);
		if (e->key[0] == '@') {
			size_t n = strlen(e->key);
			char *addr = malloc(n + 2);
			MUST(addr != NULL);
			addr[0] = 'z';
			memcpy(addr + 1, e->key, n + 1);
			const struct rcpt_entry *hit = rcpt_list_lookup(l, addr);
			MUST(hit != NULL);
			MUST(hit == e || strcmp(hit->key, addr) == 0);
			free(addr);
		}
	}

	char err2[512];
	struct rcpt_list *again = parse(data, size, err2, sizeof(err2));
	MUST(again != NULL && again->n == l->n);
	for (size_t i = 0; i < l->n; i++) {
		MUST(strcmp(again->v[i].key, l->v[i].key) == 0);
		MUST(again->v[i].action == l->v[i].action);
		MUST((again->v[i].text == NULL) == (l->v[i].text == NULL));
		MUST(l->v[i].text == NULL || strcmp(again->v[i].text, l->v[i].text) == 0);
	}
	rcpt_list_free(again);
	rcpt_list_free(l);
	return 0;
}
