/*
 * test_message_view.c - struct imp_message over an envelope (message_view.c),
 * the validation context (vctx.c) and its MESSAGE record field (spool_record.c)
 *
 * Table-free but exhaustive for the edge cases: header search, add,
 * prepend and delete on a message with a body, without a body, without
 * headers, with folded fields; -E2BIG when the header section does not
 * end in the in-memory prefix of a streamed message; -EPERM / NULL once
 * the message is not being received; the vctx limits; the vctx through
 * a spool record encode/decode, and a record written without one
 * decoding exactly as before.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/message.h>
#include <impetus/session.h>

#include <unistd.h>

#include "check.h"
#include "message/envelope.h"
#include "message/message_view.h"
#include "message/vctx.h"
#include "spool/spool_record.h"

/* make - an envelope holding bytes, with a view on it. */
static struct envelope *make(const char *bytes, struct imp_message *m, bool receiving)
{
	struct envelope *env = envelope_new();

	env->id = 42;
	env->sender = strdup("s@example.org");
	env->client_ip = strdup("192.0.2.1");
	env->helo = strdup("h");
	env->protocol = strdup("esmtp");
	env->binding_group = strdup("");
	env->binding = strdup("b1");
	str_appends(&env->body, bytes);
	message_view_init(m, env, receiving);
	return env;
}

static void done(struct envelope *env, struct imp_message *m)
{
	message_view_done(m);
	envelope_free(env);
}

static void test_read(void)
{
	struct imp_message m;
	struct envelope *env = make("Received: one\r\nSubject:  Hi\r\n\tthere\r\nreceived: two\r\n"
				    "\r\nSubject: not a header\r\n", &m, true);

	CHECK_INTEQ(imp_header_count(&m, "RECEIVED"), 2);
	CHECK_INTEQ(imp_header_count(&m, "subject"), 1);
	CHECK_INTEQ(imp_header_count(&m, "X-None"), 0);
	CHECK_STREQ(imp_header_get(&m, "received", 1), "two");
	/* Folding kept, the white space after the colon not. */
	CHECK_STREQ(imp_header_get(&m, "Subject", 0), "Hi\r\n\tthere");
	CHECK(imp_header_get(&m, "Subject", 1) == NULL);
	CHECK_STREQ(imp_message_binding(&m), "b1");
	CHECK_STREQ(imp_message_sender(&m), "s@example.org");
	CHECK_INTEQ(imp_message_id(&m), 42);
	size_t len = 0;
	char *blk = imp_message_header_block(&m, &len);
	CHECK_INTEQ(len, strlen("Received: one\r\nSubject:  Hi\r\n\tthere\r\nreceived: two\r\n"));
	CHECK(blk && strncmp(blk, "Received: one\r\n", 15) == 0);
	free(blk);
	CHECK(imp_message_bytes(&m, &len) != NULL && len == env->body.len);
	done(env, &m);
}

