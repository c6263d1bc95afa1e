/*
 * fuzz_whq.c - a webhook's backlog directory with any content (src/events/whq.c)
 *
 * Byte 0 picks the layout: bit 0 puts the magic in front of the input
 * (else the input is the whole file), bit 1 writes a cursor file from
 * bytes 1-2, bit 2 cuts the rest into two segments at a point given by
 * byte 3. The rest is written as segment 1 (and 2) in a scratch directory
 * on tmpfs ($IMPETUS_FUZZ_TMPDIR, default /dev/shm), then:
 *
 *   - whq_parse on the raw bytes returns a prefix within them, and parsing
 *     that prefix again gives the same prefix and count;
 *   - whq_open succeeds, whatever the files hold;
 *   - reading the backlog in batches of 3 and acknowledging each returns
 *     exactly the events whq_open counted, each batch a JSON-array frame
 *     "[...]" of 1..3 records within WHQ_RECORD_MAX bytes each;
 *   - once all is acknowledged, a reopen finds no event, and an event
 *     appended then is read back as written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "events/whq.h"

static char dir[300];

static void empty_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char p[600];
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
}

static void remove_dir(void)
{
	empty_dir();
	rmdir(dir);
}

static void write_file(const char *name, const void *p, size_t n, bool magic)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	MUST(fd >= 0);
	if (magic)
		MUST(write(fd, WHQ_MAGIC, WHQ_MAGIC_LEN) == WHQ_MAGIC_LEN);
	MUST(n == 0 || write(fd, p, n) == (ssize_t)n);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir[0] == '\0') {
		const char *parent = getenv("IMPETUS_FUZZ_TMPDIR");
		if (parent == NULL || parent[0] == '\0' || strlen(parent) > 200)
			parent = "/dev/shm";
		snprintf(dir, sizeof(dir), "%s/impetus-fuzz-whq.%d", parent, (int)getpid());
		MUST(mkdir(dir, 0700) == 0 || errno == EEXIST);
		atexit(remove_dir);
	}
	if (size < 4)
		return 0;
	uint8_t flags = data[0];
	bool magic = flags & 1, cursor = flags & 2, split = flags & 4;
	unsigned coff = (unsigned)data[1] | (unsigned)data[2] << 8;
	size_t cut = split ? (size_t)data[3] * 4 : 0;
	data += 4;
	size -= 4;

	/* The parser alone. */
	size_t cnt, cnt2;
	size_t valid = whq_parse(data, size, NULL, NULL, &cnt);
	MUST(valid <= size);
	MUST(whq_parse(data, valid, NULL, NULL, &cnt2) == valid && cnt2 == cnt);
	MUST(cnt * WHQ_HEADER <= valid);

	empty_dir();
	if (split && cut < size) {
		write_file("0000000000000001.seg", data, cut, magic);
		write_file("0000000000000002.seg", data + cut, size - cut, magic);
	} else {
		write_file("0000000000000001.seg", data, size, magic);
	}
	if (cursor) {
		char c[64];
		int n = snprintf(c, sizeof(c), "%u %u\n", 1 + (coff >> 15), coff & 0x7FFF);
		write_file("cursor", c, (size_t)n, false);
	}

	struct whq q;
	struct str err = STR_INIT, body = STR_INIT;
	MUST(whq_open(&q, dir, &err) == 0);
	uint64_t counted = q.events, total = 0;
	for (int guard = 0; guard < 100000; guard++) {
		size_t n;
		struct whq_pos end;
		uint64_t bytes;

		str_clear(&body);
		MUST(whq_read(&q, 3, &body, &n, &end, &bytes, &err) == 0);
		MUST(body.len >= 2 && body.s[0] == '[' && body.s[body.len - 1] == ']');
		MUST(n <= 3);
		MUST(bytes >= n * WHQ_HEADER && bytes <= n * (WHQ_HEADER + WHQ_RECORD_MAX));
		if (n == 0)
			break;
		total += n;
		MUST(whq_ack(&q, end, n, bytes, &err) == 0);
	}
	MUST(total == counted);
	MUST(q.events == 0);
	whq_close(&q);

	MUST(whq_open(&q, dir, &err) == 0);
	MUST(q.events == 0);
	MUST(whq_append(&q, "{\"e\":1}", 7));
	MUST(whq_flush(&q, &err) == 0);
	size_t n;
	struct whq_pos end;
	uint64_t bytes;
	str_clear(&body);
	MUST(whq_read(&q, 3, &body, &n, &end, &bytes, &err) == 0);
	MUST(n == 1 && strcmp(str_cstr(&body), "[{\"e\":1}]") == 0);
	whq_close(&q);
	str_free(&body);
	str_free(&err);
	return 0;
}
