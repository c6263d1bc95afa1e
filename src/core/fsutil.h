/*
 * fsutil.h - small file-system helpers shared by the spool, logs and tools
 */
#ifndef IMPETUS_CORE_FSUTIL_H
#define IMPETUS_CORE_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* fs_mkdir_p - create dir and any missing parents. 0 or -errno. */
int fs_mkdir_p(const char *dir, mode_t mode);
/*
 * fs_pread_all - read exactly n bytes at off, across short reads and EINTR.
 * 0, or -errno (-EIO when the file ends first).
 */
int fs_pread_all(int fd, void *p, size_t n, uint64_t off);
/* fs_pwrite_all - write n bytes at off, across partial writes and EINTR. 0 or -errno. */
int fs_pwrite_all(int fd, const void *p, size_t n, uint64_t off);
/*
 * fs_fsync_dir - make the entries of dir (a create, rename or unlink in
 * it) durable. 0 or -errno.
 */
int fs_fsync_dir(const char *dir);

#endif
