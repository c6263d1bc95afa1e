/*
 * whq.c - a webhook's durable backlog (see whq.h for the format, the
 * crash behaviour and who owns what)
 *
 * Everything here runs on the events thread and may block on the disk:
 * that thread serves no mail. Segment files are read with pread, whole
 * at open (at most WHQ_SEGMENT_SIZE plus one record) and record by record
 * afterwards, so memory stays at one batch.
 */
#include "events/whq.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/fsutil.h"
#include "core/mem.h"

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

size_t whq_parse(const void *buf, size_t len, void (*fn)(void *arg, const char *p, size_t n),
		 void *arg, size_t *count)
{
	const unsigned char *b = buf;
	size_t off = 0, k = 0;

	while (len - off >= WHQ_HEADER) {
		uint32_t n = get_le32(b + off), crc = get_le32(b + off + 4);

		if (n > WHQ_RECORD_MAX || len - off - WHQ_HEADER < n)
			break;
		if (crc32c(0, b + off + WHQ_HEADER, n) != crc)
			break;
		if (fn)
			fn(arg, (const char *)b + off + WHQ_HEADER, n);
		off += WHQ_HEADER + n;
		k++;
	}
	if (count)
		*count = k;
	return off;
}

/* seg_path - dir/<seq as 16 hex digits>.seg */
static void seg_path(const struct whq *q, uint64_t seq, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%016" PRIx64 ".seg", q->dir, seq);
}

/* read_whole - the file's bytes (at most max), malloc()ed; -errno. */
static int read_whole(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	*out = NULL;
	*len = 0;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	size_t n = (size_t)st.st_size < max ? (size_t)st.st_size : max;
	char *p = xmalloc(n ? n : 1);
	int rc = n ? fs_pread_all(fd, p, n, 0) : 0;
	close(fd);
	if (rc < 0) {
		free(p);
		return rc;
	}
	*out = p;
	*len = n;
	return 0;
}

/* new_segment - create segment seq with its magic, durable; the tail fd. */
static int new_segment(struct whq *q, uint64_t seq, struct str *err)
{
	char path[4096];
	int fd;

	seg_path(q, seq, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fs_pwrite_all(fd, WHQ_MAGIC, WHQ_MAGIC_LEN, 0) < 0 || fdatasync(fd) < 0) {
		int e = -errno;
		str_appendf(err, "cannot create %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return e ? e : -EIO;
	}
	(void)fs_fsync_dir(q->dir);
	if (q->tail_fd >= 0)
		close(q->tail_fd);
	q->tail_fd = fd;
	q->tail_seq = seq;
	q->tail_size = WHQ_MAGIC_LEN;
	return 0;
}

/* read_cursor - the cursor file, or false when missing or unreadable. */
static bool read_cursor(const struct whq *q, struct whq_pos *pos)
{
	char path[4096], buf[64];
	unsigned long long seq, off;

	snprintf(path, sizeof(path), "%s/cursor", q->dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &seq, &off) != 2)
		return false;
	pos->seq = seq;
	pos->off = off;
	return true;
}

/* write_cursor - replace the cursor file: write, fsync, rename. */
static int write_cursor(const struct whq *q, struct whq_pos pos, struct str *err)
{
	char path[4096], tmp[4096], buf[64];
	int len = snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64 "\n", pos.seq, pos.off);

	snprintf(path, sizeof(path), "%s/cursor", q->dir);
	snprintf(tmp, sizeof(tmp), "%s/cursor.tmp", q->dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fs_pwrite_all(fd, buf, (size_t)len, 0) < 0 || fsync(fd) < 0 ||
	    rename(tmp, path) < 0) {
		int e = -errno;
		str_appendf(err, "cannot write %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return e ? e : -EIO;
	}
	close(fd);
	return 0;
}

/* list_segments - the lowest and highest segment numbers in dir; false when none. */
static bool list_segments(const char *dir, uint64_t *lo, uint64_t *hi)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool any = false;

	if (d == NULL)
		return false;
	while ((de = readdir(d)) != NULL) {
		char *end;
		size_t n = strlen(de->d_name);
		if (n != 20 || strcmp(de->d_name + 16, ".seg") != 0)
			continue;
		errno = 0;
		uint64_t seq = strtoull(de->d_name, &end, 16);
		if (errno || end != de->d_name + 16 || seq == 0)
			continue;
		if (!any || seq < *lo)
			*lo = seq;
		if (!any || seq > *hi)
			*hi = seq;
		any = true;
	}
	closedir(d);
	return any;
}

