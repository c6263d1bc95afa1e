/*
 * bounce_class.c - classifying bounces, and the registry of classes
 *
 * Classification is one ordered table of rules; the first rule that
 * matches decides. A rule can ask for a kind of reply (permanent 5xx,
 * transient 4xx, none, local), an enhanced status pattern, and any of a
 * list of phrases found in the text (case-insensitive substrings). The
 * order carries the judgement: specific, unambiguous evidence first
 * (relaying, blocklists, sender problems, DNS, quota, size), then the
 * enhanced status codes, then broad phrases, then a default per kind.
 * docs/bounces.md lists the rules in the same order, by label; change
 * both together.
 *
 * The table and the built-in classes are constant. Registered classes
 * live in a small array behind a mutex; their strings are never freed, so
 * pointers handed out stay valid.
 */
#include "policy/bounce_class.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "api/api.h"
#include "config/config.h"
#include "core/mem.h"

/* How much of a reply text is looked at; phrases that matter come early. */
#define BOUNCE_TEXT_MAX 2048

/* ============================================================ classes */

struct bounce_class {
	int code;
	const char *name;
	const char *desc;
	const char *category;
};

/* Names, descriptions and categories as Momentum documents them. */
static const struct bounce_class builtin[] = {
	{ 1, "Undetermined", "The response text could not be identified.", "Undetermined" },
	{ 10, "Invalid Recipient", "The recipient is invalid.", "Hard" },
	{ 20, "Soft Bounce", "The message soft bounced.", "Soft" },
	{ 21, "DNS Failure", "The message bounced due to a DNS failure.", "Soft" },
	{ 22, "Mailbox Full", "The message bounced due to the remote mailbox being over quota.", "Soft" },
	{ 23, "Too Large", "The message bounced because it was too large for the recipient.", "Soft" },
	{ 24, "Timeout", "The message timed out.", "Soft" },
	{ 25, "Admin Failure", "The message was failed by the configured policies or an administrator.", "Admin" },
	{ 30, "Generic Bounce: No RCPT", "No recipient could be determined for the message.", "Hard" },
	{ 40, "Generic Bounce", "The message failed for unspecified reasons.", "Soft" },
	{ 50, "Mail Block", "The message was blocked by the receiver.", "Block" },
	{ 51, "Spam Block", "The message was blocked by the receiver as coming from a known spam source.", "Block" },
	{ 52, "Spam Content", "The message was blocked by the receiver as spam.", "Block" },
	{ 53, "Prohibited Attachment", "The message was blocked by the receiver because it contained an attachment.", "Block" },
	{ 54, "Relaying Denied", "The message was blocked by the receiver because relaying is not allowed.", "Block" },
	{ 60, "Auto-Reply", "The message is an auto-reply/vacation mail.", "Soft" },
	{ 70, "Transient Failure", "Message transmission has been temporarily delayed.", "Soft" },
	{ 80, "Subscribe", "The message is a subscribe request.", "Admin" },
	{ 90, "Unsubscribe", "The message is an unsubscribe request.", "Hard" },
	{ 100, "Challenge-Response", "The message is a challenge-response probe.", "Soft" },
};
#define NBUILTIN (sizeof(builtin) / sizeof(builtin[0]))

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bounce_class *reg;	/* under reg_lock */
static size_t nreg, reg_cap;		/* under reg_lock */

