/*
 * spool_reader.c - cached read-only segment fds and body reads (see spool_reader.h)
 */
#include "spool/spool_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/mem.h"
#include "spool/spool_record.h"

#define FD_CACHE_MAX 256	/* read fds kept open; beyond, open per read */

void spool_reader_init(struct spool_reader *r, int dirfd)
{
	r->dirfd = dirfd;
	pthread_rwlock_init(&r->lock, NULL);
	r->fds = xcalloc(FD_CACHE_MAX, sizeof(*r->fds));
	r->nfds = 0;
	atomic_init(&r->oldest_seq, 0);
}

void spool_reader_fini(struct spool_reader *r)
{
	if (r->fds == NULL)
		return;
	for (size_t i = 0; i < r->nfds; i++)
		close(r->fds[i].fd);
	free(r->fds);
	r->fds = NULL;
	r->nfds = 0;
	pthread_rwlock_destroy(&r->lock);
}

/* find - index of seq in the sorted table, or where it would go. */
static size_t find(const struct spool_reader *r, uint64_t seq)
{
	size_t lo = 0, hi = r->nfds;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->fds[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* pread_body - append len bytes at off of fd to out. */
static int pread_body(int fd, uint64_t off, uint64_t len, struct str *out)
{
	if (len > SPOOL_REC_MAX_PAYLOAD)
		return -EINVAL;
	str_reserve(out, (size_t)len);
	/* -EIO: the file is shorter than the location says. */
	int rc = fs_pread_all(fd, out->s + out->len, (size_t)len, off);
	if (rc < 0)
		return rc;
	out->len += (size_t)len;
	out->s[out->len] = '\0';
	return 0;
}

/*
 * spool_reader_read - a hit reads under the read lock. A miss opens the
 * file by name, reads, then caches the fd unless another reader cached
 * one meanwhile, the table is full, or the segment was removed while we
 * read (an fd of a removed segment would never be closed).
 */
int spool_reader_read(struct spool_reader *r, const struct envelope_loc *loc, struct str *out)
{
	char name[SPOOL_SEG_NAME_SIZE];
	size_t i;
	int fd, rc;

	pthread_rwlock_rdlock(&r->lock);
	i = find(r, loc->segment);
	if (i < r->nfds && r->fds[i].seq == loc->segment) {
		rc = pread_body(r->fds[i].fd, loc->offset, loc->length, out);
		pthread_rwlock_unlock(&r->lock);
		return rc;
	}
	pthread_rwlock_unlock(&r->lock);

	fd = openat(r->dirfd, spool_seg_name(loc->segment, name), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = pread_body(fd, loc->offset, loc->length, out);
	pthread_rwlock_wrlock(&r->lock);
	i = find(r, loc->segment);
	if ((i < r->nfds && r->fds[i].seq == loc->segment) || r->nfds >= FD_CACHE_MAX ||
	    loc->segment < atomic_load(&r->oldest_seq)) {
		close(fd);
	} else {
		memmove(&r->fds[i + 1], &r->fds[i], (r->nfds - i) * sizeof(*r->fds));
		r->fds[i].seq = loc->segment;
		r->fds[i].fd = fd;
		r->nfds++;
	}
	pthread_rwlock_unlock(&r->lock);
	return rc;
}

void spool_reader_forget(struct spool_reader *r, uint64_t seq)
{
	pthread_rwlock_wrlock(&r->lock);
	atomic_store(&r->oldest_seq, seq + 1);
	for (size_t i = 0; i < r->nfds; i++) {
		if (r->fds[i].seq == seq) {
			close(r->fds[i].fd);
			memmove(&r->fds[i], &r->fds[i + 1], (r->nfds - i - 1) * sizeof(*r->fds));
			r->nfds--;
			break;
		}
	}
	pthread_rwlock_unlock(&r->lock);
}
