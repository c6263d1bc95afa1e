/*
 * test_bounce_class.c - bounce classification and the class registry
 *
 * The table below holds replies written in the style of the big
 * receivers (Gmail, Microsoft 365/Outlook, Yahoo/AOL, iCloud) and of the
 * common MTAs (Postfix, Exim, Sendmail, qmail, Domino) and filters, plus
 * impetus's own local errors, each with the class an operator would want.
 * The texts are made up for this test; the shapes are the real ones.
 * A failure prints the rule that decided, to show which rule to fix.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "policy/bounce_class.h"

struct bc_case {
	int line;
	int code;
	const char *status;	/* NULL: taken from the text */
	const char *text;
	int want;
};

#define C(code, status, text, want) { __LINE__, code, status, text, want }

static const struct bc_case cases[] = {
	/* ---- Gmail style ---- */
	C(550, NULL, "550-5.1.1 The email account that you tried to reach does not exist. "
		     "Please try double-checking the recipient's email address for typos.", 10),
	C(550, NULL, "550-5.2.1 The email account that you tried to reach is disabled.", 10),
	C(452, NULL, "452-4.2.2 The recipient's inbox is out of storage space. Please direct "
		     "the recipient to https://support.example.com/mail/?p=OverQuotaTemp", 22),
	C(552, NULL, "552-5.2.2 The recipient's inbox is out of storage space and inbound "
		     "mail cannot be delivered.", 22),
	C(552, NULL, "552-5.3.4 Your message exceeded the message size limits of this "
		     "service.", 23),
	C(550, NULL, "550-5.7.1 [192.0.2.10] Our system has detected that this message is "
		     "likely unsolicited mail. To reduce the amount of spam sent, this message "
		     "has been blocked.", 52),
	C(421, NULL, "421-4.7.0 [192.0.2.10 15] Our system has detected an unusual rate of "
		     "unsolicited mail originating from your IP address. To protect our users "
		     "from spam, mail sent from your IP address has been temporarily rate limited.", 51),
	C(550, NULL, "550-5.7.26 Unauthenticated email from example.org is not accepted due "
		     "to domain's DMARC policy. Please contact the administrator of example.org.", 50),
	C(552, NULL, "552-5.7.0 This message was blocked because its content presents a "
		     "potential security issue. Please review our attachment guidelines.", 53),
	C(451, NULL, "451-4.3.0 Mail server temporarily rejected message.", 70),
	C(550, NULL, "550-5.7.1 The IP you're using to send mail is not authorized to send "
		     "email directly to our servers.", 51),
	C(550, NULL, "550 5.4.5 Daily user sending quota exceeded.", 50),
	/* ---- Microsoft 365 / Outlook style ---- */
	C(550, NULL, "550 5.5.0 Requested action not taken: mailbox unavailable", 10),
	C(550, NULL, "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP "
		     "address lookup", 10),
	C(550, NULL, "550 5.4.1 Recipient address rejected: Access denied. "
		     "AS(201806281) [XX0PR01MB0000.example.prod.outlook.com]", 10),
	C(554, NULL, "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException", 22),
	C(550, NULL, "550 5.7.606 Access denied, banned sending IP [192.0.2.11].", 51),
	C(550, NULL, "550 5.7.1 Unfortunately, messages from [192.0.2.12] weren't sent. Please "
		     "contact your Internet service provider since part of their network is on "
		     "our block list (S3150).", 51),
	C(451, NULL, "451 4.7.650 The mail server [192.0.2.13] has been temporarily rate "
		     "limited due to IP reputation.", 51),
	C(550, NULL, "550 5.7.1 Unable to relay", 54),
	C(421, NULL, "421 4.3.2 The maximum number of concurrent server connections has "
		     "exceeded a limit, closing transmission channel", 70),
	C(550, NULL, "550 5.7.509 Access denied, sending domain example.org does not pass "
		     "DMARC verification and has a DMARC policy of reject.", 50),
	C(550, NULL, "550 5.4.310 DNS domain example.invalid does not exist", 21),
	C(452, NULL, "452 4.3.1 Insufficient system resources", 70),
	/* ---- Yahoo / AOL style ---- */
	C(554, NULL, "554 delivery error: dd This user doesn't have a yahoo.example account "
		     "(someone@yahoo.example) [0] - mta1001.mail.example", 10),
	C(552, NULL, "552 1 Requested mail action aborted, mailbox not found", 10),
	C(421, NULL, "421 4.7.0 [TSS04] Messages from 192.0.2.14 temporarily deferred due "
		     "to unexpected volume or user complaints - 4.16.55.1", 51),
	C(553, NULL, "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.15, "
		     "because the ip is in Spamhaus's list", 51),
	C(554, NULL, "554 5.7.9 Message not accepted for policy reasons.", 50),
	C(451, NULL, "451 Message temporarily deferred due to resource constraints", 70),
	/* ---- iCloud style ---- */
	C(550, NULL, "550 5.1.1 <someone@icloud.example>: inactive email address", 10),
	C(552, NULL, "552 5.2.2 <someone@icloud.example>: user over quota", 22),
	/* ---- Postfix ---- */
	C(550, NULL, "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown "
		     "in virtual mailbox table", 10),
	C(554, NULL, "554 5.7.1 <bob@example.net>: Relay access denied", 54),
	C(552, NULL, "552 5.3.4 Message size exceeds fixed limit", 23),
	C(452, NULL, "452 4.2.2 <bob@example.net>: Mailbox full", 22),
	C(450, NULL, "450 4.7.1 Client host rejected: cannot find your hostname, [192.0.2.16]", 70),
	C(554, NULL, "554 5.7.1 Service unavailable; Client host [192.0.2.17] blocked using "
		     "zen.spamhaus.example", 51),
	C(450, NULL, "450 4.1.8 <alice@example.org>: Sender address rejected: Domain not found", 70),
	C(553, NULL, "553 5.1.8 <alice@example.org>: Sender address rejected: Domain not found", 50),
	C(550, NULL, "550 5.1.2 <bob@nonexistent.example>: Recipient address rejected: Domain "
		     "not found", 21),
	C(450, NULL, "450 4.2.0 <bob@example.net>: Recipient address rejected: Greylisted, "
		     "see https://postgrey.example/", 70),
	C(554, NULL, "554 5.7.1 <bob@example.net>: Recipient address rejected: Access denied", 50),
	C(450, NULL, "450 4.1.1 <bob@example.net>: Recipient address rejected: unverified "
		     "address: host mx.example.net said: 550 no such user", 20),
	C(556, NULL, "556 5.1.10 <bob@nullmx.example>: Recipient address has null MX", 21),
	C(530, NULL, "530 5.7.0 Must issue a STARTTLS command first", 50),
	C(452, NULL, "452 4.5.3 Error: too many recipients", 70),
	/* ---- Exim, Sendmail, qmail, Domino and filters ---- */
	C(550, NULL, "550 Unrouteable address", 10),
	C(550, NULL, "550 Administrative prohibition", 50),
	C(552, NULL, "552 Message size exceeds maximum permitted", 23),
	C(550, NULL, "550-Verification failed for <alice@example.org>\r\n550-Unrouteable "
		     "address\r\n550 Sender verify failed", 50),
	C(550, NULL, "550 5.1.1 <bob@example.net>... User unknown", 10),
	C(451, NULL, "451 4.4.1 reply: read error from mx.example.net.", 24),
	C(553, NULL, "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", 54),
	C(550, NULL, "550 sorry, no mailbox here by that name. (#5.1.1)", 10),
	C(550, NULL, "550 5.0.0 Recipient not listed in public Name & Address Book", 10),
	C(554, NULL, "554 Blocked - see https://ipcheck.example.com/?ip=192.0.2.18", 51),
	C(554, NULL, "554 Service unavailable; Client host [192.0.2.19] blocked using "
		     "Barracuda Reputation", 51),
	C(550, NULL, "550 Rejected by header based Anti-Spoofing policy", 50),
	C(554, NULL, "554 5.7.1 Message rejected: virus detected (Eicar-Test-Signature)", 52),
	C(552, NULL, "552 5.7.0 Our system detected an illegal attachment on your message.", 53),
	C(550, NULL, "550 Rejected: message looks like spam", 52),
	C(451, NULL, "451 4.7.1 Greylisting in action, please come back later", 70),
	C(421, NULL, "421 Too many connections from your host", 70),
	C(550, NULL, "550 Mailbox is frozen", 40),
	C(554, NULL, "554 Transaction failed", 40),
	C(451, NULL, "451 Requested action aborted: local error in processing", 20),
	C(550, NULL, "550 5.7.1 Mail from this sender is not authorized", 50),
	C(550, "5.1.1", "Recipient address rejected", 10),	/* status passed apart */
	C(550, "", "550 5.1.1 user unknown", 10),
	/* ---- impetus's own local outcomes (code 0) ---- */
	C(0, "5.4.7", "message expired after 5 days in the queue", 24),
	C(0, "4.4.1", "connect to mx.example.net[192.0.2.20]:25: Connection timed out", 24),
	C(0, "4.4.1", "connect to mx.example.net[192.0.2.20]:25: Connection refused", 24),
	C(0, "5.1.2", "Host or domain name not found. Name service error for "
		      "name=nowhere.example type=MX: Host not found", 21),
	C(0, "4.4.3", "Temporary DNS failure: SERVFAIL for example.net", 21),
	C(0, "5.4.4", "null MX: domain does not accept mail", 21),
	C(0, "5.0.0", "Failed by administrator (console: message fail)", 25),
	C(0, "4.7.5", "TLS handshake failed: certificate has expired", 70),
	C(0, NULL, "Host or domain name not found", 21),
	/* ---- out-of-band texts (no code, no status) ---- */
	C(0, NULL, "Out of Office: I am away until Monday", 60),
	C(0, NULL, "Automatic reply: on vacation", 60),
	C(0, NULL, "Please unsubscribe me from this list", 90),
	C(0, NULL, "subscribe announce-list", 80),
	C(0, NULL, "This is a challenge-response message: please confirm that you are human", 100),
	C(0, NULL, "", 1),
	C(0, NULL, NULL, 1),
	C(0, NULL, "something nobody understands", 1),
	/* a remote reply that merely mentions an administrator is not ours */
	C(550, NULL, "550 5.7.1 Contact the administrator of this server", 50),
	/* 2xx is not a bounce at all */
	C(250, NULL, "250 2.0.0 Ok", 1),
};

