/*
 * fsutil.h - small file-system helpers shared by the spool, logs and tools
 */
#ifndef IMPETUS_CORE_FSUTIL_H
#define IMPETUS_CORE_FSUTIL_H

#include <sys/types.h>

/* fs_mkdir_p - create dir and any missing parents. 0 or -errno. */
int fs_mkdir_p(const char *dir, mode_t mode);

#endif