/* find_class - the class with this code, or NULL (strings stay valid). */
static const struct bounce_class *find_class(int code, struct bounce_class *copy)
{
	for (size_t i = 0; i < NBUILTIN; i++)
		if (builtin[i].code == code)
			return &builtin[i];
	const struct bounce_class *found = NULL;
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < nreg; i++) {
		if (reg[i].code == code) {
			*copy = reg[i];	/* reg may move; its strings do not */
			found = copy;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return found;
}

/* bounce_class_name - the short name of a class (see bounce_class.h). */
const char *bounce_class_name(int code)
{
	struct bounce_class c;
	const struct bounce_class *p = find_class(code, &c);

	return p ? p->name : NULL;
}

/* bounce_class_description - the description of a class. */
const char *bounce_class_description(int code)
{
	struct bounce_class c;
	const struct bounce_class *p = find_class(code, &c);

	return p ? p->desc : NULL;
}

/* bounce_class_category - Hard/Soft/Block/Admin/Undetermined of a built-in class. */
const char *bounce_class_category(int code)
{
	struct bounce_class c;
	const struct bounce_class *p = find_class(code, &c);

	return p ? p->category : NULL;
}

/* printable - non-empty (when required) and free of control characters. */
static bool printable(const char *s, bool need)
{
	if (s == NULL)
		return !need;
	if (need && s[0] == '\0')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			return false;
	return true;
}

/* bounce_class_register - add a class (see bounce_class.h). */
int bounce_class_register(int code, const char *name, const char *desc)
{
	struct bounce_class c;
	int rc = 0;

	if (code < 1 || !printable(name, true) || !printable(desc, false))
		return -EINVAL;
	if (desc == NULL)
		desc = "";
	for (size_t i = 0; i < NBUILTIN; i++)
		if (builtin[i].code == code)
			return -EEXIST;
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < nreg; i++) {
		if (reg[i].code == code) {
			c = reg[i];
			rc = strcmp(c.name, name) == 0 && strcmp(c.desc, desc) == 0 ?
			     0 : -EEXIST;
			goto out;
		}
	}
	if (nreg == reg_cap) {
		reg_cap = reg_cap ? reg_cap * 2 : 8;
		reg = xrealloc(reg, reg_cap * sizeof(*reg));
	}
	reg[nreg].code = code;
	reg[nreg].name = xstrdup(name);
	reg[nreg].desc = xstrdup(desc);
	reg[nreg].category = NULL;
	nreg++;
out:
	pthread_mutex_unlock(&reg_lock);
	return rc;
}

/* ============================================================== rules */

/* Kinds of reply a rule applies to. */
#define K_PERM  0x01	/* 5xx, or no code and a 5.x.x status */
#define K_TRANS 0x02	/* 4xx, or no code and a 4.x.x status */
#define K_NONE  0x04	/* neither: no code and no status (out-of-band text) */
#define K_ALL   (K_PERM | K_TRANS | K_NONE)
#define K_LOCAL 0x08	/* only when there was no SMTP reply at all (code 0) */

/* Status pattern parts: ANY matches every value; NOST: no status condition. */
#define ANY  (-1)
#define NOST { -2, 0, 0 }
#define ST(c, s, d) { c, s, d }

struct bounce_rule {
	const char *label;		/* as in docs/bounces.md */
	unsigned kinds;			/* K_* the rule applies to */
	short st[3];			/* class.subject.detail pattern, or NOST */
	const char *const *words;	/* any of these, lower case; NULL: no text condition */
	int res;			/* the class (for K_PERM and K_NONE) */
	int res_trans;			/* the class for K_TRANS; 0: res */
};

/*
 * Phrase lists. Lower case; matched as substrings of the lower-cased text
 * with white space runs collapsed to one space. Keep them specific: a
 * phrase that also occurs in an unrelated reply misclassifies it, and the
 * rule order means an early list wins over later ones.
 */
