/*
 * id.h - unique, time-sortable identifiers for messages, batches, connections
 *
 * An id is a 64-bit count of microseconds since the Unix epoch, made
 * strictly increasing within the process by an atomic "max(last + 1, now)".
 * Unique across restarts as long as the clock does not step back past ids
 * already issued; id_observe() lets recovery raise the floor to the largest
 * id found in the spool, which covers a restart after a clock step.
 * Text form: 16 upper-case hex digits, so string order is time order.
 * Any thread may call these.
 */
#ifndef IMPETUS_CORE_ID_H
#define IMPETUS_CORE_ID_H

#include <stdbool.h>
#include <stdint.h>

#define ID_TEXT_LEN 16
#define ID_BUF_SIZE (ID_TEXT_LEN + 1)

typedef uint64_t impetus_id;

impetus_id id_next(void);
/* id_observe - ensure later ids are greater than id. */
void id_observe(impetus_id id);
/* id_format - write the 16-digit text form plus NUL into buf; returns buf. */
char *id_format(impetus_id id, char buf[ID_BUF_SIZE]);
/* id_parse - parse the text form; false when s is not exactly one id. */
bool id_parse(const char *s, impetus_id *out);

#endif
