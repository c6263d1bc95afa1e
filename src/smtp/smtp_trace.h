/*
 * smtp_trace.h - the switch of SMTP state-change tracing (`trace smtp`)
 *
 * Tracing writes each state change of an SMTP session (and each command
 * line, credentials masked) to the paniclog. IMPETUS_TRACE in the
 * environment sets it at start ("smtp": inbound sessions, "smtpc": both
 * directions, as before); the console's `trace smtp on|off [IP]` changes
 * it at run time, for every session or only those whose peer (the client
 * of an inbound session, the server of an outbound one) is IP.
 *
 * Threads: the switch is set from the scheduler (the console) and read by
 * every I/O loop at each state change. The mode is one atomic word, so
 * the common case (tracing off) costs one relaxed load; the peer filter
 * sits behind a mutex taken only while a filter is on. A session sees a
 * change from its next state change on.
 */
#ifndef IMPETUS_SMTP_SMTP_TRACE_H
#define IMPETUS_SMTP_SMTP_TRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/str.h"

#define SMTP_TRACE_IN  0x1u	/* inbound sessions (smtp_server_session.c) */
#define SMTP_TRACE_OUT 0x2u	/* outbound sessions (smtp_client_session.c) */

/* smtp_trace_init - read IMPETUS_TRACE once, before any loop runs (idempotent). */
void smtp_trace_init(void);
/*
 * smtp_trace_set - trace the directions in mask (0: off) for every peer,
 * or, with ip (text, IPv4 or IPv6) only for that peer. Returns 0, or -1
 * when ip is not an IP address (nothing changed). Any thread.
 */
int smtp_trace_set(unsigned mask, const char *ip);
/* smtp_trace_describe - the directions on and the filter ("" for any peer) into *mask and ip. */
void smtp_trace_describe(unsigned *mask, struct str *ip);
/* smtp_trace_in - whether to trace an inbound session whose client is peer. */
bool smtp_trace_in(const struct sockaddr *peer);
/* smtp_trace_out - whether to trace an outbound session at server address ip (text; may be ""). */
bool smtp_trace_out(const char *ip);

#endif
