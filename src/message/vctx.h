/*
 * vctx.h - a validation context: one ordered string dictionary
 *
 * The validation context of the module API (impetus/session.h) is two of
 * these per inbound session: the connection's, owned by the session, and
 * the message's, owned by the envelope (message/envelope.h), which the
 * spool stores with the message (docs/spool.md, "MESSAGE") so a restart
 * and the delivery side see it. Entries keep their insertion order (what
 * imp_message_vctx_each promises); a set of an existing key keeps its
 * place. The limits are those of session.h: IMP_VCTX_KEY_MAX,
 * IMP_VCTX_VALUE_MAX, IMP_VCTX_ENTRIES_MAX.
 *
 * Ownership: a vctx has the owner of whatever holds it (one thread at a
 * time); no lock. Lookups are a linear scan: at most 256 short keys, and
 * most contexts hold a handful. Errors are negative errno values; memory
 * exhaustion aborts (core/mem.h).
 */
#ifndef IMPETUS_MESSAGE_VCTX_H
#define IMPETUS_MESSAGE_VCTX_H

#include <stdbool.h>
#include <stddef.h>

struct vctx_entry {
	char *key;
	char *value;
};

struct vctx {
	struct vctx_entry *v;
	size_t n, cap;
};

/* vctx_new - an empty context. */
/*
 * VCTX_KEY_RETENTION - the message-scope key where imp_inject stores a
 * message's retention (decimal seconds), so it travels in the spool with
 * the message and the queue applies it after a restart too.
 */
#define VCTX_KEY_RETENTION "impetus.retention"

struct vctx *vctx_new(void);
/* vctx_free - release c and its strings; NULL is a no-op. */
void vctx_free(struct vctx *c);
/* vctx_clear - remove every entry. */
void vctx_clear(struct vctx *c);
/* vctx_dup - a deep copy (NULL for NULL). */
struct vctx *vctx_dup(const struct vctx *c);
/* vctx_key_ok - key is non-empty, at most IMP_VCTX_KEY_MAX bytes, printable ASCII without space. */
bool vctx_key_ok(const char *key);
/*
 * vctx_set - set key to value (NULL removes key; removing an absent key
 * is 0). 0, -EINVAL (bad key, value longer than IMP_VCTX_VALUE_MAX) or
 * -E2BIG (IMP_VCTX_ENTRIES_MAX entries already).
 */
int vctx_set(struct vctx *c, const char *key, const char *value);
/* vctx_get - the value of key, or NULL (c may be NULL). */
const char *vctx_get(const struct vctx *c, const char *key);
/* vctx_count - entries (0 for NULL). */
size_t vctx_count(const struct vctx *c);

#endif