static void test_edit(void)
{
	struct imp_message m;
	struct envelope *env = make("A: 1\r\nB: 2\r\nA: 3\r\n\r\nbody\r\n", &m, true);

	CHECK_INTEQ(imp_header_add(&m, "X-End", "e"), 0);
	CHECK_INTEQ(imp_header_prepend(&m, "X-Top", "t"), 0);
	CHECK_INTEQ(imp_header_delete(&m, "a", 1), 0);
	CHECK_INTEQ(imp_header_delete(&m, "a", 1), -ENOENT);
	CHECK_STREQ(env->body.s, "X-Top: t\r\nA: 1\r\nB: 2\r\nX-End: e\r\n\r\nbody\r\n");
	/* Bad names and values. */
	CHECK_INTEQ(imp_header_add(&m, "Bad Name", "v"), -EINVAL);
	CHECK_INTEQ(imp_header_add(&m, "Bad:", "v"), -EINVAL);
	CHECK_INTEQ(imp_header_add(&m, "", "v"), -EINVAL);
	CHECK_INTEQ(imp_header_add(&m, "X", "a\r\nInjected: yes"), -EINVAL);
	CHECK_INTEQ(imp_header_prepend(&m, "X", "a\nb"), -EINVAL);
	CHECK_STREQ(env->body.s, "X-Top: t\r\nA: 1\r\nB: 2\r\nX-End: e\r\n\r\nbody\r\n");
	/* A long value is folded. */
	char longv[300];
	for (size_t i = 0; i < sizeof(longv) - 1; i++)
		longv[i] = (i % 10 == 9) ? ' ' : 'x';
	longv[sizeof(longv) - 1] = '\0';
	CHECK_INTEQ(imp_header_add(&m, "X-Long", longv), 0);
	CHECK(strstr(env->body.s, "\r\n\t") != NULL || strstr(env->body.s, "\r\n ") != NULL);
	CHECK_INTEQ(imp_header_count(&m, "X-Long"), 1);
	done(env, &m);

	/* No body, no empty line: the fields are added at the end. */
	env = make("A: 1\r\n", &m, true);
	CHECK_INTEQ(imp_header_add(&m, "B", "2"), 0);
	CHECK_STREQ(env->body.s, "A: 1\r\nB: 2\r\n");
	CHECK_INTEQ(imp_header_delete(&m, "A", 0), 0);
	CHECK_INTEQ(imp_header_delete(&m, "B", 0), 0);
	CHECK_INTEQ(env->body.len, 0);
	CHECK_INTEQ(imp_header_add(&m, "C", "3"), 0);
	CHECK_STREQ(env->body.s, "C: 3\r\n");
	done(env, &m);

	/* A message that starts with its body: a new field goes before it. */
	env = make("\r\nbody\r\n", &m, true);
	CHECK_INTEQ(imp_header_count(&m, "body"), 0);
	CHECK_INTEQ(imp_header_add(&m, "D", "4"), 0);
	CHECK_STREQ(env->body.s, "D: 4\r\n\r\nbody\r\n");
	done(env, &m);
}

static void test_streamed_and_spooled(void)
{
	struct imp_message m;
	/* The header section reaches the end of the prefix and the rest is in a file. */
	struct envelope *env = make("A: 1\r\nB: 2\r\n", &m, true);

	env->file.fd = 0;	/* not owned: envelope_free leaves it */
	env->file.len = 100;
	CHECK_INTEQ(imp_header_add(&m, "X", "1"), -E2BIG);
	CHECK_INTEQ(imp_header_delete(&m, "A", 0), -E2BIG);
	CHECK(imp_header_get(&m, "A", 0) == NULL);
	CHECK(imp_message_header_block(&m, NULL) == NULL);
	CHECK(imp_message_bytes(&m, NULL) == NULL);
	CHECK_INTEQ(imp_message_size(&m), 12 + 100);
	env->file.fd = -1;
	done(env, &m);

	/* It ends inside the prefix: editable even though a file follows. */
	env = make("A: 1\r\n\r\nbody", &m, true);
	env->file.fd = 0;
	env->file.len = 100;
	CHECK_INTEQ(imp_header_add(&m, "X", "1"), 0);
	CHECK(imp_message_bytes(&m, NULL) == NULL);
	env->file.fd = -1;
	done(env, &m);

	/* Spooled: envelope and vctx only. */
	env = make("A: 1\r\n\r\n", &m, false);
	env->loc.length = 777;
	CHECK_INTEQ(imp_header_add(&m, "X", "1"), -EPERM);
	CHECK_INTEQ(imp_header_count(&m, "A"), 0);
	CHECK(imp_message_header_block(&m, NULL) == NULL);
	CHECK_INTEQ(imp_message_vctx_set(&m, "k", "v"), -EPERM);
	CHECK_INTEQ(imp_message_size(&m), 777);
	done(env, &m);
}

