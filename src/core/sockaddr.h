/*
 * sockaddr.h - socket addresses as text and as 16-byte keys
 *
 * The one place impetus turns a struct sockaddr into text for logs, log
 * fields, configuration canon and replies, and into the 16-byte form the
 * IP-keyed tables and CIDR matching use. Knows nothing about mail.
 *
 * Text forms (sockaddr_format):
 *
 *   family    ip                  full
 *   AF_INET   192.0.2.1           192.0.2.1:25
 *   AF_INET6  2001:db8::1         [2001:db8::1]:25
 *             ::ffff:192.0.2.1    [::ffff:192.0.2.1]:25   (IPv4-mapped: as the kernel gave it)
 *   other     ?                   ?
 *
 * IPv6 is bracketed in the "full" form (RFC 3986 host syntax) so the port
 * cannot be read as one more group of the address; it is the form Listen
 * takes and the configuration prints.
 *
 * Stateless: any thread may call these. Failures: a buffer too small for
 * the text gets as much as fits, always NUL-terminated, and -ENOSPC.
 */
#ifndef IMPETUS_CORE_SOCKADDR_H
#define IMPETUS_CORE_SOCKADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Enough for any "full" text: "[" + 45-byte IPv6 text + "]:65535" + NUL. */
#define SOCKADDR_TEXT_MAX 56
/* Enough for any "ip" text (INET6_ADDRSTRLEN). */
#define SOCKADDR_IP_TEXT_MAX 46
/* The length of a key from sockaddr_ip16. */
#define SOCKADDR_IP16_LEN 16

/*
 * sockaddr_format - the address of sa into ip ("192.0.2.1") and, with
 * its port, into full ("192.0.2.1:25", "[2001:db8::1]:25"); a NULL
 * buffer is not written. Returns 0; -ENOSPC when some text was cut (a
 * buffer of size 0 gets nothing); -EAFNOSUPPORT for a family other than
 * AF_INET/AF_INET6 or a NULL sa (the texts are then "?").
 */
int sockaddr_format(const struct sockaddr *sa, char *ip, size_t iplen, char *full, size_t fulllen);

/*
 * sockaddr_ip16 - the address of sa as 16 bytes: IPv6 as is, IPv4 as
 * the IPv4-mapped ::ffff:a.b.c.d, so 192.0.2.1 over IPv4 and over a
 * dual-stack socket give one key. False (and 16 zero bytes) for other
 * families.
 */
bool sockaddr_ip16(const struct sockaddr *sa, uint8_t out[SOCKADDR_IP16_LEN]);

#endif
