/*
 * msgs.c - the table of message kinds (see msgs.h and msgs.def)
 *
 * Immutable after link time; read by any thread. The designated
 * initialisers put each kind at its enum index, so the table cannot drift
 * out of order; the unit test checks that every entry is filled in.
 */
#include "msgs/msgs.h"

const struct loop_kind msgs_kinds[MSGS_COUNT] = {
#define MSG(kind, name_, from_, owners_, handler_) \
	[kind] = { .name = name_, .from = from_, .owners = owners_, .handler = handler_ },
#include "msgs/msgs.def"
};