static const char *const w_admin[] = {
	"administrat", "operator", NULL,
};
static const char *const w_autoreply[] = {
	"out of office", "out of the office", "auto-reply", "autoreply",
	"auto reply", "automatic reply", "autoresponder", "auto-response",
	"vacation", "away from the office", NULL,
};
static const char *const w_challenge[] = {
	"challenge-response", "challenge/response", "challenge response",
	"sender verification request", "please confirm that you are",
	"verify your email address to", NULL,
};
static const char *const w_unsubscribe[] = {
	"unsubscribe", "opt out", "opt-out", "remove me", NULL,
};
static const char *const w_subscribe[] = {
	"subscribe", NULL,
};
static const char *const w_addrbook[] = {
	"address book", NULL,
};
static const char *const w_relay[] = {
	"relay access denied", "relaying denied", "relay denied",
	"relaying not allowed", "relay not allowed", "relaying not permitted",
	"relay not permitted", "not permitted to relay", "not allowed to relay",
	"unable to relay", "cannot relay", "can't relay", "we do not relay",
	"relaying prohibited", "relaying is not", "no relaying",
	"relaying mail to", "relay attempt", "allowed rcpthosts", NULL,
};
static const char *const w_reputation[] = {
	"blacklist", "black list", "blocklist", "block list", "denylist",
	"listed at", "listed in", "listed on", "listed by", "rbl", "dnsbl",
	"spamhaus", "spamcop", "barracuda", "sorbs", "uceprotect", "ipcheck",
	"senderbase", "cloudmark", "reputation", "blocked using",
	"banned sending ip", "complaints", "unusual rate", "your ip",
	"from this ip", "the ip you", "dynamic ip", "dial-up", "dialup",
	"residential", NULL,
};
static const char *const w_sender[] = {
	"sender address rejected", "sender verify failed",
	"sender verification failed", "sender domain", "sender rejected",
	"invalid sender", "unknown sender", "sender unknown", "bad sender",
	"sender address domain", NULL,
};
static const char *const w_rate[] = {
	"sending quota", "sending limit", "sending rate", NULL,
};
static const char *const w_dns[] = {
	"domain does not exist", "domain doesn't exist", "domain not found",
	"domain name not found", "host not found", "no such domain",
	"unknown domain", "domain unknown", "null mx", "no mx", "mx record",
	"mx lookup", "no valid mx", "nxdomain", "servfail", "name service error",
	"name or service not known", "dns error", "dns failure", "dns lookup",
	"dns query", "dns domain", "unable to resolve", "could not resolve",
	"cannot resolve", "does not accept mail", NULL,
};
static const char *const w_full[] = {
	"mailbox full", "mailbox is full", "mailbox has exceeded",
	"mailbox exceeds", "mailbox size", "over quota", "overquota",
	"over the quota", "over its quota", "over their quota",
	"quota exceeded", "exceeded quota", "exceeds quota", "quota exceed",
	"quotaexceeded", "storage allocation", "storage quota", "mail quota",
	"full mailbox", "inbox is full", "inbox full", "account is full",
	"mailfolder is full", NULL,
};
static const char *const w_size[] = {
	"too large", "too big", "size limit", "size exceed", "message size",
	"maximum message size", "message length exceeds", NULL,
};
static const char *const w_attach[] = {
	"attachment", "file type", "filetype", "file extension", "executable",
	"banned file", "prohibited file", "blocked file", NULL,
};
static const char *const w_spam[] = {
	"spam", "unsolicited", "junk mail", "bulk mail", "content filter",
	"content rejected", "message content", "content policy", "phishing",
	"malware", "virus", "infected", "malicious", "suspicious", NULL,
};
static const char *const w_tls[] = {
	"certificate", "starttls", "tls handshake", "tls negotiation",
	"tls required", "requires tls", "encryption required", "ssl ", NULL,
};
static const char *const w_rcpt_rejected[] = {
	"recipient address rejected", NULL,
};
static const char *const w_timeout[] = {
	"timed out", "timeout", "time out", "time-out", "expired",
	"no answer", "queue too long", "in the queue too long", NULL,
};
static const char *const w_invalid[] = {
	"user unknown", "unknown user", "unknown recipient", "recipient unknown",
	"no such user", "no such recipient", "no such mailbox",
	"no such account", "no mailbox", "mailbox unavailable",
	"mailbox not found", "mailbox not available", "does not exist",
	"doesn't exist", "not exist", "does not have an account",
	"doesn't have a", "recipient not found", "recipientnotfound",
	"user not found", "invalid recipient", "invalid mailbox",
	"invalid address", "address invalid", "unknown address",
	"address unknown", "not a valid", "bad address",
	"bad destination mailbox", "unrouteable address", "unroutable address",
	"undeliverable address", "illegal alias", "unknown local",
	"account disabled", "account is disabled", "account has been disabled",
	"mailbox disabled", "mailbox is disabled", "is disabled", "inactive",
	"deactivated", "account closed", "no longer", "not our customer",
	NULL,
};
static const char *const w_defer[] = {
	"try again", "try later", "retry", "greylist", "graylist", "grey-list",
	"gray-list", "deferred", "temporar", "rate limit", "rate-limit",
	"ratelimit", "too many", "throttl", "concurrent", "connection limit",
	"connection refused", "connection reset", "unreachable",
	"no route to host", "busy", "service not available",
	"service unavailable", "resources", NULL,
};
static const char *const w_block[] = {
	"block", "denied", "not authorized", "unauthorized", "not allowed",
	"not permitted", "prohibit", "refused", "rejected", "policy", "dmarc",
	"spf", "dkim", "unauthenticated", "authentication", "banned",
	"forbidden", "spoof", NULL,
};

