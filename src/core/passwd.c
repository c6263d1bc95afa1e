/*
 * passwd.c - the "user:crypt-hash" password file (see passwd.h)
 *
 * Loaded whole, checked line by line, kept as a string map from user to
 * hash. The map is never changed after passwd_db_load returns, which is
 * what lets several pool threads verify at once. Memory is freed with the
 * database (passwd_db_free); the hashes are wiped first, as a courtesy to
 * core dumps.
 */
#include "core/passwd.h"

#include <crypt.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/mem.h"
#include "core/strmap.h"

struct passwd_db {
	struct strmap *users;	/* user -> heap copy of the hash */
	char *dummy;		/* a hash of the file's first method, for unknown users */
	size_t n;
};

/* user_ok - a user name we can match: printable, no blank, no colon. */
static bool user_ok(const char *u, size_t n)
{
	if (n == 0 || n > PASSWD_USER_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];

		if (c <= 0x20 || c == 0x7f || c == ':')
			return false;
	}
	return true;
}

/* hash_problem - why a hash cannot be used, or NULL when libxcrypt takes it as current. */
static const char *hash_problem(const char *h)
{
	if (h[0] != '$')
		return "the hash is not in crypt(3) \"$id$...\" form (make one with mkpasswd)";
	for (const char *p = h; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == ':' || (unsigned char)*p >= 0x7f)
			return "the hash holds a blank, a colon or a non-ASCII byte";
	switch (crypt_checksalt(h)) {
	case CRYPT_SALT_OK:
		return NULL;
	case CRYPT_SALT_METHOD_LEGACY:
	case CRYPT_SALT_METHOD_DISABLED:
		return "the hash method is legacy or disabled; use yescrypt ($y$) or SHA-512 ($6$)";
	case CRYPT_SALT_TOO_CHEAP:
		return "the hash is too cheap (raise its cost)";
	default:
		return "the hash is not valid for crypt(3)";
	}
}

static void free_hash(void *ctx, const char *key, void *value)
{
	char *h = value;

	(void)ctx;
	(void)key;
	explicit_bzero(h, strlen(h));
	free(h);
}

void passwd_db_free(struct passwd_db *db)
{
	if (db == NULL)
		return;
	strmap_each(db->users, free_hash, NULL);
	strmap_free(db->users);
	free(db->dummy);
	free(db);
}

size_t passwd_db_count(const struct passwd_db *db)
{
	return db->n;
}

/* read_all - the file into buf (NUL-terminated); 0 or a negative errno, -EFBIG past the cap. */
static int read_all(const char *path, struct str *buf)
{
	FILE *f = fopen(path, "re");
	char chunk[8192];
	size_t got;
	int rc = 0;

	struct stat st;

	if (f == NULL)
		return -errno;
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
		/* A FIFO or device could block the load or never end. */
		fclose(f);
		return -EINVAL;
	}
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf->len + got > PASSWD_FILE_MAX) {
			rc = -EFBIG;
			break;
		}
		str_append(buf, chunk, got);
	}
	if (rc == 0 && ferror(f))
		rc = -EIO;
	fclose(f);
	return rc;
}

/* load_line - one line of the file into db; false with err filled. */
static bool load_line(struct passwd_db *db, const char *path, unsigned lineno, const char *p,
		      size_t n, struct str *err)
{
	const char *why = NULL;
	size_t i = 0;

	if (n > 0 && p[n - 1] == '\r')
		n--;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i == n || p[i] == '#')
		return true;
	if (n > PASSWD_LINE_MAX) {
		str_appendf(err, "%s:%u: line longer than %u bytes", path, lineno, PASSWD_LINE_MAX);
		return false;
	}
	if (memchr(p, '\0', n) != NULL) {
		str_appendf(err, "%s:%u: NUL byte in the line", path, lineno);
		return false;
	}
	const char *colon = memchr(p, ':', n);
	if (colon == NULL) {
		str_appendf(err, "%s:%u: expected \"user:hash\", found no colon", path, lineno);
		return false;
	}
	size_t ulen = (size_t)(colon - p);
	if (!user_ok(p, ulen)) {
		str_appendf(err, "%s:%u: bad user name (1 to %u printable bytes, no blank or colon)",
			    path, lineno, PASSWD_USER_MAX);
		return false;
	}
	char *user = xstrndup(p, ulen);
	char *hash = xstrndup(colon + 1, n - ulen - 1);

	/* Trailing blanks after the hash are an editor's doing, not part of it. */
	for (size_t k = strlen(hash); k > 0 && (hash[k - 1] == ' ' || hash[k - 1] == '\t'); k--)
		hash[k - 1] = '\0';
	if (hash[0] == '\0')
		why = "empty hash (an account without a password is not allowed)";
	else
		why = hash_problem(hash);
	if (why == NULL && strmap_get(db->users, user) != NULL)
		why = "duplicate user";
	if (why != NULL) {
		str_appendf(err, "%s:%u: user \"%s\": %s", path, lineno, user, why);
		free(user);
		free_hash(NULL, NULL, hash);
		return false;
	}
	if (db->dummy == NULL)
		db->dummy = xstrdup(hash);
	strmap_put(db->users, user, hash);
	db->n++;
	free(user);
	return true;
}

struct passwd_db *passwd_db_load(const char *path, struct str *err)
{
	struct str buf = STR_INIT;
	struct passwd_db *db;
	int rc = read_all(path, &buf);

	if (rc < 0) {
		if (rc == -EFBIG)
			str_appendf(err, "%s: password file larger than %u bytes", path, PASSWD_FILE_MAX);
		else if (rc == -EINVAL)
			str_appendf(err, "%s: not a regular file", path);
		else
			str_appendf(err, "%s: cannot read password file: %s", path, strerror(-rc));
		str_free(&buf);
		return NULL;
	}
	db = XNEW(struct passwd_db);
	db->users = strmap_new();
	const char *p = buf.s ? buf.s : "";
	const char *end = p + buf.len;
	unsigned lineno = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		lineno++;
		if (!load_line(db, path, lineno, p, n, err)) {
			passwd_db_free(db);
			db = NULL;
			break;
		}
		p += n + (nl != NULL);
	}
	if (buf.s)
		explicit_bzero(buf.s, buf.len);
	str_free(&buf);
	return db;
}

/* same - constant-time equality of two NUL-terminated strings of known hash form. */
static bool same(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = (unsigned char)(la != lb);

	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

enum passwd_result passwd_db_verify(const struct passwd_db *db, const char *user,
				    const char *pass, size_t pass_len)
{
	const char *hash = strmap_get(db->users, user);
	const char *setting = hash ? hash : db->dummy;
	bool ok = false;

	if (setting != NULL) {
		struct crypt_data *cd = xcalloc(1, sizeof(*cd));
		/* A password with a NUL in it cannot be any password: still pay the cost. */
		const char *out = crypt_rn(pass, setting, cd, (int)sizeof(*cd));

		ok = hash != NULL && out != NULL && out[0] != '*' && strlen(pass) == pass_len &&
		     same(out, hash);
		explicit_bzero(cd, sizeof(*cd));
		free(cd);
	}
	if (hash == NULL)
		return PASSWD_NO_USER;
	return ok ? PASSWD_OK : PASSWD_BAD;
}