/* API 1.2: a value the module folded is kept byte for byte; a bad fold is refused. */
static void test_prefolded(void)
{
	struct imp_message m;
	struct envelope *env = make("A: 1\r\n\r\nbody\r\n", &m, true);

	CHECK_INTEQ(imp_header_prepend(&m, "DKIM-Signature", "v=1; a=x;\r\n\tb=abc\r\n def"), 0);
	CHECK_STREQ(env->body.s, "DKIM-Signature: v=1; a=x;\r\n\tb=abc\r\n def\r\nA: 1\r\n\r\nbody\r\n");
	CHECK_INTEQ(imp_header_add(&m, "X", "a\r\n b"), 0);
	CHECK(strstr(env->body.s, "A: 1\r\nX: a\r\n b\r\n\r\n") != NULL);
	/* a line break not followed by white space would start a new field */
	CHECK_INTEQ(imp_header_add(&m, "X", "a\r\nInjected: yes"), -EINVAL);
	CHECK_INTEQ(imp_header_add(&m, "X", "a\r\n\r\n b"), -EINVAL);	/* empty line */
	CHECK_INTEQ(imp_header_add(&m, "X", "a\r\n \r\n b"), -EINVAL);	/* blank line */
	CHECK_INTEQ(imp_header_add(&m, "X", "a\r\n "), -EINVAL);		/* ends blank */
	CHECK_INTEQ(imp_header_add(&m, "X", "a\n b"), -EINVAL);		/* bare LF */
	CHECK_INTEQ(imp_header_add(&m, "X", "a\r b"), -EINVAL);		/* bare CR */
	char longv[1100];
	memset(longv, 'x', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	memcpy(longv + 10, "\r\n ", 3);
	CHECK_INTEQ(imp_header_add(&m, "X", longv), -EINVAL);		/* a line over 998 */
	CHECK_INTEQ(imp_header_count(&m, "X"), 1);
	done(env, &m);
}

/* API 1.2: imp_message_copy reads the part in a file too. */
static void test_copy(void)
{
	struct imp_message m;
	struct envelope *env = make("A: 1\r\n\r\nmemory ", &m, true);
	char path[] = "/tmp/impetus-mv-XXXXXX";
	int fd = mkstemp(path);
	size_t len = 0;
	char *c;

	CHECK(fd >= 0);
	unlink(path);
	CHECK(write(fd, "junk-and-file part\r\n", 21) == 21);
	env->file.fd = fd;
	env->file.off = 9;	/* after "junk-and-" */
	env->file.len = 12;
	CHECK(imp_message_bytes(&m, NULL) == NULL);
	c = imp_message_copy(&m, &len);
	CHECK(c != NULL);
	CHECK_INTEQ(len, 15 + 12);
	CHECK_STREQ(c, "A: 1\r\n\r\nmemory file part\r\n");
	free(c);
	/* the file shorter than its record says: an error, not garbage */
	env->file.len = 100;
	errno = 0;
	CHECK(imp_message_copy(&m, &len) == NULL);
	CHECK(errno == EIO);
	env->file.fd = -1;
	close(fd);
	/* all in memory: the same bytes as imp_message_bytes */
	c = imp_message_copy(&m, &len);
	CHECK(c != NULL && len == 15 && memcmp(c, "A: 1\r\n\r\nmemory ", 15) == 0);
	free(c);
	done(env, &m);
	/* spooled: none */
	env = make("A: 1\r\n\r\n", &m, false);
	CHECK(imp_message_copy(&m, &len) == NULL);
	done(env, &m);
}

static void each_cb(void *arg, const char *k, const char *v)
{
	struct str *out = arg;

	str_appendf(out, "%s=%s;", k, v);
}

static void test_vctx(void)
{
	struct vctx *c = vctx_new();
	char big[IMP_VCTX_VALUE_MAX + 2];

	CHECK_INTEQ(vctx_set(c, "a", "1"), 0);
	CHECK_INTEQ(vctx_set(c, "b", "2"), 0);
	CHECK_INTEQ(vctx_set(c, "a", "3"), 0);	/* keeps its place */
	CHECK_STREQ(vctx_get(c, "a"), "3");
	CHECK_INTEQ(vctx_set(c, "", "x"), -EINVAL);
	CHECK_INTEQ(vctx_set(c, "has space", "x"), -EINVAL);
	memset(big, 'k', IMP_VCTX_KEY_MAX + 1);
	big[IMP_VCTX_KEY_MAX + 1] = '\0';
	CHECK_INTEQ(vctx_set(c, big, "x"), -EINVAL);
	big[IMP_VCTX_KEY_MAX] = '\0';
	CHECK_INTEQ(vctx_set(c, big, "x"), 0);
	CHECK_INTEQ(vctx_set(c, big, NULL), 0);
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_INTEQ(vctx_set(c, "v", big), -EINVAL);
	big[IMP_VCTX_VALUE_MAX] = '\0';
	CHECK_INTEQ(vctx_set(c, "v", big), 0);
	CHECK_INTEQ(vctx_set(c, "v", NULL), 0);
	CHECK_INTEQ(vctx_set(c, "absent", NULL), 0);
	for (int i = 0; vctx_count(c) < IMP_VCTX_ENTRIES_MAX; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		CHECK_INTEQ(vctx_set(c, k, "x"), 0);
	}
	CHECK_INTEQ(vctx_set(c, "onemore", "x"), -E2BIG);
	CHECK_INTEQ(vctx_set(c, "a", "changed"), 0);	/* replacing is not growing */
	vctx_free(c);

	/* Through a message view, in insertion order. */
	struct imp_message m;
	struct envelope *env = make("A: 1\r\n\r\n", &m, true);
	struct str out = STR_INIT;

	CHECK(imp_message_vctx_get(&m, "x") == NULL);
	CHECK_INTEQ(imp_message_vctx_set(&m, "x", NULL), 0);
	CHECK_INTEQ(imp_message_vctx_set(&m, "z", "1"), 0);
	CHECK_INTEQ(imp_message_vctx_set(&m, "y", "2"), 0);
	imp_message_vctx_each(&m, each_cb, &out);
	CHECK_STREQ(out.s, "z=1;y=2;");
	str_free(&out);
	done(env, &m);
}

/* roundtrip - encode env as a MESSAGE record and decode it back. */
static struct envelope *roundtrip(const struct envelope *env, struct str *rec)
{
	struct spool_rec r;
	uint64_t need = 0;
	const char *why = NULL;

	str_clear(rec);
	CHECK(spool_rec_encode_message(rec, env) > 0);
	/* The caller writes the body after the envelope (spool_record.h). */
	str_append(rec, env->body.s, env->body.len);
	long long n = spool_rec_decode(rec->s, rec->len, true, &r, &need, &why);
	CHECK_INTEQ(n, (long long)rec->len);
	if (n <= 0) {
		fprintf(stderr, "decode: %s\n", why ? why : "short");
		return NULL;
	}
	return r.msg;
}

static void test_spool_record(void)
{
	struct imp_message m;
	struct envelope *env = make("A: 1\r\n\r\nbody\r\n", &m, true);
	struct str rec = STR_INIT, plain = STR_INIT;

	env->nrcpt = 1;
	env->rcpts = calloc(1, sizeof(*env->rcpts));
	env->rcpts[0].addr = strdup("r@example.com");

	/* Without a vctx: exactly the old bytes (flag clear, nothing after the recipients). */
	struct envelope *back = roundtrip(env, &plain);
	CHECK(back && back->vctx == NULL);
	CHECK_INTEQ(plain.s[16 + 4 + 8 + 8 + 4 + 13 + 4 + 1 + 1], 0);	/* the flags byte */
	envelope_free(back);

	CHECK_INTEQ(imp_message_vctx_set(&m, "first", "a"), 0);
	CHECK_INTEQ(imp_message_vctx_set(&m, "second", ""), 0);
	back = roundtrip(env, &rec);
	CHECK(back != NULL);
	if (back) {
		CHECK_INTEQ(vctx_count(back->vctx), 2);
		CHECK_STREQ(back->vctx->v[0].key, "first");
		CHECK_STREQ(back->vctx->v[0].value, "a");
		CHECK_STREQ(back->vctx->v[1].key, "second");
		CHECK_STREQ(back->vctx->v[1].value, "");
		CHECK_STREQ(back->rcpts[0].addr, "r@example.com");
	}
	envelope_free(back);

	/* A context with a bad key in it (not one a session could write) is corrupt. */
	struct spool_rec r;
	const char *why = NULL;
	uint64_t need;
	char *k = memmem(rec.s, rec.len, "second", 6);
	CHECK(k != NULL);
	if (k) {
		k[2] = ' ';
		spool_rec_reseal((uint8_t *)rec.s, rec.len);
		CHECK(spool_rec_decode(rec.s, rec.len, true, &r, &need, &why) == SPOOL_REC_BAD);
		CHECK(why != NULL && strstr(why, "validation context") != NULL);
		why = NULL;
		CHECK(spool_rec_decode(rec.s, rec.len, false, &r, &need, &why) == SPOOL_REC_BAD);
	}
	str_free(&rec);
	str_free(&plain);
	done(env, &m);
}

int main(void)
{
	test_read();
	test_edit();
	test_streamed_and_spooled();
	test_prefolded();
	test_copy();
	test_vctx();
	test_spool_record();
	return check_done();
}