int whq_open(struct whq *q, const char *dir, struct str *err)
{
	uint64_t lo = 0, hi = 0;
	int rc;

	memset(q, 0, sizeof(*q));
	q->tail_fd = -1;
	q->dir = xstrdup(dir);
	str_init(&q->wbuf);
	rc = fs_mkdir_p(dir, 0700);
	if (rc < 0) {
		str_appendf(err, "cannot create %s: %s", dir, strerror(-rc));
		return rc;
	}
	if (!list_segments(dir, &lo, &hi)) {
		q->head_seq = 1;
		q->cursor = (struct whq_pos){ 1, WHQ_MAGIC_LEN };
		rc = new_segment(q, 1, err);
		if (rc == 0)
			rc = write_cursor(q, q->cursor, err);
		return rc;
	}
	q->head_seq = lo;
	if (!read_cursor(q, &q->cursor) || q->cursor.seq < lo || q->cursor.seq > hi)
		q->cursor = (struct whq_pos){ lo, WHQ_MAGIC_LEN };
	if (q->cursor.off < WHQ_MAGIC_LEN)
		q->cursor.off = WHQ_MAGIC_LEN;
	/* Segments wholly acknowledged (an ack interrupted before its unlinks). */
	for (uint64_t s = lo; s < q->cursor.seq; s++) {
		char path[4096];
		seg_path(q, s, path, sizeof(path));
		(void)unlink(path);
	}
	q->head_seq = q->cursor.seq;
	/* Count what is left, and cut a torn tail back to its last whole record. */
	for (uint64_t s = q->cursor.seq; s <= hi; s++) {
		char path[4096], *buf;
		size_t len, nrec, valid;

		seg_path(q, s, path, sizeof(path));
		rc = read_whole(path, WHQ_SEGMENT_SIZE + WHQ_RECORD_MAX + 2 * WHQ_HEADER, &buf, &len);
		if (rc == -ENOENT)
			continue;
		if (rc < 0) {
			str_appendf(err, "cannot read %s: %s", path, strerror(-rc));
			return rc;
		}
		size_t start = s == q->cursor.seq ? (size_t)q->cursor.off : WHQ_MAGIC_LEN;
		if (len < WHQ_MAGIC_LEN || memcmp(buf, WHQ_MAGIC, WHQ_MAGIC_LEN) != 0) {
			valid = 0;
			nrec = 0;
			if (s != hi)
				q->skipped++;
		} else {
			if (start > len)
				start = len;
			valid = start + whq_parse(buf + start, len - start, NULL, NULL, &nrec);
			if (s != hi && valid < len)
				q->skipped++;
		}
		if (s == q->cursor.seq && q->cursor.off > valid && valid >= WHQ_MAGIC_LEN)
			q->cursor.off = valid;
		free(buf);
		q->events += nrec;
		q->bytes += valid > start ? valid - start : 0;
		if (s != hi)
			continue;
		/* The tail: keep appending to it, from its last whole record. */
		if (valid < WHQ_MAGIC_LEN) {
			q->truncated += len;
			rc = new_segment(q, s, err);
			if (rc < 0)
				return rc;
			break;
		}
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || (valid < len && (ftruncate(fd, (off_t)valid) < 0 || fdatasync(fd) < 0))) {
			int e = -errno;
			str_appendf(err, "cannot repair %s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return e ? e : -EIO;
		}
		q->truncated += len - valid;
		q->tail_fd = fd;
		q->tail_seq = s;
		q->tail_size = valid;
	}
	if (q->tail_fd < 0)
		rc = new_segment(q, hi + 1, err);
	else
		rc = 0;
	/* A cursor past what the tail keeps (cut or recreated) would hide what comes next. */
	if (q->cursor.seq == q->tail_seq && q->cursor.off > q->tail_size)
		q->cursor.off = q->tail_size;
	return rc;
}

void whq_close(struct whq *q)
{
	if (q->tail_fd >= 0)
		close(q->tail_fd);
	q->tail_fd = -1;
	str_free(&q->wbuf);
	free(q->dir);
	q->dir = NULL;
}

bool whq_append(struct whq *q, const char *payload, size_t len)
{
	unsigned char h[WHQ_HEADER];

	if (len > WHQ_RECORD_MAX)
		return false;
	put_le32(h, (uint32_t)len);
	put_le32(h + 4, crc32c(0, payload, len));
	str_append(&q->wbuf, h, sizeof(h));
	str_append(&q->wbuf, payload, len);
	q->wcount++;
	return true;
}

