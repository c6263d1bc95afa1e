/*
 * passwd.h - a password file of "user:crypt-hash" lines, checked with crypt(3)
 *
 * The file holds one account per line, "user:hash", where hash is what
 * crypt(3) of libxcrypt produces: yescrypt ("$y$...", Debian's default,
 * what `mkpasswd` and `openssl passwd -6` style tools make) or SHA-512
 * ("$6$..."); any method libxcrypt calls current is taken, legacy ones
 * (DES, MD5, ...) are refused. Lines starting with "#" and blank lines
 * are skipped; a trailing CR (a file edited on Windows) is ignored.
 *
 * Failure: passwd_db_load refuses the whole file at the first bad line
 * with "path:line: reason" (never echoing the hash), or "path: reason"
 * when it cannot be read. Nothing here logs.
 *
 * Ownership: built by one thread, immutable afterwards, so any number of
 * threads may call passwd_db_verify at once (crypt_rn keeps its state on
 * the caller's stack). passwd_db_verify is slow on purpose (a yescrypt
 * check costs milliseconds): never call it on an event loop.
 */
#ifndef IMPETUS_CORE_PASSWD_H
#define IMPETUS_CORE_PASSWD_H

#include <stddef.h>

#include "core/str.h"

#define PASSWD_FILE_MAX (16u << 20)	/* bytes: a bigger file is refused */
#define PASSWD_LINE_MAX 1024		/* bytes per line, CRLF excluded */
#define PASSWD_USER_MAX 255		/* bytes of a user name */

struct passwd_db;

enum passwd_result {
	PASSWD_OK,		/* the password matches */
	PASSWD_BAD,		/* known user, wrong password */
	PASSWD_NO_USER,		/* no such user (checked against a dummy hash all the same) */
};

/* passwd_db_load - read and check path. NULL with err appended ("path:line: ...") on failure. */
struct passwd_db *passwd_db_load(const char *path, struct str *err);
void passwd_db_free(struct passwd_db *db);
size_t passwd_db_count(const struct passwd_db *db);

/*
 * passwd_db_verify - whether pass is user's password. An unknown user
 * costs one hash computation too, so timing does not tell which names
 * exist. Any thread; slow (see the file header).
 */
enum passwd_result passwd_db_verify(const struct passwd_db *db, const char *user,
				    const char *pass, size_t pass_len);

#endif
