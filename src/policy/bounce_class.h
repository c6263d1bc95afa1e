/*
 * bounce_class.h - bounce classification (Momentum's classification codes)
 *
 * bounce_classify maps a failed delivery's reply (SMTP code, RFC 3463
 * enhanced status, reply text) to one of the classification codes of
 * shared/REFERENCE.md, which the bouncelog records and operators act on
 * (10 Invalid Recipient: drop the address; 51 Spam Block: look at the IP's
 * reputation; ...). The rules are one ordered table in bounce_class.c and
 * each is documented in docs/bounces.md.
 *
 * Code 30 (Generic Bounce: No RCPT) is never returned: only the caller
 * knows that no recipient of the transaction was accepted, and sets it.
 *
 * Modules take part through the classify hook (impetus/hooks.h) and
 * register classes with imp_bounce_class_register: bounce_classify_conf
 * runs them.
 *
 * Thread safety: bounce_classify and the lookups may be called from any
 * thread. bounce_class_register takes a lock; strings it returns (names,
 * descriptions) stay valid for the life of the process.
 */
#ifndef IMPETUS_POLICY_BOUNCE_CLASS_H
#define IMPETUS_POLICY_BOUNCE_CLASS_H

/* The built-in classes (REFERENCE.md "Bounce classification codes"). */
enum bounce_class_code {
	BOUNCE_UNDETERMINED = 1,
	BOUNCE_INVALID_RECIPIENT = 10,
	BOUNCE_SOFT = 20,
	BOUNCE_DNS_FAILURE = 21,
	BOUNCE_MAILBOX_FULL = 22,
	BOUNCE_TOO_LARGE = 23,
	BOUNCE_TIMEOUT = 24,
	BOUNCE_ADMIN_FAILURE = 25,
	BOUNCE_GENERIC_NO_RCPT = 30,
	BOUNCE_GENERIC = 40,
	BOUNCE_MAIL_BLOCK = 50,
	BOUNCE_SPAM_BLOCK = 51,
	BOUNCE_SPAM_CONTENT = 52,
	BOUNCE_PROHIBITED_ATTACHMENT = 53,
	BOUNCE_RELAY_DENIED = 54,
	BOUNCE_AUTO_REPLY = 60,
	BOUNCE_TRANSIENT = 70,
	BOUNCE_SUBSCRIBE = 80,
	BOUNCE_UNSUBSCRIBE = 90,
	BOUNCE_CHALLENGE_RESPONSE = 100,
};

/*
 * bounce_classify - the classification code for a reply. code is the SMTP
 * reply code (0 when there was none: a local error, an expiry, or text
 * from an out-of-band message); status the enhanced status code ("5.1.1")
 * or NULL/"" to take it from the text; text the reply text, with or
 * without the leading code, or NULL. Never fails: 1 (Undetermined) when
 * nothing at all is known.
 */
int bounce_classify(int code, const char *status, const char *text);

/*
 * bounce_classify_rule - bounce_classify, and in *rule (when not NULL)
 * the matching rule's label as docs/bounces.md lists it ("R7 null MX or
 * DNS text"), for tracing and tests.
 */
int bounce_classify_rule(int code, const char *status, const char *text,
			 const char **rule);

/*
 * bounce_classify_conf - the classification of conf's generation: off
 * (Bounce_Classification = false) every failure is 1 (Undetermined);
 * else the classify hook's subscribers in order, the first answer > 0
 * deciding (the built-in rules of bounce_classify are one, at
 * IMP_ORDER_BUILTIN); without a generation (conf NULL or none attached)
 * bounce_classify alone. domain is the routing domain ("" or NULL when
 * none). Any thread.
 */
struct conf;
struct api_gen;
int bounce_classify_conf(const struct conf *conf, int code, const char *status,
			 const char *text, const char *domain);

/* bounce_class_builtins_register - the rule table as a classify subscriber of g. */
void bounce_class_builtins_register(struct api_gen *g);

/* bounce_class_name - "Invalid Recipient" etc., NULL for an unknown code. */
const char *bounce_class_name(int code);

/* bounce_class_description - one sentence, NULL for an unknown code. */
const char *bounce_class_description(int code);

/*
 * bounce_class_category - "Hard", "Soft", "Block", "Admin" or
 * "Undetermined" for the built-in classes; NULL for registered or unknown.
 */
const char *bounce_class_category(int code);

/*
 * bounce_class_register - add a class (a module's or the configuration's).
 * The strings are copied. Returns 0, or 0 again when the very same class
 * is registered twice (configuration reloads); -EEXIST when the code is
 * taken by a different class (built-in codes included); -EINVAL for a
 * code < 1, an empty name or control characters.
 */
int bounce_class_register(int code, const char *name, const char *desc);

#endif