int whq_flush(struct whq *q, struct str *err)
{
	int rc = 0;

	if (q->wbuf.len == 0)
		return 0;
	if (q->tail_size >= WHQ_SEGMENT_SIZE)
		rc = new_segment(q, q->tail_seq + 1, err);
	if (rc == 0) {
		rc = fs_pwrite_all(q->tail_fd, q->wbuf.s, q->wbuf.len, q->tail_size);
		if (rc == 0 && fdatasync(q->tail_fd) < 0)
			rc = -errno;
		if (rc < 0) {
			str_appendf(err, "cannot write segment %016" PRIx64 " of %s: %s", q->tail_seq,
				    q->dir, strerror(-rc));
			/* Whatever part landed is cut off again, so the file stays whole records. */
			if (ftruncate(q->tail_fd, (off_t)q->tail_size) < 0)
				(void)0;
		}
	}
	if (rc == 0) {
		q->tail_size += q->wbuf.len;
		q->events += q->wcount;
		q->bytes += q->wbuf.len;
	}
	str_clear(&q->wbuf);
	q->wcount = 0;
	return rc;
}

int whq_read(struct whq *q, size_t max, struct str *out, size_t *n, struct whq_pos *end,
	     uint64_t *bytes, struct str *err)
{
	struct whq_pos p = q->cursor;
	int fd = -1;
	uint64_t fd_seq = 0, size = 0;
	char *payload = NULL;

	*n = 0;
	*bytes = 0;
	str_appendc(out, '[');
	while (*n < max && p.seq <= q->tail_seq) {
		unsigned char h[WHQ_HEADER];

		if (fd < 0 || fd_seq != p.seq) {
			char path[4096];
			struct stat st;

			if (fd >= 0)
				close(fd);
			seg_path(q, p.seq, path, sizeof(path));
			fd = open(path, O_RDONLY | O_CLOEXEC);
			fd_seq = p.seq;
			if (fd < 0 || fstat(fd, &st) < 0) {
				if (errno != ENOENT) {
					str_appendf(err, "cannot read %s: %s", path, strerror(errno));
					if (fd >= 0)
						close(fd);
					free(payload);
					return -errno;
				}
				if (fd >= 0)
					close(fd);
				fd = -1;
				p = (struct whq_pos){ p.seq + 1, WHQ_MAGIC_LEN };
				continue;
			}
			size = p.seq == q->tail_seq ? q->tail_size : (uint64_t)st.st_size;
			char magic[WHQ_MAGIC_LEN];
			if (fs_pread_all(fd, magic, sizeof(magic), 0) < 0 ||
			    memcmp(magic, WHQ_MAGIC, WHQ_MAGIC_LEN) != 0) {
				/* Not a segment (whq_open counted nothing in it either). */
				if (p.seq == q->tail_seq)
					break;
				q->skipped++;
				p = (struct whq_pos){ p.seq + 1, WHQ_MAGIC_LEN };
				continue;
			}
		}
		if (p.off + WHQ_HEADER > size ||
		    fs_pread_all(fd, h, sizeof(h), p.off) < 0) {
			if (p.seq == q->tail_seq)
				break;
			p = (struct whq_pos){ p.seq + 1, WHQ_MAGIC_LEN };
			continue;
		}
		uint32_t len = get_le32(h), crc = get_le32(h + 4);
		bool ok = len <= WHQ_RECORD_MAX && p.off + WHQ_HEADER + len <= size;
		if (ok) {
			payload = xrealloc(payload, len ? len : 1);
			ok = fs_pread_all(fd, payload, len, p.off + WHQ_HEADER) == 0 &&
			     crc32c(0, payload, len) == crc;
		}
		if (!ok) {
			/* Damage: the rest of this segment is unreadable; on to the next one. */
			q->skipped++;
			if (p.seq == q->tail_seq)
				break;
			p = (struct whq_pos){ p.seq + 1, WHQ_MAGIC_LEN };
			continue;
		}
		if (*n)
			str_appendc(out, ',');
		str_append(out, payload, len);
		p.off += WHQ_HEADER + len;
		*bytes += WHQ_HEADER + len;
		(*n)++;
	}
	str_appendc(out, ']');
	if (fd >= 0)
		close(fd);
	free(payload);
	*end = p;
	return 0;
}

int whq_ack(struct whq *q, struct whq_pos end, size_t n, uint64_t bytes, struct str *err)
{
	int rc = write_cursor(q, end, err);

	if (rc < 0)
		return rc;
	q->cursor = end;
	q->events = q->events > n ? q->events - n : 0;
	q->bytes = q->bytes > bytes ? q->bytes - bytes : 0;
	for (; q->head_seq < end.seq; q->head_seq++) {
		char path[4096];
		seg_path(q, q->head_seq, path, sizeof(path));
		(void)unlink(path);
	}
	return 0;
}
