/*
 * fsutil.c - file-system helpers (see fsutil.h)
 */
#include "core/fsutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/mem.h"

int fs_mkdir_p(const char *dir, mode_t mode)
{
	char *path = xstrdup(dir);
	int rc = 0;

	/* Create each prefix in turn; EEXIST on the way is fine. */
	for (char *p = path + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			*p = '\0';
			if (mkdir(path, mode) < 0 && errno != EEXIST) {
				rc = -errno;
				break;
			}
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	free(path);
	return rc;
}
