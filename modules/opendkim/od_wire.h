/*
 * od_wire.h - the bytes the next hop will receive, for the opendkim signer
 *
 * A signature must cover what the receiver gets, not what the spool
 * holds. Between the two the SMTP client (src/smtp/smtp_client.c,
 * smtpc_body_write) changes three things: a bare CR or bare LF becomes
 * CRLF; a line longer than 998 octets on the wire (a stuffing dot
 * counts) is broken with CRLF SPACE; a message that does not end with a
 * line end gets CRLF. (Its dot-stuffing the receiver undoes.) This is the
 * same transformation, so the signer hashes the received form.
 * tests/unit/test_od_wire.c runs both over the same inputs and fails the
 * day they differ.
 *
 * Pure function, any thread.
 */
#ifndef IMPETUS_MODULES_OD_WIRE_H
#define IMPETUS_MODULES_OD_WIRE_H

#include <stddef.h>

/* Octets of a wire line, CRLF excluded (RFC 5321 4.5.3.1.6; SMTPC_BODY_LINE_MAX). */
#define OD_WIRE_LINE_MAX 998

/*
 * od_wire_view - the received form of msg: NULL when it is msg itself
 * (the common case: nothing to change, no copy), else a malloc()ed copy
 * of *outlen bytes. errno ENOMEM when a copy was needed and failed.
 */
char *od_wire_view(const char *msg, size_t len, size_t *outlen);

#endif