static void test_cases(void)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);

	CHECK(n >= 40);
	for (size_t i = 0; i < n; i++) {
		const struct bc_case *c = &cases[i];
		const char *rule = NULL;
		int got = bounce_classify_rule(c->code, c->status, c->text, &rule);

		if (got != c->want) {
			fprintf(stderr, "%s:%d: %d \"%s\" -> %d (%s, rule %s), expected %d (%s)\n",
				__FILE__, c->line, c->code, c->text ? c->text : "(null)",
				got, bounce_class_name(got), rule ? rule : "?",
				c->want, bounce_class_name(c->want));
			check_failures++;
		}
		CHECK_INTEQ(bounce_classify(c->code, c->status, c->text), got);
		CHECK(rule != NULL);
	}
}

static void test_names(void)
{
	static const int codes[] = { 1, 10, 20, 21, 22, 23, 24, 25, 30, 40, 50, 51,
				     52, 53, 54, 60, 70, 80, 90, 100 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		CHECK(bounce_class_name(codes[i]) != NULL);
		CHECK(bounce_class_description(codes[i]) != NULL);
		CHECK(bounce_class_category(codes[i]) != NULL);
	}
	CHECK_STREQ(bounce_class_name(10), "Invalid Recipient");
	CHECK_STREQ(bounce_class_name(30), "Generic Bounce: No RCPT");
	CHECK_STREQ(bounce_class_name(BOUNCE_CHALLENGE_RESPONSE), "Challenge-Response");
	CHECK_STREQ(bounce_class_category(51), "Block");
	CHECK_STREQ(bounce_class_category(10), "Hard");
	CHECK_STREQ(bounce_class_category(22), "Soft");
	CHECK(bounce_class_name(0) == NULL);
	CHECK(bounce_class_name(11) == NULL);
	CHECK(bounce_class_description(-5) == NULL);
}