/* The rules, first match wins. Labels are documented in docs/bounces.md. */
static const struct bounce_rule rules[] = {
	/* out-of-band and local facts, only when no SMTP reply was had */
	{ "admin",		K_ALL | K_LOCAL,	NOST, w_admin, 25, 0 },
	{ "auto-reply",		K_NONE | K_LOCAL,	NOST, w_autoreply, 60, 0 },
	{ "challenge",		K_NONE | K_LOCAL,	NOST, w_challenge, 100, 0 },
	{ "unsubscribe",	K_NONE | K_LOCAL,	NOST, w_unsubscribe, 90, 0 },
	{ "subscribe",		K_NONE | K_LOCAL,	NOST, w_subscribe, 80, 0 },
	/* specific evidence that beats the status code */
	{ "address-book",	K_PERM | K_NONE,	NOST, w_addrbook, 10, 0 },
	{ "relay",		K_PERM | K_TRANS,	NOST, w_relay, 54, 0 },
	{ "reputation",		K_PERM | K_TRANS,	NOST, w_reputation, 51, 0 },
	{ "sender-x.1.7",	K_PERM | K_TRANS,	ST(ANY, 1, 7), NULL, 50, 70 },
	{ "sender-x.1.8",	K_PERM | K_TRANS,	ST(ANY, 1, 8), NULL, 50, 70 },
	{ "sender-text",	K_PERM | K_TRANS,	NOST, w_sender, 50, 70 },
	{ "sending-rate",	K_PERM | K_TRANS,	NOST, w_rate, 50, 70 },
	{ "dns-text",		K_ALL,			NOST, w_dns, 21, 0 },
	{ "full-x.2.2",		K_ALL,			ST(ANY, 2, 2), NULL, 22, 0 },
	{ "full-text",		K_ALL,			NOST, w_full, 22, 0 },
	{ "size-x.3.4",		K_ALL,			ST(ANY, 3, 4), NULL, 23, 0 },
	{ "size-x.2.3",		K_ALL,			ST(ANY, 2, 3), NULL, 23, 0 },
	{ "size-text",		K_ALL,			NOST, w_size, 23, 0 },
	{ "attachment",		K_PERM,			NOST, w_attach, 53, 0 },
	{ "spam-content",	K_PERM,			NOST, w_spam, 52, 0 },
	{ "tls",		K_PERM | K_TRANS,	NOST, w_tls, 50, 70 },
	/* Microsoft 365 rejects unknown recipients with 5.4.1 */
	{ "ms-5.4.1",		K_PERM,			ST(5, 4, 1), w_rcpt_rejected, 10, 0 },
	/* the enhanced status codes (RFC 3463) */
	{ "timeout-x.4.7",	K_ALL,			ST(ANY, 4, 7), NULL, 24, 0 },
	{ "timeout-x.4.1",	K_ALL,			ST(ANY, 4, 1), NULL, 24, 0 },
	{ "timeout-x.4.2",	K_ALL,			ST(ANY, 4, 2), NULL, 24, 0 },
	{ "timeout-text",	K_ALL,			NOST, w_timeout, 24, 0 },
	{ "invalid-5.1.0",	K_PERM,			ST(ANY, 1, 0), NULL, 10, 0 },
	{ "invalid-5.1.1",	K_PERM,			ST(ANY, 1, 1), NULL, 10, 0 },
	{ "invalid-5.1.3",	K_PERM,			ST(ANY, 1, 3), NULL, 10, 0 },
	{ "invalid-5.1.4",	K_PERM,			ST(ANY, 1, 4), NULL, 10, 0 },
	{ "invalid-5.1.6",	K_PERM,			ST(ANY, 1, 6), NULL, 10, 0 },
	{ "invalid-5.1.10",	K_PERM,			ST(ANY, 1, 10), NULL, 10, 0 },
	{ "invalid-5.2.1",	K_PERM,			ST(ANY, 2, 1), NULL, 10, 0 },
	{ "dns-x.1.2",		K_ALL,			ST(ANY, 1, 2), NULL, 21, 0 },
	{ "dns-x.4.3",		K_ALL,			ST(ANY, 4, 3), NULL, 21, 0 },
	{ "dns-x.4.4",		K_ALL,			ST(ANY, 4, 4), NULL, 21, 0 },
	/* broad phrases */
	{ "invalid-text",	K_PERM | K_NONE,	NOST, w_invalid, 10, 0 },
	{ "defer-text",		K_TRANS | K_NONE,	NOST, w_defer, 70, 70 },
	{ "defer-4.4.5",	K_TRANS,		ST(4, 4, 5), NULL, 70, 70 },
	{ "defer-4.3.2",	K_TRANS,		ST(4, 3, 2), NULL, 70, 70 },
	{ "defer-4.7.x",	K_TRANS,		ST(4, 7, ANY), NULL, 70, 70 },
	{ "block-text",		K_PERM,			NOST, w_block, 50, 0 },
	{ "block-5.7.x",	K_PERM,			ST(5, 7, ANY), NULL, 50, 0 },
};
#define NRULES (sizeof(rules) / sizeof(rules[0]))

