/*
 * smtp_tarpit.h - failed SMTP AUTH attempts per client address, and what
 * they cost the next attempt
 *
 * Password guessing must not scale: every failed AUTH from an address
 * holds its 535 back for a delay that doubles with each failure
 * (Auth_Tarpit_Delay, 2x, 4x, ... up to Auth_Tarpit_Max_Delay), and
 * after Auth_Failure_Limit failures AUTH from that address gets 421 4.7.0
 * and the connection closes, over all its connections, until
 * Auth_Failure_Window passes without a failure. An IPv6 client is counted
 * by its /64 (one host usually owns the whole /64, and would otherwise
 * have 2^64 fresh budgets); IPv4 by its address.
 *
 * The table belongs to the scheduler thread (the SMTP server manager
 * creates it and calls everything here on that thread); sessions reach
 * it only through the messages of src/msgs/msgs.def (SMTP_AUTH_CHECK,
 * SMTP_AUTH_VERIFIED). It holds at most SMTP_TARPIT_MAX_ENTRIES
 * addresses; past that new addresses share one entry, so many addresses
 * cannot buy many budgets (an attacker with that many addresses then
 * slows down everyone new, which is the safe side). The server's tick
 * forgets entries whose window has passed. Nothing here fails.
 */
#ifndef IMPETUS_SMTP_SMTP_TARPIT_H
#define IMPETUS_SMTP_SMTP_TARPIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define SMTP_TARPIT_MAX_ENTRIES 65536

struct conf;
struct smtp_tarpit;

/* The options, cached from the generation (smtp_tarpit_set_conf). */
struct smtp_tarpit_conf {
	uint32_t limit;		/* failures before 421; 0 = none */
	int64_t window_ms;
	int64_t delay_ms;	/* first failure's delay; 0 = none */
	int64_t max_delay_ms;
};

struct smtp_tarpit *smtp_tarpit_new(void);
void smtp_tarpit_free(struct smtp_tarpit *t);
/* smtp_tarpit_set_conf - take the Auth_* options of a new generation. */
void smtp_tarpit_set_conf(struct smtp_tarpit *t, const struct conf *c);
/* smtp_tarpit_configure - the same with the values given (unit tests). */
void smtp_tarpit_configure(struct smtp_tarpit *t, const struct smtp_tarpit_conf *tc);

/* smtp_tarpit_blocked - whether AUTH from peer is refused outright (421) at now_ms. */
bool smtp_tarpit_blocked(struct smtp_tarpit *t, const struct sockaddr_storage *peer,
			 int64_t now_ms);
/*
 * smtp_tarpit_failed - count one failure of peer at now_ms. Returns how
 * long its 535 waits, in ms; *block is set when this failure reaches the
 * limit (answer 421 and close instead).
 */
int64_t smtp_tarpit_failed(struct smtp_tarpit *t, const struct sockaddr_storage *peer,
			   int64_t now_ms, bool *block);
/* smtp_tarpit_sweep - forget addresses whose window has passed (the server's tick). */
void smtp_tarpit_sweep(struct smtp_tarpit *t, int64_t now_ms);
/* smtp_tarpit_count - addresses remembered (tests, console). */
size_t smtp_tarpit_count(const struct smtp_tarpit *t);

#endif