static void test_register(void)
{
	CHECK_INTEQ(bounce_class_register(110, "Feedback Loop", "A spam complaint (ARF)."), 0);
	CHECK_STREQ(bounce_class_name(110), "Feedback Loop");
	CHECK_STREQ(bounce_class_description(110), "A spam complaint (ARF).");
	CHECK(bounce_class_category(110) == NULL);
	/* the same again (a reload) is fine; a different class is not */
	CHECK_INTEQ(bounce_class_register(110, "Feedback Loop", "A spam complaint (ARF)."), 0);
	CHECK_INTEQ(bounce_class_register(110, "Other", "x"), -EEXIST);
	CHECK_INTEQ(bounce_class_register(10, "Mine", "x"), -EEXIST);
	CHECK_INTEQ(bounce_class_register(0, "Zero", "x"), -EINVAL);
	CHECK_INTEQ(bounce_class_register(120, "", "x"), -EINVAL);
	CHECK_INTEQ(bounce_class_register(120, NULL, "x"), -EINVAL);
	CHECK_INTEQ(bounce_class_register(120, "Bad\nName", "x"), -EINVAL);
	CHECK_INTEQ(bounce_class_register(121, "No Description", NULL), 0);
	CHECK_STREQ(bounce_class_description(121), "");
	/* enough to make the array grow; earlier strings stay valid */
	const char *keep = bounce_class_name(110);
	char name[32];
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "Custom %d", i);
		CHECK_INTEQ(bounce_class_register(1000 + i, name, "custom"), 0);
	}
	CHECK_STREQ(bounce_class_name(1039), "Custom 39");
	CHECK(keep == bounce_class_name(110));
	CHECK_STREQ(keep, "Feedback Loop");
}

int main(void)
{
	test_cases();
	test_names();
	test_register();
	return check_done();
}