/* ========================================================== matching */

/*
 * parse_status - read "c.s.d" (class 2/4/5, subject and detail of 1-3
 * digits) at s into st. false when s does not start with one.
 */
static bool parse_status(const char *s, short st[3])
{
	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return false;
	if (s[1] != '.')
		return false;
	st[0] = (short)(s[0] - '0');
	s += 2;
	for (int i = 1; i <= 2; i++) {
		int v = 0, d = 0;
		while (isdigit((unsigned char)*s) && d < 4) {
			v = v * 10 + (*s++ - '0');
			d++;
		}
		if (d == 0 || d > 3)
			return false;
		st[i] = (short)v;
		if (i == 1 && *s++ != '.')
			return false;
	}
	return *s == '\0' || *s == ' ' || *s == '\t' || *s == '\r' ||
	       *s == '\n' || *s == ',' || *s == ';' || *s == ')' || *s == ']';
}

/* status_in_text - the enhanced code a reply text starts with, after its code. */
static bool status_in_text(const char *t, short st[3])
{
	while (*t == ' ' || *t == '\t')
		t++;
	if (isdigit((unsigned char)t[0]) && isdigit((unsigned char)t[1]) &&
	    isdigit((unsigned char)t[2]) && (t[3] == ' ' || t[3] == '-'))
		t += 4;
	while (*t == ' ' || *t == '\t')
		t++;
	return parse_status(t, st);
}

/* lower_text - lower-cased text, white space runs as one space, bounded. */
static void lower_text(const char *t, char *buf, size_t size)
{
	size_t n = 0;
	bool space = true;

	for (; t && *t && n + 1 < size; t++) {
		unsigned char c = (unsigned char)*t;
		if (c <= 32 || c == 127) {
			if (!space)
				buf[n++] = ' ';
			space = true;
			continue;
		}
		buf[n++] = (char)tolower(c);
		space = false;
	}
	buf[n] = '\0';
}

