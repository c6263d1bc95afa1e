/*
 * spool_reader.h - reading message bodies from segment files, any thread
 *
 * A table of read-only segment fds, so delivery does not open a file per
 * message. Readers hold the read side of a rwlock for the length of their
 * pread; the spool thread takes the write side to close the fd of a
 * segment it removed, so an fd is never closed under a reader. The table
 * is capped; beyond the cap a read opens and closes the file itself.
 * Fails with -errno (ENOENT when the segment is gone, EIO when the file is
 * shorter than the location says).
 */
#ifndef IMPETUS_SPOOL_SPOOL_READER_H
#define IMPETUS_SPOOL_SPOOL_READER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "message/envelope.h"

struct spool_reader {
	int dirfd;			/* borrowed from the spool */
	pthread_rwlock_t lock;
	struct spool_reader_fd {
		uint64_t seq;
		int fd;
	} *fds;				/* sorted by seq */
	size_t nfds;
	_Atomic uint64_t oldest_seq;	/* segments below are gone: never cache them */
};

void spool_reader_init(struct spool_reader *r, int dirfd);
/* spool_reader_fini - close every cached fd; no reader may be running. */
void spool_reader_fini(struct spool_reader *r);
/* spool_reader_read - append the body at loc to out. Any thread. Returns 0 or -errno. */
int spool_reader_read(struct spool_reader *r, const struct envelope_loc *loc, struct str *out);
/*
 * spool_reader_forget - segment seq was removed (always the oldest): close
 * its fd and never cache it again. Spool thread.
 */
void spool_reader_forget(struct spool_reader *r, uint64_t seq);

#endif