/* any_word - does the text contain any of the phrases? */
static bool any_word(const char *text, const char *const *words)
{
	for (; *words; words++)
		if (strstr(text, *words))
			return true;
	return false;
}

/* bounce_classify_rule - classify and name the deciding rule (see bounce_class.h). */
int bounce_classify_rule(int code, const char *status, const char *text,
			 const char **rule)
{
	short st[3] = { -1, -1, -1 };
	bool have_st = false;
	unsigned kind;
	char low[BOUNCE_TEXT_MAX];

	if (status && status[0])
		have_st = parse_status(status, st);
	if (!have_st && text)
		have_st = status_in_text(text, st);

	/* the reply code decides the kind; without one, the status class */
	if (code >= 500 && code <= 599)
		kind = K_PERM;
	else if (code >= 400 && code <= 499)
		kind = K_TRANS;
	else if (have_st && st[0] == 5)
		kind = K_PERM;
	else if (have_st && st[0] == 4)
		kind = K_TRANS;
	else
		kind = K_NONE;
	bool local = code == 0;

	lower_text(text, low, sizeof(low));
	for (size_t i = 0; i < NRULES; i++) {
		const struct bounce_rule *r = &rules[i];

		if (!(r->kinds & kind))
			continue;
		if ((r->kinds & K_LOCAL) && !local)
			continue;
		if (r->st[0] != -2) {
			if (!have_st)
				continue;
			if ((r->st[0] != ANY && r->st[0] != st[0]) ||
			    (r->st[1] != ANY && r->st[1] != st[1]) ||
			    (r->st[2] != ANY && r->st[2] != st[2]))
				continue;
		}
		if (r->words && !any_word(low, r->words))
			continue;
		if (rule)
			*rule = r->label;
		return kind == K_TRANS && r->res_trans ? r->res_trans : r->res;
	}

	if (kind == K_PERM) {
		if (rule)
			*rule = "default-permanent";
		return BOUNCE_GENERIC;
	}
	if (kind == K_TRANS) {
		if (rule)
			*rule = "default-transient";
		return BOUNCE_SOFT;
	}
	if (rule)
		*rule = "default-unknown";
	return BOUNCE_UNDETERMINED;
}

/* bounce_classify - the classification code of a reply (see bounce_class.h). */
int bounce_classify(int code, const char *status, const char *text)
{
	return bounce_classify_rule(code, status, text, NULL);
}

/* ============================================================ the hook */

/* builtin_classify - the rule table as a classify subscriber. */
static int builtin_classify(void *closure, int code, const char *status, const char *text,
			    const char *domain)
{
	(void)closure;
	(void)domain;
	return bounce_classify(code, status, text);
}

void bounce_class_builtins_register(struct api_gen *g)
{
	if (imp_hook_classify(api_core_instance(g), builtin_classify, NULL, IMP_ORDER_BUILTIN) < 0)
		abort();
}

int bounce_classify_conf(const struct conf *conf, int code, const char *status,
			 const char *text, const char *domain)
{
	if (conf && !conf_bool(conf, CONF_OPT_BOUNCE_CLASSIFICATION))
		return BOUNCE_UNDETERMINED;
	const struct api_hook *h = api_hook_of(conf, API_HOOK_CLASSIFY);
	if (h == NULL)
		return bounce_classify(code, status, text);
	/* Subscribers get strings, never NULL. */
	status = status ? status : "";
	text = text ? text : "";
	domain = domain ? domain : "";
	for (size_t i = 0; i < h->n; i++) {
		int cls = ((imp_classify_fn)h->v[i].fn)(h->v[i].closure, code, status, text, domain);
		if (cls > 0)
			return cls;
	}
	return BOUNCE_UNDETERMINED;
}

int imp_bounce_class_register(int code, const char *name, const char *description)
{
	return bounce_class_register(code, name, description);
}

const char *imp_bounce_class_name(int code)
{
	return bounce_class_name(code);
}
