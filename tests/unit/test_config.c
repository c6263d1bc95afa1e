/*
 * test_config.c - unit tests of src/config/: parser, types, scopes, relay
 *
 * Runs with the working directory tests/unit: golden inputs are under
 * config/ (good_*.conf are loaded and queried; each bad_*.conf starts with
 * "# expect: <error>" and must fail with exactly that error). The rest is
 * table-driven from strings, plus adversarial inputs (NUL bytes, huge
 * lines, deep nesting, every truncation of a valid file, random byte
 * mutations) that must fail cleanly and never crash.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"

/* ======================================================================
 * Helpers
 * ====================================================================== */

/* load - parse text named "t.conf"; the error (if any) in *err. */
static struct conf *load(const char *text, struct str *err)
{
	str_clear(err);
	return conf_load_string(text, "t.conf", err);
}

/* expect_error - text must fail to load with exactly msg. */
static void expect_error(int line, const char *text, const char *msg)
{
	struct str err = STR_INIT;
	struct conf *c = load(text, &err);

	if (c != NULL) {
		fprintf(stderr, "%s:%d: loaded, expected error \"%s\"\n", __FILE__, line, msg);
		check_failures++;
		conf_unref(c);
	} else if (strcmp(str_cstr(&err), msg) != 0) {
		fprintf(stderr, "%s:%d: error \"%s\"\n%*s expected \"%s\"\n", __FILE__, line,
			str_cstr(&err), (int)strlen(__FILE__) + 6, "", msg);
		check_failures++;
	}
	str_free(&err);
}

/* must_load - text must load; report the error otherwise. */
static struct conf *must_load(int line, const char *text)
{
	struct str err = STR_INIT;
	struct conf *c = load(text, &err);

	if (c == NULL) {
		fprintf(stderr, "%s:%d: load failed: %s\n", __FILE__, line, str_cstr(&err));
		check_failures++;
	}
	str_free(&err);
	return c;
}

/* must_load_file - a golden file must load. */
static struct conf *must_load_file(const char *path)
{
	struct str err = STR_INIT;
	struct conf *c = conf_load_file(path, &err);

	if (c == NULL) {
		fprintf(stderr, "%s: load failed: %s\n", path, str_cstr(&err));
		check_failures++;
	}
	str_free(&err);
	return c;
}

static int64_t get_i(const struct conf *c, enum conf_opt o, const char *b, const char *d)
{
	return conf_get(c, o, b, d)->u.i;
}

/* sa4 / sa6 - socket addresses for the relay tests. */
static struct sockaddr_storage sa4(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	a->sin_family = AF_INET;
	if (inet_pton(AF_INET, ip, &a->sin_addr) != 1)
		abort();
	return ss;
}

static struct sockaddr_storage sa6(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	a->sin6_family = AF_INET6;
	if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1)
		abort();
	return ss;
}

static bool host_ok(const struct conf *c, const struct conf_listener *l, const char *ip)
{
	struct sockaddr_storage ss = strchr(ip, ':') ? sa6(ip) : sa4(ip);

	return conf_relay_host_match(c, l, (const struct sockaddr *)&ss);
}

/* ======================================================================
 * The table
 * ====================================================================== */

static void test_table(void)
{
	char upper[128];

	for (int i = 0; i < CONF_OPT__COUNT; i++) {
		const char *name = conf_option_name(i);
		size_t n = strlen(name);

		CHECK_INTEQ(conf_option_lookup(name), i);
		CHECK(n < sizeof(upper));
		for (size_t k = 0; k <= n && k < sizeof(upper); k++)
			upper[k] = (char)(name[k] >= 'a' && name[k] <= 'z' ? name[k] - 32 : name[k]);
		CHECK_INTEQ(conf_option_lookup(upper), i);
		CHECK(conf_option_scopes(i) != 0);
		CHECK(conf_option_help(i)[0] != '\0');
		CHECK(strcmp(conf_type_name(conf_option_type(i)), "?") != 0);
		if (conf_option_type(i) == CONF_T_ENUM)
			CHECK(conf_option_enum_words(i) != NULL);
	}
	CHECK_INTEQ(conf_option_lookup("no_such_option"), -1);
	CHECK_INTEQ(conf_option_lookup(NULL), -1);
	CHECK_INTEQ(conf_option_lookup("retry_interval"), CONF_OPT_RETRY_INTERVAL);
	/* Old spellings of renamed options. */
	CHECK_INTEQ(conf_option_lookup("Concurrency"), CONF_OPT_CONCURRENCY);
	CHECK_INTEQ(conf_option_lookup("server_timeout"), CONF_OPT_SERVER_TIMEOUT);
	CHECK_INTEQ(conf_option_lookup("Max_Line_Length"), CONF_OPT_MAX_LINE_LENGTH);
	CHECK_STREQ(conf_option_name(CONF_OPT_CONCURRENCY), "Service_Sessions");
	CHECK_STREQ(conf_option_name(CONF_OPT_SERVER_TIMEOUT), "Idle_Time");
	CHECK_STREQ(conf_option_name(CONF_OPT_MAX_LINE_LENGTH), "RFC2822_Max_Line_Length");

	/* The named enum constants agree with the table's words. */
	CHECK_STREQ(conf_enum_word(CONF_OPT_TLS, CONF_TLS_IFAVAILABLE), "ifavailable");
	CHECK_STREQ(conf_enum_word(CONF_OPT_TLS, CONF_TLS_REQUIRED), "required");
	CHECK_STREQ(conf_enum_word(CONF_OPT_TLS, CONF_TLS_NO), "no");
	CHECK_STREQ(conf_enum_word(CONF_OPT_BOUNCES_INLINE_ORIGINAL, CONF_BOUNCES_INLINE_HEADERS), "headers");
	CHECK_STREQ(conf_enum_word(CONF_OPT_BOUNCES_INLINE_ORIGINAL, CONF_BOUNCES_INLINE_NONE), "none");
	CHECK_STREQ(conf_enum_word(CONF_OPT_BOUNCES_INLINE_ORIGINAL, CONF_BOUNCES_INLINE_ALL), "all");
	CHECK_STREQ(conf_enum_word(CONF_OPT_RFC2822_MESSAGEID_HEADER, CONF_MESSAGEID_IFNEEDED), "ifneeded");
	CHECK_STREQ(conf_enum_word(CONF_OPT_RFC2822_MESSAGEID_HEADER, CONF_MESSAGEID_ALWAYS), "always");
	CHECK_STREQ(conf_enum_word(CONF_OPT_RFC2822_MESSAGEID_HEADER, CONF_MESSAGEID_NEVER), "never");
	CHECK_STREQ(conf_enum_word(CONF_OPT_RFC2822_MESSAGEID_HEADER, CONF_MESSAGEID_IGNORE), "ignore");
	CHECK_STREQ(conf_enum_word(CONF_OPT_RFC2822_DATE_HEADER, CONF_DATE_IFNEEDED), "ifneeded");
	CHECK_STREQ(conf_enum_word(CONF_OPT_RFC2822_DATE_HEADER, CONF_DATE_PEDANTIC), "pedantic");
	CHECK_STREQ(conf_enum_word(CONF_OPT_RFC2822_DATE_HEADER, CONF_DATE_IGNORE), "ignore");
	CHECK_STREQ(conf_enum_word(CONF_OPT_RFC2822_MISSING_HEADERS, CONF_MISSING_REJECT), "reject");
	CHECK_STREQ(conf_enum_word(CONF_OPT_RFC2822_MISSING_HEADERS, CONF_MISSING_ALLOW), "allow");
	CHECK_STREQ(conf_enum_word(CONF_OPT_TLS, 3), "?");
	CHECK_STREQ(conf_enum_word(CONF_OPT_TLS, -1), "?");
	CHECK_STREQ(conf_enum_word(CONF_OPT_HOSTNAME, 0), "?");

	int64_t lo, hi;
	conf_option_range(CONF_OPT_MAX_RECIPIENTS_PER_BATCH, &lo, &hi);
	CHECK_INTEQ(lo, 1);
	CHECK_INTEQ(hi, 100000);
	CHECK_STREQ(conf_option_default(CONF_OPT_RETRY_INTERVAL), "1200");
	CHECK(conf_option_default(CONF_OPT_HOSTNAME) == NULL);
}

/* ======================================================================
 * Typed values
 * ====================================================================== */

static const struct vcase {
	int line;
	const char *text;
	enum conf_opt opt;
	int64_t want;		/* INT/INTERVAL/SIZE/ENUM/RETRIES, BOOL as 0/1 */
	const char *err;	/* NULL: must load */
} vcases[] = {
	/* integers */
	{ __LINE__, "Event_Loops = 0", CONF_OPT_EVENT_LOOPS, 0, NULL },
	{ __LINE__, "Event_Loops = 256", CONF_OPT_EVENT_LOOPS, 256, NULL },
	{ __LINE__, "Event_Loops = +7", CONF_OPT_EVENT_LOOPS, 7, NULL },
	{ __LINE__, "Event_Loops = \"12\"", CONF_OPT_EVENT_LOOPS, 12, NULL },
	{ __LINE__, "Event_Loops = 257", CONF_OPT_EVENT_LOOPS, 0,
	  "t.conf:1:15: value 257 out of range for Event_Loops (0..256)" },
	{ __LINE__, "Event_Loops = -1", CONF_OPT_EVENT_LOOPS, 0,
	  "t.conf:1:15: value -1 out of range for Event_Loops (0..256)" },
	{ __LINE__, "Event_Loops = 99999999999999999999", CONF_OPT_EVENT_LOOPS, 0,
	  "t.conf:1:15: value 99999999999999999999 out of range for Event_Loops (0..256)" },
	{ __LINE__, "Event_Loops = 3.5", CONF_OPT_EVENT_LOOPS, 0,
	  "t.conf:1:15: \"3.5\" is not a valid integer for Event_Loops" },
	{ __LINE__, "Event_Loops = \"\"", CONF_OPT_EVENT_LOOPS, 0,
	  "t.conf:1:15: \"\" is not a valid integer for Event_Loops" },
	{ __LINE__, "Event_Loops = 0x10", CONF_OPT_EVENT_LOOPS, 0,
	  "t.conf:1:15: \"0x10\" is not a valid integer for Event_Loops" },
	{ __LINE__, "Max_Recipients_Per_Batch = 0", CONF_OPT_MAX_RECIPIENTS_PER_BATCH, 0,
	  "t.conf:1:28: value 0 out of range for Max_Recipients_Per_Batch (1..100000)" },
	/* intervals */
	{ __LINE__, "Retry_Interval = 30", CONF_OPT_RETRY_INTERVAL, 30, NULL },
	{ __LINE__, "Retry_Interval = 30s", CONF_OPT_RETRY_INTERVAL, 30, NULL },
	{ __LINE__, "Retry_Interval = 5m", CONF_OPT_RETRY_INTERVAL, 300, NULL },
	{ __LINE__, "Retry_Interval = 5M", CONF_OPT_RETRY_INTERVAL, 300, NULL },
	{ __LINE__, "Retry_Interval = 2h", CONF_OPT_RETRY_INTERVAL, 7200, NULL },
	{ __LINE__, "Retry_Interval = 1d", CONF_OPT_RETRY_INTERVAL, 86400, NULL },
	{ __LINE__, "Retry_Interval = 1w", CONF_OPT_RETRY_INTERVAL, 604800, NULL },
	{ __LINE__, "Idle_Timeout = 0", CONF_OPT_IDLE_TIMEOUT, 0, NULL },
	{ __LINE__, "Retry_Interval = abc", CONF_OPT_RETRY_INTERVAL, 0,
	  "t.conf:1:18: \"abc\" is not a valid interval for Retry_Interval" },
	{ __LINE__, "Retry_Interval = 5x", CONF_OPT_RETRY_INTERVAL, 0,
	  "t.conf:1:18: \"5x\" is not a valid interval for Retry_Interval" },
	{ __LINE__, "Retry_Interval = 5mm", CONF_OPT_RETRY_INTERVAL, 0,
	  "t.conf:1:18: \"5mm\" is not a valid interval for Retry_Interval" },
	{ __LINE__, "Retry_Interval = -5", CONF_OPT_RETRY_INTERVAL, 0,
	  "t.conf:1:18: \"-5\" is not a valid interval for Retry_Interval" },
	{ __LINE__, "Retry_Interval = 0", CONF_OPT_RETRY_INTERVAL, 0,
	  "t.conf:1:18: value 0 out of range for Retry_Interval (1..31536000)" },
	{ __LINE__, "Retry_Interval = 53w", CONF_OPT_RETRY_INTERVAL, 0,
	  "t.conf:1:18: value 32054400 out of range for Retry_Interval (1..31536000)" },
	{ __LINE__, "Retry_Interval = 99999999999999999w", CONF_OPT_RETRY_INTERVAL, 0,
	  "t.conf:1:18: value 99999999999999999w out of range for Retry_Interval (1..31536000)" },
	/* sizes */
	{ __LINE__, "Max_Message_Size = 0", CONF_OPT_MAX_MESSAGE_SIZE, 0, NULL },
	{ __LINE__, "Max_Message_Size = 1000", CONF_OPT_MAX_MESSAGE_SIZE, 1000, NULL },
	{ __LINE__, "Max_Message_Size = 1k", CONF_OPT_MAX_MESSAGE_SIZE, 1024, NULL },
	{ __LINE__, "Max_Message_Size = 1KB", CONF_OPT_MAX_MESSAGE_SIZE, 1024, NULL },
	{ __LINE__, "Max_Message_Size = 10M", CONF_OPT_MAX_MESSAGE_SIZE, 10485760, NULL },
	{ __LINE__, "Max_Message_Size = 2G", CONF_OPT_MAX_MESSAGE_SIZE, 2147483648LL, NULL },
	{ __LINE__, "Max_Message_Size = 1T", CONF_OPT_MAX_MESSAGE_SIZE, 1099511627776LL, NULL },
	{ __LINE__, "Max_Message_Size = 7b", CONF_OPT_MAX_MESSAGE_SIZE, 7, NULL },
	{ __LINE__, "Max_Message_Size = 1.5M", CONF_OPT_MAX_MESSAGE_SIZE, 0,
	  "t.conf:1:20: \"1.5M\" is not a valid size for Max_Message_Size" },
	{ __LINE__, "Max_Message_Size = M", CONF_OPT_MAX_MESSAGE_SIZE, 0,
	  "t.conf:1:20: \"M\" is not a valid size for Max_Message_Size" },
	{ __LINE__, "Max_Message_Size = 10Q", CONF_OPT_MAX_MESSAGE_SIZE, 0,
	  "t.conf:1:20: \"10Q\" is not a valid size for Max_Message_Size" },
	{ __LINE__, "Max_Message_Size = 99999999T", CONF_OPT_MAX_MESSAGE_SIZE, 0,
	  "t.conf:1:20: value 99999999T out of range for Max_Message_Size (0..9223372036854775807)" },
	/* booleans */
	{ __LINE__, "Generate_Bounces = true", CONF_OPT_GENERATE_BOUNCES, 1, NULL },
	{ __LINE__, "Generate_Bounces = FALSE", CONF_OPT_GENERATE_BOUNCES, 0, NULL },
	{ __LINE__, "Generate_Bounces = yes", CONF_OPT_GENERATE_BOUNCES, 1, NULL },
	{ __LINE__, "Generate_Bounces = no", CONF_OPT_GENERATE_BOUNCES, 0, NULL },
	{ __LINE__, "Generate_Bounces = On", CONF_OPT_GENERATE_BOUNCES, 1, NULL },
	{ __LINE__, "Generate_Bounces = off", CONF_OPT_GENERATE_BOUNCES, 0, NULL },
	{ __LINE__, "Generate_Bounces = 1", CONF_OPT_GENERATE_BOUNCES, 1, NULL },
	{ __LINE__, "Generate_Bounces = \"0\"", CONF_OPT_GENERATE_BOUNCES, 0, NULL },
	{ __LINE__, "Generate_Bounces = maybe", CONF_OPT_GENERATE_BOUNCES, 0,
	  "t.conf:1:20: \"maybe\" is not a valid boolean for Generate_Bounces" },
	/* enums */
	{ __LINE__, "TLS = IfAvailable", CONF_OPT_TLS, CONF_TLS_IFAVAILABLE, NULL },
	{ __LINE__, "TLS = \"required\"", CONF_OPT_TLS, CONF_TLS_REQUIRED, NULL },
	{ __LINE__, "tls = NO", CONF_OPT_TLS, CONF_TLS_NO, NULL },
	{ __LINE__, "Bounces_Inline_Original = all", CONF_OPT_BOUNCES_INLINE_ORIGINAL, CONF_BOUNCES_INLINE_ALL, NULL },
	{ __LINE__, "TLS = maybe", CONF_OPT_TLS, 0,
	  "t.conf:1:7: \"maybe\" is not a valid value for TLS (ifavailable, required, no)" },
	/* retries */
	{ __LINE__, "Max_Retries = auto", CONF_OPT_MAX_RETRIES, CONF_RETRIES_AUTO, NULL },
	{ __LINE__, "Max_Retries = NONE", CONF_OPT_MAX_RETRIES, CONF_RETRIES_NONE, NULL },
	{ __LINE__, "Max_Retries = 5", CONF_OPT_MAX_RETRIES, 5, NULL },
	{ __LINE__, "Max_Retries = 0", CONF_OPT_MAX_RETRIES, 0, NULL },
	{ __LINE__, "Max_Retries = 100001", CONF_OPT_MAX_RETRIES, 0,
	  "t.conf:1:15: value 100001 out of range for Max_Retries (0..100000)" },
	{ __LINE__, "Max_Retries = -1", CONF_OPT_MAX_RETRIES, 0,
	  "t.conf:1:15: value -1 out of range for Max_Retries (0..100000)" },
	{ __LINE__, "Max_Retries = lots", CONF_OPT_MAX_RETRIES, 0,
	  "t.conf:1:15: \"lots\" is not a valid retry count for Max_Retries (auto, none or a number)" },
	/* throttles (the value itself is checked in test_throttle) */
	{ __LINE__, "Outbound_Throttle_Messages = \"10/0\"", CONF_OPT_OUTBOUND_THROTTLE_MESSAGES, 0,
	  "t.conf:1:30: \"10/0\" is not a valid throttle for Outbound_Throttle_Messages (N or N/seconds)" },
	/* shapes */
	{ __LINE__, "Hostname = ( \"a\" \"b\" )", CONF_OPT_HOSTNAME, 0,
	  "t.conf:1:12: option \"Hostname\" takes a single value, not a list" },
	{ __LINE__, "Hostname = ()", CONF_OPT_HOSTNAME, 0,
	  "t.conf:1:12: option \"Hostname\" takes a single value, not a list" },
	{ __LINE__, "Event_Loops = ( 1 )", CONF_OPT_EVENT_LOOPS, 0,
	  "t.conf:1:15: option \"Event_Loops\" takes a single value, not a list" },
	/* addresses validated at load */
	{ __LINE__, "Relay_Hosts = ( \"127.0.0.1\" x )", CONF_OPT_RELAY_HOSTS, 0,
	  "t.conf:1:29: \"x\" is not a valid address or CIDR block for Relay_Hosts" },
	{ __LINE__, "Relay_Hosts = ( \"::1/129\" )", CONF_OPT_RELAY_HOSTS, 0,
	  "t.conf:1:17: \"::1/129\" is not a valid address or CIDR block for Relay_Hosts" },
	{ __LINE__, "Relay_Hosts = ( \"10.0.0.0/\" )", CONF_OPT_RELAY_HOSTS, 0,
	  "t.conf:1:17: \"10.0.0.0/\" is not a valid address or CIDR block for Relay_Hosts" },
	{ __LINE__, "Relay_Hosts = ( \"10.0.0.0/8x\" )", CONF_OPT_RELAY_HOSTS, 0,
	  "t.conf:1:17: \"10.0.0.0/8x\" is not a valid address or CIDR block for Relay_Hosts" },
	{ __LINE__, "Relay_Hosts = ( \"10.0.0\" )", CONF_OPT_RELAY_HOSTS, 0,
	  "t.conf:1:17: \"10.0.0\" is not a valid address or CIDR block for Relay_Hosts" },
	{ __LINE__, "Relay_Hosts = ( \"\" )", CONF_OPT_RELAY_HOSTS, 0,
	  "t.conf:1:17: \"\" is not a valid address or CIDR block for Relay_Hosts" },
	{ __LINE__, "Relay_Domains = ( \"a@b.example\" )", CONF_OPT_RELAY_DOMAINS, 0,
	  "t.conf:1:19: \"a@b.example\" is not a valid domain for Relay_Domains" },
	{ __LINE__, "Relay_Domains = ( \"a.*.example\" )", CONF_OPT_RELAY_DOMAINS, 0,
	  "t.conf:1:19: \"a.*.example\" is not a valid domain for Relay_Domains" },
	{ __LINE__, "Bind_Address = \"not-an-ip\"", CONF_OPT_BIND_ADDRESS, 0,
	  "t.conf:1:16: \"not-an-ip\" is not a valid IP address for Bind_Address" },
	/* message conformance: Momentum's words, or a number */
	{ __LINE__, "RFC2822_Max_Line_Length = ignore", CONF_OPT_MAX_LINE_LENGTH,
	  CONF_LINE_LIMIT_IGNORE, NULL },
	{ __LINE__, "RFC2822_Max_Line_Length = \"Pedantic\"", CONF_OPT_MAX_LINE_LENGTH,
	  CONF_LINE_LIMIT_RFC, NULL },
	{ __LINE__, "RFC2822_Max_Line_Length = fix", CONF_OPT_MAX_LINE_LENGTH, CONF_LINE_LIMIT_FIX, NULL },
	{ __LINE__, "RFC2822_Max_Line_Length = 2048", CONF_OPT_MAX_LINE_LENGTH, 2048, NULL },
	{ __LINE__, "RFC2822_Max_Line_Length = -1", CONF_OPT_MAX_LINE_LENGTH, 0,
	  "t.conf:1:27: value -1 out of range for RFC2822_Max_Line_Length (0..1048576)" },
	{ __LINE__, "RFC2822_Max_Line_Length = folding", CONF_OPT_MAX_LINE_LENGTH, 0,
	  "t.conf:1:27: \"folding\" is not a valid value for RFC2822_Max_Line_Length "
	  "(ignore, pedantic, fix or a number)" },
	{ __LINE__, "RFC2822_Lone_LF_In_Body = ignore", CONF_OPT_RFC2822_LONE_LF_IN_BODY,
	  CONF_RFC2822_IGNORE, NULL },
	{ __LINE__, "RFC2822_Lone_LF_In_Headers = pedantic", CONF_OPT_RFC2822_LONE_LF_IN_HEADERS,
	  CONF_RFC2822_PEDANTIC, NULL },
	{ __LINE__, "RFC2822_Lone_LF_In_Body = strict", CONF_OPT_RFC2822_LONE_LF_IN_BODY, 0,
	  "t.conf:1:27: \"strict\" is not a valid value for RFC2822_Lone_LF_In_Body "
	  "(fix, ignore, pedantic)" },
	{ __LINE__, "RFC2822_Date_Header = pedantic", CONF_OPT_RFC2822_DATE_HEADER,
	  CONF_DATE_PEDANTIC, NULL },
	{ __LINE__, "rfc2822_date_header = \"ignore\"", CONF_OPT_RFC2822_DATE_HEADER,
	  CONF_DATE_IGNORE, NULL },
	{ __LINE__, "RFC2822_Date_Header = fix", CONF_OPT_RFC2822_DATE_HEADER, 0,
	  "t.conf:1:23: \"fix\" is not a valid value for RFC2822_Date_Header "
	  "(ifneeded, pedantic, ignore)" },
	{ __LINE__, "RFC2822_Messageid_Header = ignore", CONF_OPT_RFC2822_MESSAGEID_HEADER,
	  CONF_MESSAGEID_IGNORE, NULL },
	{ __LINE__, "RFC2822_Trace_Headers = false", CONF_OPT_RFC2822_TRACE_HEADERS, 0, NULL },
	{ __LINE__, "RFC2822_Missing_Headers = allow", CONF_OPT_RFC2822_MISSING_HEADERS,
	  CONF_MISSING_ALLOW, NULL },
	{ __LINE__, "RFC2822_Missing_Headers = add", CONF_OPT_RFC2822_MISSING_HEADERS, 0,
	  "t.conf:1:27: \"add\" is not a valid value for RFC2822_Missing_Headers "
	  "(reject, allow)" },
	/* renamed options: old spellings load, messages use the new name */
	{ __LINE__, "Server_Timeout = 7", CONF_OPT_SERVER_TIMEOUT, 7, NULL },
	{ __LINE__, "Concurrency = 0", CONF_OPT_CONCURRENCY, 0, NULL },
	{ __LINE__, "Max_Line_Length = 0", CONF_OPT_MAX_LINE_LENGTH, 0, NULL },
	{ __LINE__, "Idle_Time = 5\nServer_Timeout = 6", CONF_OPT_SERVER_TIMEOUT, 0,
	  "t.conf:2:1: duplicate option \"Idle_Time\" in this scope (first set at t.conf:1)" },
};

/* test_conformance_defaults - accept and repair bare CR/LF, accept long lines. */
static void test_conformance_defaults(void)
{
	struct str err = STR_INIT, out = STR_INIT;
	struct conf *c = load("", &err);

	CHECK(c != NULL);
	if (c == NULL)
		return;
	CHECK_INTEQ(conf_get(c, CONF_OPT_RFC2822_LONE_LF_IN_HEADERS, NULL, NULL)->u.i, CONF_RFC2822_FIX);
	CHECK_INTEQ(conf_get(c, CONF_OPT_RFC2822_LONE_LF_IN_BODY, NULL, NULL)->u.i, CONF_RFC2822_FIX);
	const struct conf_value *v = conf_get(c, CONF_OPT_MAX_LINE_LENGTH, NULL, NULL);
	CHECK_INTEQ(v->u.i, CONF_LINE_LIMIT_IGNORE);
	CHECK_INTEQ(conf_get(c, CONF_OPT_RFC2822_DATE_HEADER, NULL, NULL)->u.i, CONF_DATE_IFNEEDED);
	CHECK_INTEQ(conf_get(c, CONF_OPT_RFC2822_MESSAGEID_HEADER, NULL, NULL)->u.i,
		    CONF_MESSAGEID_IFNEEDED);
	CHECK_INTEQ(conf_get(c, CONF_OPT_RFC2822_TRACE_HEADERS, NULL, NULL)->u.b, true);
	CHECK_INTEQ(conf_get(c, CONF_OPT_RFC2822_MISSING_HEADERS, NULL, NULL)->u.i,
		    CONF_MISSING_REJECT);
	conf_value_format(CONF_OPT_MAX_LINE_LENGTH, v, &out);
	CHECK_STREQ(str_cstr(&out), "ignore");
	conf_unref(c);
	str_free(&out);
	str_free(&err);
}

static void test_values(void)
{
	struct str err = STR_INIT;

	for (size_t i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
		const struct vcase *v = &vcases[i];

		if (v->err) {
			expect_error(v->line, v->text, v->err);
			continue;
		}
		struct conf *c = load(v->text, &err);
		if (c == NULL) {
			fprintf(stderr, "%s:%d: load failed: %s\n", __FILE__, v->line, str_cstr(&err));
			check_failures++;
			continue;
		}
		const struct conf_value *val = conf_get(c, v->opt, NULL, NULL);
		int64_t got = conf_option_type(v->opt) == CONF_T_BOOL ? val->u.b : val->u.i;
		if (got != v->want) {
			fprintf(stderr, "%s:%d: got %lld, expected %lld\n", __FILE__, v->line,
				(long long)got, (long long)v->want);
			check_failures++;
		}
		CHECK_STREQ(val->file, "t.conf");
		conf_unref(c);
	}
	str_free(&err);
}

static void test_strings_and_lists(void)
{
	struct conf *c = must_load(__LINE__,
		"Hostname = \"a \\\"q\\\" \\\\ \\t\\n\\. end\"\n"
		"MailerDaemon = bare-word@example.com\n"
		"Gateway = \"multi\\nline\"   # an escaped newline\n"
		"User = \"con\\\ntinued\"\n"
		"Relay_Domains = ( a.example, \"b.example\" ,c.example\n"
		"                  d.example )\n"
		"Relay_Hosts = ()\n"
		"Spoolbase = \"\"\n"
		"Log_Directory = \"\xc3\xa9t\xc3\xa9\"\n");

	if (c == NULL)
		return;
	CHECK_STREQ(conf_str(c, CONF_OPT_HOSTNAME), "a \"q\" \\ \t\n\\. end");
	CHECK_STREQ(conf_str(c, CONF_OPT_MAILERDAEMON), "bare-word@example.com");
	CHECK_STREQ(conf_str(c, CONF_OPT_GATEWAY), "multi\nline");
	CHECK_STREQ(conf_str(c, CONF_OPT_USER), "continued");
	CHECK_STREQ(conf_str(c, CONF_OPT_SPOOLBASE), "");
	CHECK_STREQ(conf_str(c, CONF_OPT_LOG_DIRECTORY), "\xc3\xa9t\xc3\xa9");
	const struct conf_value *v = conf_get(c, CONF_OPT_RELAY_DOMAINS, NULL, NULL);
	CHECK_INTEQ(v->u.list.n, 4);
	if (v->u.list.n == 4) {
		CHECK_STREQ(v->u.list.v[0], "a.example");
		CHECK_STREQ(v->u.list.v[1], "b.example");
		CHECK_STREQ(v->u.list.v[2], "c.example");
		CHECK_STREQ(v->u.list.v[3], "d.example");
	}
	CHECK_INTEQ(v->line, 6);
	v = conf_get(c, CONF_OPT_RELAY_HOSTS, NULL, NULL);
	CHECK_INTEQ(v->u.list.n, 0);
	CHECK_STREQ(v->file, "t.conf");	/* set, to nothing */

	struct str out = STR_INIT;
	conf_value_format(CONF_OPT_RELAY_DOMAINS, conf_get(c, CONF_OPT_RELAY_DOMAINS, NULL, NULL), &out);
	CHECK_STREQ(str_cstr(&out), "( \"a.example\" \"b.example\" \"c.example\" \"d.example\" )");
	str_clear(&out);
	conf_value_format(CONF_OPT_HOSTNAME, conf_get(c, CONF_OPT_HOSTNAME, NULL, NULL), &out);
	CHECK_STREQ(str_cstr(&out), "\"a \\\"q\\\" \\\\ \\t\\n\\\\. end\"");
	str_clear(&out);
	conf_value_format(CONF_OPT_MAX_RETRIES, conf_get(c, CONF_OPT_MAX_RETRIES, NULL, NULL), &out);
	CHECK_STREQ(str_cstr(&out), "auto");
	str_clear(&out);
	conf_value_format(CONF_OPT_ROUTES, conf_get(c, CONF_OPT_ROUTES, NULL, NULL), &out);
	CHECK_STREQ(str_cstr(&out), "(unset)");
	str_free(&out);

	/* A single value for a list option is a one-element list. */
	conf_unref(c);
	c = must_load(__LINE__, "Relay_Domains = only.example\nRoutes = \"smtp://127.0.0.1:2526\"");
	if (c) {
		v = conf_get(c, CONF_OPT_RELAY_DOMAINS, NULL, NULL);
		CHECK_INTEQ(v->u.list.n, 1);
		CHECK_STREQ(v->u.list.v[0], "only.example");
		CHECK_STREQ(conf_get(c, CONF_OPT_ROUTES, NULL, "x")->u.list.v[0], "smtp://127.0.0.1:2526");
		conf_unref(c);
	}
}

static void test_throttle(void)
{
	static const struct {
		const char *s;
		bool ok;
		uint32_t count, period;
	} t[] = {
		{ "10", true, 10, 1 },
		{ "10/60", true, 10, 60 },
		{ "10/1m", true, 10, 60 },
		{ "5/2h", true, 5, 7200 },
		{ "0", true, 0, 1 },
		{ "4294967295/1", true, 4294967295u, 1 },
		{ "4294967296", false, 0, 0 },
		{ "", false, 0, 0 },
		{ "10/", false, 0, 0 },
		{ "/5", false, 0, 0 },
		{ "a", false, 0, 0 },
		{ "10/0", false, 0, 0 },
		{ "-1", false, 0, 0 },
		{ "10/5/3", false, 0, 0 },
		{ "10 /5", false, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct conf_throttle th = { 99, 99 };
		bool ok = conf_parse_throttle(t[i].s, &th);

		if (ok != t[i].ok || (ok && (th.count != t[i].count || th.period != t[i].period))) {
			fprintf(stderr, "%s:%d: throttle \"%s\": ok=%d %u/%u\n", __FILE__, __LINE__,
				t[i].s, ok, th.count, th.period);
			check_failures++;
		}
	}
	CHECK(!conf_parse_throttle(NULL, &(struct conf_throttle){ 0, 0 }));

	struct conf *c = must_load(__LINE__, "Outbound_Throttle_Connections = \"3/10\"");
	if (c) {
		const struct conf_value *v = conf_get(c, CONF_OPT_OUTBOUND_THROTTLE_CONNECTIONS, NULL, NULL);
		CHECK_INTEQ(v->u.t.count, 3);
		CHECK_INTEQ(v->u.t.period, 10);
		/* Unset throttles are unlimited (count 0). */
		CHECK_INTEQ(conf_get(c, CONF_OPT_OUTBOUND_THROTTLE_MESSAGES, "b", "d")->u.t.count, 0);
		conf_unref(c);
	}
}

/* ======================================================================
 * Syntax and structure errors
 * ====================================================================== */

static const struct ecase {
	int line;
	const char *text;
	const char *err;
} ecases[] = {
	{ __LINE__, "Retry_Intervall = 5",
	  "t.conf:1:1: unknown option \"Retry_Intervall\" (did you mean \"Retry_Interval\"?)" },
	{ __LINE__, "Frobnicate = 1", "t.conf:1:1: unknown option \"Frobnicate\"" },
	{ __LINE__, "Domain \"d\" {\n  Bind_Address = \"192.0.2.1\"\n}\n",
	  "t.conf:2:3: option \"Bind_Address\" is not allowed in Domain scope" },
	{ __LINE__, "Binding \"b\" { Spoolbase = \"/x\" }",
	  "t.conf:1:15: option \"Spoolbase\" is not allowed in Binding scope" },
	{ __LINE__, "Binding_Group \"g\" { Hostname = x }",
	  "t.conf:1:21: option \"Hostname\" is not allowed in Binding_Group scope" },
	{ __LINE__, "ESMTP_Listener { Retry_Interval = 5 }",
	  "t.conf:1:18: option \"Retry_Interval\" is not allowed in ESMTP_Listener scope" },
	{ __LINE__, "ESMTP_Listener { Listen \"127.0.0.1:25\" { Hostname = x } }",
	  "t.conf:1:42: option \"Hostname\" is not allowed in Listen scope" },
	{ __LINE__, "Routes = ( a )\nBinding b { Routes = ( b ) }",
	  "t.conf:2:13: option \"Routes\" is not allowed in Binding scope" },
	{ __LINE__, "Hostname = \"abc", "t.conf:1:12: unterminated string" },
	{ __LINE__, "Hostname = \"abc\\", "t.conf:1:12: unterminated string" },
	{ __LINE__, "Binding \"b\" {\n", "t.conf:2:1: expected \"}\"" },
	{ __LINE__, "Binding \"b\" {\n  Domain \"d\" {\n  }", "t.conf:3:4: expected \"}\"" },
	{ __LINE__, "Hostname = a\nHostname = b\n",
	  "t.conf:2:1: duplicate option \"Hostname\" in this scope (first set at t.conf:1)" },
	{ __LINE__, "include \"nonexistent-xyz.conf\"",
	  "t.conf:1:9: cannot open include \"nonexistent-xyz.conf\": No such file or directory" },
	{ __LINE__, "include config", "t.conf:1:9: cannot open include \"config\": Is a directory" },
	{ __LINE__, "include \"\"", "t.conf:1:9: include needs a file name" },
	{ __LINE__, "include", "t.conf:1:8: expected \"=\" or \"{\" after \"include\", not end of file" },
	{ __LINE__, "Foo {\n  Bar { Baz { } }\n}",
	  "t.conf:2:9: stanza \"Baz\" inside sub-stanza \"Bar\" of Foo: module stanzas nest one level deep only (or \"Foo\" is a scope impetus does not know)" },
	{ __LINE__, "m { d \"x\" { a = 1 } d \"x\" { } }",
	  "t.conf:1:21: duplicate sub-stanza d \"x\" in m (first at t.conf:1)" },
	{ __LINE__, "m {\n d { }\n D { } }", "t.conf:3:2: duplicate sub-stanza D in m (first at t.conf:2)" },
	{ __LINE__, "m { d \"x\" { a = 1\n a = 2 } }",
	  "t.conf:2:2: duplicate option \"a\" in this scope (first set at t.conf:1)" },
	{ __LINE__, "m { d \"\" { } }", "t.conf:1:7: empty name for sub-stanza \"d\"" },
	{ __LINE__, "m { d \"x\" y }", "t.conf:1:11: expected \"{\" after d \"x\", not \"y\"" },
	{ __LINE__, "m { d { a } }", "t.conf:1:11: expected \"=\" after \"a\", not \"}\"" },
	{ __LINE__, "m { d { a = 1 }", "t.conf:1:16: expected \"}\"" },
	{ __LINE__, "m { d { ( } }", "t.conf:1:9: unexpected \"(\"" },
	{ __LINE__, "m { d { a = 1 } x = 1 x = 2 }",
	  "t.conf:1:23: duplicate option \"x\" in this scope (first set at t.conf:1)" },
	{ __LINE__, "Bindng \"b\" { }", "t.conf:1:1: unknown scope \"Bindng\" (did you mean \"Binding\"?)" },
	{ __LINE__, "Domain \"d\" { my_mod { } }",
	  "t.conf:1:14: unknown scope \"my_mod\" (modules are declared at global scope)" },
	{ __LINE__, "my_mod { a = 1 a = 2 }",
	  "t.conf:1:16: duplicate option \"a\" in this scope (first set at t.conf:1)" },
	{ __LINE__, "my_mod \"x\" { }\nmy_mod \"x\" { }",
	  "t.conf:2:1: duplicate stanza my_mod \"x\" (first at t.conf:1)" },
	{ __LINE__, "my_mod \"\" { }", "t.conf:1:8: empty instance name for module \"my_mod\"" },
	{ __LINE__, "my_mod { a }", "t.conf:1:12: expected \"=\" or \"{\" after \"a\", not \"}\"" },
	{ __LINE__, "Retry_Interval { }",
	  "t.conf:1:1: \"Retry_Interval\" is an option, not a scope (write Retry_Interval = value)" },
	{ __LINE__, "Domain = x", "t.conf:1:1: \"Domain\" is a scope, not an option" },
	{ __LINE__, "Hostname = (", "t.conf:1:13: expected \")\"" },
	{ __LINE__, "Hostname = ( a { )", "t.conf:1:16: unexpected \"{\" in list" },
	{ __LINE__, "Relay_Domains = ( a ( b ) )", "t.conf:1:21: unexpected \"(\" in list" },
	{ __LINE__, "Hostname = ", "t.conf:1:12: expected a value after \"Hostname =\", not end of file" },
	{ __LINE__, "Hostname = }", "t.conf:1:12: expected a value after \"Hostname =\", not \"}\"" },
	{ __LINE__, "Hostname = = x", "t.conf:1:12: expected a value after \"Hostname =\", not \"=\"" },
	{ __LINE__, "= 5", "t.conf:1:1: unexpected \"=\"" },
	{ __LINE__, "{ }", "t.conf:1:1: unexpected \"{\"" },
	{ __LINE__, "(", "t.conf:1:1: unexpected \"(\"" },
	{ __LINE__, ",", "t.conf:1:1: unexpected \",\"" },
	{ __LINE__, "\"str\" = 5", "t.conf:1:1: unexpected string \"str\"" },
	{ __LINE__, "Hostname = a }", "t.conf:1:14: unexpected \"}\"" },
	{ __LINE__, "Hostname", "t.conf:1:9: expected \"=\" or \"{\" after \"Hostname\", not end of file" },
	{ __LINE__, "Hostname )", "t.conf:1:10: expected \"=\" or \"{\" after \"Hostname\", not \")\"" },
	{ __LINE__, "Hostname \"x\"", "t.conf:1:10: expected \"=\" after \"Hostname\"" },
	{ __LINE__, "Frob \"x\" = 3", "t.conf:1:10: expected \"{\" after Frob \"x\", not \"=\"" },
	{ __LINE__, "ESMTP_Listener \"x\" { }", "t.conf:1:16: ESMTP_Listener takes no name" },
	{ __LINE__, "ESMTP_Listener { }\nesmtp_listener { }",
	  "t.conf:2:1: duplicate ESMTP_Listener (first at t.conf:1)" },
	{ __LINE__, "Binding_Group \"g\" { Binding_Group \"h\" { } }",
	  "t.conf:1:21: Binding_Group is not allowed in Binding_Group scope" },
	{ __LINE__, "Binding \"b\" { Binding_Group \"g\" { } }",
	  "t.conf:1:15: Binding_Group is not allowed in Binding scope" },
	{ __LINE__, "Binding \"b\" { Binding \"c\" { } }",
	  "t.conf:1:15: Binding is not allowed in Binding scope" },
	{ __LINE__, "Domain \"d\" { Domain \"e\" { } }",
	  "t.conf:1:14: Domain is not allowed in Domain scope" },
	/* arrays [ key = value ] and the SMTP AUTH options */
	{ __LINE__, "Hostname = [ a = b ]", "t.conf:1:12: option \"Hostname\" does not take an array [ ... ]" },
	{ __LINE__, "AuthLoginParameters = \"x\"",
	  "t.conf:1:23: option \"AuthLoginParameters\" takes an array: [ key = value ... ]" },
	{ __LINE__, "AuthLoginParameters = ( a )",
	  "t.conf:1:23: option \"AuthLoginParameters\" takes an array: [ key = value ... ]" },
	{ __LINE__, "AuthLoginParameters = [ uri ]", "t.conf:1:29: expected \"=\" after the key \"uri\", not \"]\"" },
	{ __LINE__, "AuthLoginParameters = [ uri = ]", "t.conf:1:31: expected a value after \"uri =\", not \"]\"" },
	{ __LINE__, "AuthLoginParameters = [ uri = x", "t.conf:1:32: expected \"]\"" },
	{ __LINE__, "AuthLoginParameters = [ ( ]", "t.conf:1:25: expected a key in the array, not \"(\"" },
	{ __LINE__, "AuthLoginParameters = [ ]",
	  "t.conf:1:25: AuthLoginParameters needs uri = \"file:///path/to/passwd\"" },
	{ __LINE__, "AuthLoginParameters = [ log_authentication = true ]",
	  "t.conf:1:51: AuthLoginParameters needs uri = \"file:///path/to/passwd\"" },
	{ __LINE__, "AuthLoginParameters = [ uri = \"mysqlauth://\" ]",
	  "t.conf:1:31: AuthLoginParameters: uri \"mysqlauth://\" is not supported (impetus reads \"file:///absolute/path\" password files)" },
	{ __LINE__, "AuthPlainParameters = [ uri = \"file:///nonexistent/pw\" ]",
	  "t.conf:1:31: AuthPlainParameters: /nonexistent/pw: cannot read password file: No such file or directory" },
	{ __LINE__, "AuthLoginParameters = [ frob = 1 ]",
	  "t.conf:1:25: AuthLoginParameters: unknown key \"frob\" (impetus knows uri and log_authentication)" },
	{ __LINE__, "AuthLoginParameters = [ uri = \"file:///x\", URI = \"file:///y\" ]",
	  "t.conf:1:44: AuthLoginParameters: duplicate key \"URI\"" },
	{ __LINE__, "AuthLoginParameters = [ log_authentication = maybe uri = \"file:///x\" ]",
	  "t.conf:1:46: AuthLoginParameters: \"maybe\" is not a valid boolean for log_authentication" },
	{ __LINE__, "SMTP_Extensions = ( \"AUTH CRAM-MD5\" )",
	  "t.conf:1:21: SMTP_Extensions: AUTH mechanism \"CRAM-MD5\" is not supported (impetus has LOGIN and PLAIN)" },
	{ __LINE__, "SMTP_Extensions = ( \"STARTTLS\" \"AUTH\" )",
	  "t.conf:1:32: SMTP_Extensions: \"AUTH\" needs its mechanisms, e.g. \"AUTH LOGIN PLAIN\"" },
	{ __LINE__, "SMTP_Extensions = ( \"XSETCONTEXT\" )",
	  "t.conf:1:21: SMTP_Extensions: \"XSETCONTEXT\" is not an extension impetus offers (AUTH <mechanisms>, or one of ENHANCEDSTATUSCODES PIPELINING 8BITMIME SIZE DSN SMTPUTF8 CHUNKING STARTTLS)" },
	{ __LINE__, "ESMTP_Listener {\n Listen \"127.0.0.1:25\" { SMTP_Extensions = ( \"AUTH LOGIN\" ) } }",
	  "t.conf:2:26: SMTP_Extensions offers AUTH but Listen \"127.0.0.1:25\" has no AuthLoginParameters or AuthPlainParameters (a password file)" },
	{ __LINE__, "SMTP_Extensions = ( \"AUTH PLAIN\" )",
	  "t.conf:1:1: SMTP_Extensions offers AUTH but the ESMTP_Listener has no AuthLoginParameters or AuthPlainParameters (a password file)" },
	{ __LINE__, "my_mod { opt = [ a = b ] }", "t.conf:1:16: module options do not take an array [ ... ]" },
	{ __LINE__, "Listen \"127.0.0.1:25\" { }", "t.conf:1:1: Listen is not allowed in global scope" },
	{ __LINE__, "Binding b { ESMTP_Listener { } }",
	  "t.conf:1:13: ESMTP_Listener is not allowed in Binding scope" },
	{ __LINE__, "ESMTP_Listener { Domain \"d\" { } }",
	  "t.conf:1:18: Domain is not allowed in ESMTP_Listener scope" },
	{ __LINE__, "ESMTP_Listener { Listen \"127.0.0.1:25\" { Listen \"127.0.0.1:26\" { } } }",
	  "t.conf:1:42: Listen is not allowed in Listen scope" },
	{ __LINE__, "Binding \"\" { }", "t.conf:1:9: empty Binding name" },
	{ __LINE__, "Binding { }", "t.conf:1:1: Binding needs a name: Binding \"binding1\" { ... }" },
	{ __LINE__, "ESMTP_Listener { Listen { } }",
	  "t.conf:1:18: Listen needs a name: Listen \"127.0.0.1:25\" { ... }" },
	{ __LINE__, "Binding_Group \"g\" { }\nBinding_Group \"G\" { }",
	  "t.conf:2:15: duplicate Binding_Group \"G\" (first at t.conf:1)" },
	{ __LINE__, "Binding_Group g { Binding b { } }\nBinding_Group h { Binding b { } }",
	  "t.conf:2:27: duplicate Binding \"b\" (first at t.conf:1)" },
	{ __LINE__, "Domain \"a.example\" { }\nDomain \"A.EXAMPLE.\" { }",
	  "t.conf:2:8: duplicate Domain \"A.EXAMPLE.\" (first at t.conf:1)" },
	{ __LINE__, "Domain \"/x/\" { }\nDomain \"/x/\" { }",
	  "t.conf:2:8: duplicate Domain \"/x/\" (first at t.conf:1)" },
	{ __LINE__, "Domain \"/a(/\" { }",
	  "t.conf:1:8: invalid regular expression in Domain \"/a(/\": missing closing parenthesis at offset 2" },
	{ __LINE__, "ESMTP_Listener { Listen \"127.0.0.1:25\" { }\n Listen \"127.0.0.1:025\" { } }",
	  "t.conf:2:9: duplicate Listen \"127.0.0.1:025\" (first at t.conf:1)" },
	{ __LINE__, "Hostname = a\x01z", "t.conf:1:13: unexpected control character 0x01" },
	{ __LINE__, "Hostname = \"\xc3\xa9\" Frob = 1", "t.conf:1:16: unknown option \"Frob\"" },
	{ __LINE__, "Hostname = \"a\nb\"\nFrob = 1", "t.conf:1:12: unterminated string" },
	{ __LINE__, "Hostname = \"a\\\nb\"\nFrob = 1", "t.conf:3:1: unknown option \"Frob\"" },
	{ __LINE__, "ESMTP_Listener { Listen \"\" { } }", "t.conf:1:25: empty Listen name" },
	{ __LINE__, "\xef\xbb\xbf" "Frob = 1", "t.conf:1:1: unknown option \"Frob\"" },
	{ __LINE__, "# only a comment\n\n\t  Frob=1", "t.conf:3:4: unknown option \"Frob\"" },
	{ __LINE__, "Hostname = x # comment with = { ( \" \n Frob = 1", "t.conf:2:2: unknown option \"Frob\"" },
};

/* Listen addresses, good and bad. */
static void test_listen_addresses(void)
{
	static const struct {
		const char *in;
		const char *canon;	/* NULL: invalid */
	} t[] = {
		{ "127.0.0.1:2525", "127.0.0.1:2525" },
		{ "0.0.0.0:25", "0.0.0.0:25" },
		{ ":25", "0.0.0.0:25" },
		{ "*:25", "0.0.0.0:25" },
		{ "[::1]:2525", "[::1]:2525" },
		{ "[0:0::1]:2525", "[::1]:2525" },
		{ "[*]:25", "[::]:25" },
		{ "[::]:25", "[::]:25" },
		{ "10.0.0.1:0", "10.0.0.1:0" },
		{ "10.0.0.1:65535", "10.0.0.1:65535" },
		{ "10.0.0.1:65536", NULL },
		{ "10.0.0.1:", NULL },
		{ "10.0.0.1", NULL },
		{ "10.0.0.1:abc", NULL },
		{ "10.0.0.1:25x", NULL },
		{ "10.0.0.1:000025", NULL },
		{ "::1:25", NULL },
		{ "[::1]25", NULL },
		{ "[::1]", NULL },
		{ "[::1:25", NULL },
		{ "[1.2.3.4]:25", NULL },
		{ "localhost:25", NULL },
		{ "300.1.1.1:25", NULL },
	};
	struct str text = STR_INIT, err = STR_INIT;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		str_clear(&text);
		str_appendf(&text, "ESMTP_Listener {\n  Listen \"%s\" { }\n}\n", t[i].in);
		struct conf *c = load(str_cstr(&text), &err);

		if (t[i].canon) {
			if (c == NULL || conf_listener_count(c) != 1 ||
			    strcmp(conf_listener_address(conf_listener_at(c, 0)), t[i].canon) != 0) {
				fprintf(stderr, "%s:%d: Listen \"%s\": %s\n", __FILE__, __LINE__, t[i].in,
					c ? conf_listener_address(conf_listener_at(c, 0)) : str_cstr(&err));
				check_failures++;
			}
		} else {
			struct str want = STR_INIT;

			str_appendf(&want, "t.conf:2:10: \"%s\" is not a valid listen address "
				    "(use \"ip:port\" or \"[ipv6]:port\")", t[i].in);
			if (c != NULL || strcmp(str_cstr(&err), str_cstr(&want)) != 0) {
				fprintf(stderr, "%s:%d: Listen \"%s\" accepted or wrong error: %s\n", __FILE__,
					__LINE__, t[i].in, str_cstr(&err));
				check_failures++;
			}
			str_free(&want);
		}
		conf_unref(c);
	}
	str_free(&text);
	str_free(&err);
}

static void test_errors(void)
{
	for (size_t i = 0; i < sizeof(ecases) / sizeof(ecases[0]); i++)
		expect_error(ecases[i].line, ecases[i].text, ecases[i].err);

	/* Files that cannot be read at all. */
	struct str err = STR_INIT;
	CHECK(conf_load_file("config/no-such.conf", &err) == NULL);
	CHECK_STREQ(str_cstr(&err), "config/no-such.conf: cannot open configuration: No such file or directory");
	str_clear(&err);
	CHECK(conf_load_file("config", &err) == NULL);
	CHECK_STREQ(str_cstr(&err), "config: cannot open configuration: Is a directory");
	str_free(&err);

	/* err may be NULL. */
	CHECK(conf_load_string("Frob = 1", "t.conf", NULL) == NULL);
	CHECK(conf_load_file("config/no-such.conf", NULL) == NULL);

	/* Errors are appended. */
	err = (struct str)STR_INIT;
	str_appends(&err, "prefix: ");
	CHECK(conf_load_string("Frob = 1", "t.conf", &err) == NULL);
	CHECK_STREQ(str_cstr(&err), "prefix: t.conf:1:1: unknown option \"Frob\"");
	str_free(&err);

	/* Case-insensitive names everywhere. */
	struct conf *c = must_load(__LINE__,
		"binding_group \"g\" { BINDING \"b\" { domain \"d\" { retry_interval = 5 } } }\n"
		"esmtp_LISTENER { listen \"127.0.0.1:1\" { RELAY_HOSTS = ( ::1 ) } }\n"
		"INCLUDE \"config/inc/nested/deeper.conf\"\n");
	if (c) {
		CHECK_INTEQ(get_i(c, CONF_OPT_RETRY_INTERVAL, "B", "D"), 5);
		CHECK_INTEQ(conf_int(c, CONF_OPT_EVENT_LOOPS), 3);
		conf_unref(c);
	}
}

/* The golden bad_*.conf files: the first line says the expected error. */
static void test_bad_files(void)
{
	DIR *d = opendir("config");
	struct dirent *e;
	int seen = 0;

	CHECK(d != NULL);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);

		if (strncmp(e->d_name, "bad_", 4) != 0 || n < 5 || strcmp(e->d_name + n - 5, ".conf") != 0)
			continue;
		char path[512], want[1024] = "";
		snprintf(path, sizeof(path), "config/%s", e->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL || fgets(want, sizeof(want), f) == NULL || strncmp(want, "# expect: ", 10) != 0) {
			fprintf(stderr, "%s: no \"# expect: \" first line\n", path);
			check_failures++;
			if (f)
				fclose(f);
			continue;
		}
		fclose(f);
		want[strcspn(want, "\n")] = '\0';

		struct str err = STR_INIT;
		struct conf *c = conf_load_file(path, &err);
		if (c != NULL || strcmp(str_cstr(&err), want + 10) != 0) {
			fprintf(stderr, "%s: got \"%s\"\n%*s expected \"%s\"\n", path,
				c ? "(loaded)" : str_cstr(&err), (int)strlen(path), "", want + 10);
			check_failures++;
		}
		conf_unref(c);
		str_free(&err);
		seen++;
	}
	closedir(d);
	CHECK(seen >= 20);
}

/* ======================================================================
 * Scope fallback
 * ====================================================================== */

static void test_fallback(void)
{
	struct conf *c = must_load_file("config/good_fallback.conf");
	const enum conf_opt MOC = CONF_OPT_MAX_OUTBOUND_CONNECTIONS;

	if (c == NULL)
		return;
	/* binding::domain > group::domain > global Domain > Binding > group > global */
	CHECK_INTEQ(get_i(c, MOC, NULL, NULL), 1);
	CHECK_INTEQ(get_i(c, MOC, "b1", "example.com"), 4);
	CHECK_INTEQ(get_i(c, MOC, "B1", "EXAMPLE.COM."), 4);
	CHECK_INTEQ(get_i(c, MOC, "b1", "grouped.example"), 5);
	CHECK_INTEQ(get_i(c, MOC, "b1", "other.test"), 3);
	CHECK_INTEQ(get_i(c, MOC, "b1", NULL), 3);
	CHECK_INTEQ(get_i(c, MOC, "b2", "example.com"), 7);
	CHECK_INTEQ(get_i(c, MOC, "b2", "other.test"), 2);
	CHECK_INTEQ(get_i(c, MOC, "b2", "grouped.example"), 5);
	CHECK_INTEQ(get_i(c, MOC, "solo", "grouped.example"), 6);
	CHECK_INTEQ(get_i(c, MOC, "solo", "example.com"), 7);
	CHECK_INTEQ(get_i(c, MOC, NULL, "example.com"), 7);
	CHECK_INTEQ(get_i(c, MOC, NULL, "grouped.example"), 1);
	CHECK_INTEQ(get_i(c, MOC, "nope", "other.test"), 1);
	CHECK_INTEQ(get_i(c, MOC, NULL, "other.test"), 1);
	/* regex domains: after exact names, before the binding */
	CHECK_INTEQ(get_i(c, MOC, NULL, "www.example.com"), 8);
	CHECK_INTEQ(get_i(c, MOC, "b1", "www.example.com"), 8);
	CHECK_INTEQ(get_i(c, MOC, NULL, "notexample.com"), 1);
	/* per option: the exact stanza that does not set it falls through */
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_DELIVERIES_PER_CONNECTION, "b1", "example.com"), 70);
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_RECIPIENTS_PER_BATCH, NULL, "example.com"), 80);
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_RECIPIENTS_PER_BATCH, "b1", "example.com"), 80);
	/* regexes in file order, first one that matches and sets the option */
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_RECIPIENTS_PER_BATCH, NULL, "mx.corp.test"), 81);
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_RECIPIENTS_PER_BATCH, NULL, "MX.CORP.TEST"), 81);
	CHECK_INTEQ(get_i(c, CONF_OPT_IDLE_TIMEOUT, NULL, "mx.corp.test"), 60);
	CHECK_INTEQ(get_i(c, CONF_OPT_CONNECT_TIMEOUT, NULL, "mx.corp.test"), 45);
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_RECIPIENTS_PER_BATCH, NULL, "other.corp.test"), 82);
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_RECIPIENTS_PER_BATCH, NULL, "nomatch.test"), 100);
	/* conf_get_where names the stanza each answer came from (the console's config show). */
	static const struct {
		const char *binding, *domain, *where;
		int64_t v;
	} wh[] = {
		{ NULL, NULL, "global", 1 },
		{ "b1", "example.com", "Binding_Group \"group1\" Binding \"b1\" Domain \"example.com\"", 4 },
		{ "b1", "grouped.example", "Binding_Group \"group1\" Domain \"grouped.example\"", 5 },
		{ "b1", "other.test", "Binding_Group \"group1\" Binding \"b1\"", 3 },
		{ "b2", "other.test", "Binding_Group \"group1\"", 2 },
		{ NULL, "example.com", "Domain \"example.com\"", 7 },
		{ NULL, "www.example.com", "Domain \"/(^|[.])example[.]com$/\"", 8 },
		{ "nope", "other.test", "global", 1 },
	};
	for (size_t i = 0; i < sizeof(wh) / sizeof(wh[0]); i++) {
		struct str where = STR_INIT;
		const struct conf_value *v = conf_get_where(c, MOC, wh[i].binding, wh[i].domain, &where);

		CHECK_STREQ(str_cstr(&where), wh[i].where);
		CHECK_INTEQ(v->u.i, wh[i].v);
		CHECK(v == conf_get(c, MOC, wh[i].binding, wh[i].domain));
		str_free(&where);
	}
	{
		struct str where = STR_INIT;
		const struct conf_value *v = conf_get_where(c, CONF_OPT_MAX_DNS_TTL, "b1", "x.test", &where);

		CHECK_STREQ(str_cstr(&where), "default");
		CHECK(v->file == NULL);
		str_free(&where);
	}
	/* other options, other scopes */
	CHECK_INTEQ(get_i(c, CONF_OPT_RETRY_INTERVAL, NULL, NULL), 600);
	CHECK_INTEQ(get_i(c, CONF_OPT_RETRY_INTERVAL, "b2", "x.test"), 30);
	CHECK_INTEQ(get_i(c, CONF_OPT_RETRY_INTERVAL, "b1", "x.test"), 600);
	CHECK_INTEQ(get_i(c, CONF_OPT_MESSAGE_EXPIRATION, "b1", "x.test"), 172800);
	CHECK_INTEQ(get_i(c, CONF_OPT_MESSAGE_EXPIRATION, "solo", "x.test"), 86400);
	CHECK(conf_get(c, CONF_OPT_MESSAGE_EXPIRATION, "solo", NULL)->file == NULL);
	CHECK_INTEQ(get_i(c, CONF_OPT_TLS, "solo", "example.org"), CONF_TLS_REQUIRED);
	CHECK_INTEQ(get_i(c, CONF_OPT_TLS, "SOLO", "Example.Org"), CONF_TLS_REQUIRED);
	CHECK_INTEQ(get_i(c, CONF_OPT_TLS, "b1", "example.org"), CONF_TLS_IFAVAILABLE);
	CHECK(conf_get(c, CONF_OPT_SUSPEND_DELIVERY, NULL, "example.net")->u.b);
	CHECK(conf_get(c, CONF_OPT_SUSPEND_DELIVERY, "b1", "EXAMPLE.NET.")->u.b);
	CHECK(!conf_get(c, CONF_OPT_SUSPEND_DELIVERY, "b1", "example.com")->u.b);
	CHECK_STREQ(conf_get(c, CONF_OPT_BIND_ADDRESS, "b1", NULL)->u.s, "192.0.2.1");
	CHECK_STREQ(conf_get(c, CONF_OPT_BIND_ADDRESS, "b1", "example.com")->u.s, "192.0.2.1");
	CHECK(conf_get(c, CONF_OPT_BIND_ADDRESS, "b2", NULL)->u.s == NULL);
	CHECK_INTEQ(conf_get(c, CONF_OPT_OUTBOUND_THROTTLE_MESSAGES, "b2", "x")->u.t.count, 100);
	CHECK_INTEQ(conf_get(c, CONF_OPT_OUTBOUND_THROTTLE_MESSAGES, "b2", "x")->u.t.period, 60);

	/* where a value came from */
	const struct conf_value *v = conf_get(c, MOC, "b1", "example.com");
	CHECK_STREQ(v->file, "config/good_fallback.conf");
	CHECK_INTEQ(v->line, 21);

	/* bindings and domains as configured */
	CHECK_INTEQ(conf_binding_count(c), 3);
	CHECK_STREQ(conf_binding_name(c, 0), "b1");
	CHECK_STREQ(conf_binding_name(c, 1), "b2");
	CHECK_STREQ(conf_binding_name(c, 2), "solo");
	CHECK(conf_binding_name(c, 3) == NULL);
	CHECK_STREQ(conf_binding_group_of(c, "b1"), "group1");
	CHECK_STREQ(conf_binding_group_of(c, "B2"), "group1");
	CHECK(conf_binding_group_of(c, "solo") == NULL);
	CHECK(conf_binding_group_of(c, "nope") == NULL);
	CHECK(conf_binding_group_of(c, NULL) == NULL);
	CHECK(conf_binding_exists(c, "SOLO"));
	CHECK(!conf_binding_exists(c, "group1"));
	CHECK(!conf_binding_exists(c, NULL));
	CHECK(conf_domain_configured(c, "example.com"));
	CHECK(conf_domain_configured(c, "Example.COM."));
	CHECK(conf_domain_configured(c, "grouped.example"));
	CHECK(conf_domain_configured(c, "example.org"));
	CHECK(conf_domain_configured(c, "example.net"));
	CHECK(!conf_domain_configured(c, "www.example.com"));
	CHECK(!conf_domain_configured(c, "/corp/"));
	CHECK(!conf_domain_configured(c, NULL));
	CHECK_STREQ(conf_source(c), "config/good_fallback.conf");
	CHECK_INTEQ(conf_listener_count(c), 0);
	CHECK(conf_listener_at(c, 0) == NULL);

	/* reference counting */
	CHECK(conf_ref(c) == c);
	conf_unref(c);
	conf_unref(c);
	conf_unref(NULL);
	CHECK(conf_ref(NULL) == NULL);
}

/* The example of docs/configuration.md, "Fallback", says what it says. */
/* Scoped module options (API 1.2): kept as written, found with conf_get's fallback chain. */
static void test_scoped(void)
{
	const char *text =
		"x_sign = g\n"
		"Domain \"d.test\" { x_sign = gd }\n"
		"Domain \"/^re\\\\.test$/\" { x_sign = rx }\n"
		"Binding_Group \"grp\" { x_sign = grp  Binding \"b1\" { Domain \"d.test\" { x_sign = b1d } } }\n"
		"Binding \"b2\" { x_sign = ( a \"b c\" ) }\n"
		"mod \"i\" { }\n";
	struct conf *c = must_load(__LINE__, text);
	const struct conf_scoped_setting *s;

	if (c == NULL)
		return;
	CHECK_INTEQ(conf_scoped_count(c), 6);
	s = conf_scoped_at(c, 0);
	CHECK(s && strcmp(s->opt.name, "x_sign") == 0 && s->opt.line == 1 && s->opt.col == 1);
	CHECK(s && strcmp(s->file, "t.conf") == 0 && strcmp(s->scope, "global") == 0);
	CHECK(conf_scoped_at(c, 6) == NULL);
#define SCOPED(b, d) ((s = conf_scoped_get(c, "X_SIGN", b, d)) ? s->opt.v[0].text : "(none)")
	CHECK_STREQ(SCOPED(NULL, NULL), "g");
	CHECK_STREQ(SCOPED(NULL, "D.test."), "gd");
	CHECK_STREQ(SCOPED(NULL, "re.test"), "rx");
	CHECK_STREQ(SCOPED("b1", "d.test"), "b1d");
	CHECK_STREQ(SCOPED("b1", "other.test"), "grp");
	CHECK_STREQ(SCOPED("b1", "re.test"), "rx");
	CHECK_STREQ(SCOPED("b2", "d.test"), "gd");
	CHECK_STREQ(SCOPED("b2", NULL), "a");
	CHECK(conf_scoped_get(c, "x_sign", "b2", NULL)->opt.is_list);
	CHECK(conf_scoped_get(c, "other", "b1", "d.test") == NULL);
#undef SCOPED
	conf_unref(c);

	/* none set anywhere */
	c = must_load(__LINE__, "mod { }");
	if (c) {
		CHECK_INTEQ(conf_scoped_count(c), 0);
		CHECK(conf_scoped_get(c, "x_sign", "b", "d") == NULL);
		conf_unref(c);
	}
	/* without any module stanza: an unknown option, as always */
	expect_error(__LINE__, "Spoolbase = \"/x\"\nx_sign = true",
		     "t.conf:2:1: unknown option \"x_sign\"");
	/* a duplicate in one stanza; listeners never take them */
	expect_error(__LINE__, "mod { }\nDomain \"d\" { x = 1 X = 2 }",
		     "t.conf:2:20: duplicate option \"X\" in this scope (first set at t.conf:2)");
	expect_error(__LINE__, "mod { }\nESMTP_Listener { x_sign = 1 }",
		     "t.conf:2:18: unknown option \"x_sign\"");
}

static void test_doc_example(void)
{
	struct conf *c = must_load(__LINE__,
		"Max_Outbound_Connections = 30\n"
		"Binding_Group \"pool\" {\n"
		"  Max_Outbound_Connections = 10\n"
		"  Binding \"ip1\" {\n"
		"    Bind_Address = \"192.0.2.1\"\n"
		"    Domain \"example.com\" {\n"
		"      Max_Outbound_Connections = 2\n"
		"    }\n"
		"  }\n"
		"}\n"
		"Binding \"ip2\" { }\n"
		"Domain \"example.com\" {\n"
		"  Max_Outbound_Connections = 5\n"
		"}\n");

	if (c == NULL)
		return;
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, "ip1", "example.com"), 2);
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, "ip1", "example.net"), 10);
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, "ip2", "example.com"), 5);
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, NULL, "example.com"), 5);
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, "ip2", "example.net"), 30);
	conf_unref(c);
}

/* A big configuration: thousands of domains still resolve (hash growth). */
static void test_many_domains(void)
{
	struct str text = STR_INIT;

	str_appends(&text, "Binding \"b\" {\n");
	for (int i = 0; i < 3000; i++)
		str_appendf(&text, "  Domain \"d%d.example\" { Max_Outbound_Connections = %d }\n", i, i % 500 + 1);
	str_appends(&text, "}\n");
	for (int i = 0; i < 5000; i++)
		str_appendf(&text, "Domain \"g%d.EXAMPLE\" { Retry_Interval = %d }\n", i, i + 1);

	struct conf *c = must_load(__LINE__, str_cstr(&text));
	str_free(&text);
	if (c == NULL)
		return;
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, "b", ""), 32);
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, "b", "d3000.example"), 32);
	char d[64];
	for (int i = 0; i < 3000; i += 13) {
		snprintf(d, sizeof(d), "D%d.Example", i);
		CHECK_INTEQ(get_i(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, "b", d), i % 500 + 1);
	}
	for (int i = 0; i < 5000; i += 17) {
		snprintf(d, sizeof(d), "g%d.example", i);
		CHECK_INTEQ(get_i(c, CONF_OPT_RETRY_INTERVAL, "b", d), i + 1);
		CHECK(conf_domain_configured(c, d));
	}
	CHECK_INTEQ(get_i(c, CONF_OPT_RETRY_INTERVAL, "b", "g5000.example"), 1200);

	/* Not a benchmark, just a sanity line for the log. */
	struct timespec t0, t1;
	int64_t sum = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 200000; i++)
		sum += get_i(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, "b", "d42.example");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_INTEQ(sum, 200000LL * 43);
	printf("conf_get(binding, domain): %.0f ns per call (informational)\n",
	       ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 200000.0);
	conf_unref(c);
}

/* ======================================================================
 * Includes
 * ====================================================================== */

static void test_includes(void)
{
	struct conf *c = must_load_file("config/good_include.conf");

	if (c == NULL)
		return;
	CHECK_STREQ(conf_str(c, CONF_OPT_HOSTNAME), "included.example");
	CHECK_STREQ(conf_get(c, CONF_OPT_HOSTNAME, NULL, NULL)->file, "config/inc/global.conf");
	CHECK_INTEQ(conf_int(c, CONF_OPT_EVENT_LOOPS), 3);
	CHECK_STREQ(conf_get(c, CONF_OPT_EVENT_LOOPS, NULL, NULL)->file, "config/inc/nested/deeper.conf");
	CHECK_INTEQ(conf_get(c, CONF_OPT_EVENT_LOOPS, NULL, NULL)->line, 2);
	CHECK_INTEQ(get_i(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, "inc", "x"), 9);
	CHECK_INTEQ(get_i(c, CONF_OPT_RETRY_INTERVAL, "inc", "inc.example"), 3600);
	CHECK_INTEQ(get_i(c, CONF_OPT_RETRY_INTERVAL, NULL, "inc.example"), 1200);
	conf_unref(c);

	/* Including the same (non-looping) file twice sets things twice. */
	expect_error(__LINE__, "include \"config/inc/nested/deeper.conf\"\n"
		     "include \"config/inc/nested/deeper.conf\"\n",
		     "config/inc/nested/deeper.conf:2:1: duplicate option \"Event_Loops\" in this scope "
		     "(first set at config/inc/nested/deeper.conf:2)");
	/* A string-loaded config includes relative to its name's directory. */
	struct str err = STR_INIT;
	c = conf_load_string("include \"inc/nested/deeper.conf\"", "config/virtual.conf", &err);
	CHECK(c != NULL);
	if (c)
		CHECK_INTEQ(conf_int(c, CONF_OPT_EVENT_LOOPS), 3);
	conf_unref(c);
	str_free(&err);
}

/* ======================================================================
 * Listeners and relay control
 * ====================================================================== */

static void test_listeners(void)
{
	struct conf *c = must_load_file("config/good_listeners.conf");

	if (c == NULL)
		return;
	CHECK_INTEQ(conf_listener_count(c), 4);
	if (conf_listener_count(c) != 4) {
		conf_unref(c);
		return;
	}
	const struct conf_listener *l0 = conf_listener_at(c, 0), *l1 = conf_listener_at(c, 1);
	const struct conf_listener *l2 = conf_listener_at(c, 2), *l3 = conf_listener_at(c, 3);
	CHECK_STREQ(conf_listener_address(l0), "127.0.0.1:2525");
	CHECK_STREQ(conf_listener_address(l1), "[::1]:2526");
	CHECK_STREQ(conf_listener_address(l2), "0.0.0.0:25");
	CHECK_STREQ(conf_listener_address(l3), "0.0.0.0:2527");

	socklen_t len = 0;
	const struct sockaddr *sa = conf_listener_sockaddr(l0, &len);
	CHECK_INTEQ(sa->sa_family, AF_INET);
	CHECK_INTEQ(len, sizeof(struct sockaddr_in));
	CHECK_INTEQ(ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port), 2525);
	sa = conf_listener_sockaddr(l1, &len);
	CHECK_INTEQ(sa->sa_family, AF_INET6);
	CHECK_INTEQ(len, sizeof(struct sockaddr_in6));
	CHECK_INTEQ(ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port), 2526);

	/* Listen -> ESMTP_Listener -> global -> default */
	CHECK_INTEQ(conf_listener_get(c, l0, CONF_OPT_MAX_MESSAGE_SIZE)->u.i, 1024);
	CHECK_INTEQ(conf_listener_get(c, l1, CONF_OPT_MAX_MESSAGE_SIZE)->u.i, 10485760);
	CHECK_INTEQ(conf_listener_get(c, NULL, CONF_OPT_MAX_MESSAGE_SIZE)->u.i, 10485760);
	CHECK_INTEQ(conf_listener_get(c, l0, CONF_OPT_SERVER_TIMEOUT)->u.i, 60);
	CHECK_INTEQ(conf_listener_get(c, l1, CONF_OPT_SERVER_TIMEOUT)->u.i, 120);
	CHECK_INTEQ(conf_listener_get(c, NULL, CONF_OPT_SERVER_TIMEOUT)->u.i, 60);
	CHECK_INTEQ(conf_listener_get(c, l2, CONF_OPT_DATA_TIMEOUT)->u.i, 600);
	CHECK_INTEQ(conf_int(c, CONF_OPT_SERVER_TIMEOUT), 300);	/* global scope: default */

	/* Relay_Hosts: ESMTP_Listener's list replaces the global one */
	CHECK(host_ok(c, l0, "192.0.2.55"));
	CHECK(!host_ok(c, l0, "192.0.3.1"));
	CHECK(!host_ok(c, l0, "10.1.2.3"));
	CHECK(host_ok(c, l0, "2001:db8::1"));
	CHECK(host_ok(c, l0, "2001:db8:ffff:ffff::1"));
	CHECK(!host_ok(c, l0, "2001:db9::1"));
	CHECK(host_ok(c, l0, "::1"));
	CHECK(!host_ok(c, l0, "::2"));
	CHECK(host_ok(c, l0, "203.0.113.7"));
	CHECK(!host_ok(c, l0, "203.0.113.8"));
	CHECK(host_ok(c, l0, "::ffff:192.0.2.9"));	/* IPv4-mapped client */
	CHECK(!host_ok(c, l0, "::ffff:10.0.0.1"));
	CHECK(!host_ok(c, l0, "127.0.0.1"));
	CHECK(!host_ok(c, l1, "192.0.2.55"));		/* Relay_Hosts = ( ) */
	CHECK(!host_ok(c, l1, "::1"));
	CHECK(host_ok(c, l3, "192.0.2.1"));
	CHECK(host_ok(c, NULL, "192.0.2.1"));
	CHECK(!conf_relay_host_match(c, l0, NULL));
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	CHECK(!conf_relay_host_match(c, l0, (const struct sockaddr *)&un));

	/* Relay_Domains */
	CHECK(conf_relay_domain_match(c, l0, "example.com"));
	CHECK(conf_relay_domain_match(c, l0, "EXAMPLE.COM."));
	CHECK(!conf_relay_domain_match(c, l0, "www.example.com"));
	CHECK(!conf_relay_domain_match(c, l0, "example.com.evil"));
	CHECK(conf_relay_domain_match(c, l0, "a.sub.example.org"));
	CHECK(conf_relay_domain_match(c, l0, "x.y.SUB.example.org"));
	CHECK(!conf_relay_domain_match(c, l0, "sub.example.org"));
	CHECK(!conf_relay_domain_match(c, l0, "asub.example.org"));
	CHECK(conf_relay_domain_match(c, l0, "left.test"));
	CHECK(conf_relay_domain_match(c, l0, "bleft.test"));
	CHECK(conf_relay_domain_match(c, l0, "x.left.test"));
	CHECK(!conf_relay_domain_match(c, l0, "eft.test"));
	CHECK(!conf_relay_domain_match(c, l0, ""));
	CHECK(!conf_relay_domain_match(c, l0, "."));
	CHECK(!conf_relay_domain_match(c, l0, NULL));
	CHECK(!conf_relay_domain_match(c, l2, "example.com"));
	CHECK(conf_relay_domain_match(c, l2, "only.example"));
	CHECK(conf_relay_domain_match(c, NULL, "example.com"));
	conf_unref(c);

	/* Global Relay_Hosts and CIDR edges without any listener. */
	c = must_load(__LINE__, "Relay_Hosts = ( 0.0.0.0/0 )");
	if (c) {
		CHECK(host_ok(c, NULL, "8.8.8.8"));
		CHECK(host_ok(c, NULL, "::ffff:8.8.8.8"));
		CHECK(!host_ok(c, NULL, "2001:db8::1"));	/* an IPv4 block covers IPv4 only */
		conf_unref(c);
	}
	c = must_load(__LINE__, "Relay_Hosts = ( \"10.1.2.3/31\" \"fe80::/10\" \"192.168.1.77/24\" )");
	if (c) {
		CHECK(host_ok(c, NULL, "10.1.2.2"));
		CHECK(host_ok(c, NULL, "10.1.2.3"));
		CHECK(!host_ok(c, NULL, "10.1.2.4"));
		CHECK(host_ok(c, NULL, "febf::1"));
		CHECK(!host_ok(c, NULL, "fec0::1"));
		CHECK(host_ok(c, NULL, "192.168.1.1"));	/* host bits of the entry ignored */
		conf_unref(c);
	}
	c = must_load(__LINE__, "Hostname = x");
	if (c) {
		CHECK(!host_ok(c, NULL, "127.0.0.1"));	/* nothing configured: nobody relays */
		CHECK(!conf_relay_domain_match(c, NULL, "example.com"));
		conf_unref(c);
	}
}

/* ======================================================================
 * The embedded default configuration
 * ====================================================================== */

static void test_default(void)
{
	struct str err = STR_INIT;
	struct conf *c = conf_load_default(&err);

	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "default: %s\n", str_cstr(&err));
		str_free(&err);
		return;
	}
	CHECK(strncmp(conf_default_text(), "# impetus.conf", 14) == 0);
	CHECK_STREQ(conf_str(c, CONF_OPT_SPOOLBASE), "./var/spool");
	CHECK_STREQ(conf_str(c, CONF_OPT_LOG_DIRECTORY), "./var/log");
	CHECK_INTEQ(conf_listener_count(c), 1);
	const struct conf_listener *l = conf_listener_at(c, 0);
	if (l) {
		CHECK_STREQ(conf_listener_address(l), "127.0.0.1:2525");
		/* local clients relay, nobody else: not an open relay */
		CHECK(host_ok(c, l, "127.0.0.1"));
		CHECK(host_ok(c, l, "127.9.9.9"));
		CHECK(host_ok(c, l, "::1"));
		CHECK(host_ok(c, l, "::ffff:127.0.0.1"));
		CHECK(!host_ok(c, l, "10.0.0.1"));
		CHECK(!host_ok(c, l, "192.168.1.1"));
		CHECK(!host_ok(c, l, "::2"));
		CHECK(!host_ok(c, l, "2001:db8::1"));
		CHECK(!conf_relay_domain_match(c, l, "example.com"));
		CHECK(!conf_relay_domain_match(c, l, "gmail.com"));
	}
	conf_unref(c);

	/* The file on disk is the same text and parses too. */
	str_clear(&err);
	c = conf_load_file("../../etc/impetus.conf", &err);
	CHECK(c != NULL);
	if (c == NULL)
		fprintf(stderr, "etc/impetus.conf: %s\n", str_cstr(&err));
	conf_unref(c);
	FILE *f = fopen("../../etc/impetus.conf", "r");
	if (f) {
		struct str disk = STR_INIT;
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			str_append(&disk, buf, n);
		fclose(f);
		CHECK_STREQ(conf_default_text(), str_cstr(&disk));
		str_free(&disk);
	}
	str_free(&err);
}

/* ======================================================================
 * Adversarial input: must fail cleanly, never crash
 * ====================================================================== */

static char tmpdir[64];

/* load_bytes - write exactly len bytes to a file and load it. */
static struct conf *load_bytes(const char *bytes, size_t len, struct str *err, char *path, size_t plen)
{
	snprintf(path, plen, "%s/x.conf", tmpdir);
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		abort();
	if (len && fwrite(bytes, 1, len, f) != len)
		abort();
	fclose(f);
	str_clear(err);
	return conf_load_file(path, err);
}

/* expect_bytes_error - a byte string (may hold NULs) fails with "<path>:" + suffix. */
static void expect_bytes_error(int line, const char *bytes, size_t len, const char *suffix)
{
	struct str err = STR_INIT, want = STR_INIT;
	char path[128];
	struct conf *c = load_bytes(bytes, len, &err, path, sizeof(path));

	str_appendf(&want, "%s:%s", path, suffix);
	if (c != NULL || strcmp(str_cstr(&err), str_cstr(&want)) != 0) {
		fprintf(stderr, "%s:%d: got \"%s\", expected \"%s\"\n", __FILE__, line,
			c ? "(loaded)" : str_cstr(&err), str_cstr(&want));
		check_failures++;
	}
	conf_unref(c);
	str_free(&err);
	str_free(&want);
}

/* fail_cleanly - text must not crash; if it fails, err must be "t.conf:..." */
static void fail_cleanly(const char *what, const char *text)
{
	struct str err = STR_INIT;
	struct conf *c = load(text, &err);

	if (c == NULL && strncmp(str_cstr(&err), "t.conf:", 7) != 0) {
		fprintf(stderr, "%s: failed without a located error: \"%.200s\"\n", what, str_cstr(&err));
		check_failures++;
	}
	conf_unref(c);
	str_free(&err);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_adversarial(void)
{
	struct str s = STR_INIT, err = STR_INIT;
	char path[128];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		check_failures++;
		return;
	}

	/* NUL bytes anywhere */
	expect_bytes_error(__LINE__, "Hostname = \"a\0b\"\n", 17, "1:14: NUL byte in configuration");
	expect_bytes_error(__LINE__, "Host\0name = x\n", 14, "1:5: NUL byte in configuration");
	expect_bytes_error(__LINE__, "# comment \0\nHostname = x\n", 23, "1:11: NUL byte in configuration");
	expect_bytes_error(__LINE__, "Hostname = \"a\\\0\"", 16, "1:15: NUL byte in configuration");
	expect_bytes_error(__LINE__, "\0", 1, "1:1: NUL byte in configuration");
	/* an empty file is a valid (empty) configuration */
	struct conf *c = load_bytes("", 0, &err, path, sizeof(path));
	CHECK(c != NULL);
	conf_unref(c);

	/* a huge line: one 4 MiB value */
	str_appends(&s, "Hostname = \"");
	for (int i = 0; i < 4 << 20; i++)
		str_appendc(&s, (char)('a' + i % 26));
	str_appends(&s, "\"\n");
	c = load(str_cstr(&s), &err);
	CHECK(c != NULL);
	if (c)
		CHECK_INTEQ(strlen(conf_str(c, CONF_OPT_HOSTNAME)), 4 << 20);
	conf_unref(c);
	/* a huge unknown name */
	str_clear(&s);
	for (int i = 0; i < 1 << 20; i++)
		str_appendc(&s, 'x');
	str_appends(&s, " = 1");
	fail_cleanly("huge name", str_cstr(&s));
	/* a huge run of blanks then an error far to the right */
	str_clear(&s);
	for (int i = 0; i < 1 << 20; i++)
		str_appendc(&s, ' ');
	str_appends(&s, "}");
	expect_error(__LINE__, str_cstr(&s), "t.conf:1:1048577: unexpected \"}\"");

	/* deep nesting of every bracket */
	static const char *openers[] = { "{", "(", "Binding_Group \"g\" { ", "Domain \"d\" { ",
					 "Relay_Hosts = ( ", "}", ")", "ESMTP_Listener { Listen \"1.2.3.4:1\" { " };
	for (size_t k = 0; k < sizeof(openers) / sizeof(openers[0]); k++) {
		str_clear(&s);
		for (int i = 0; i < 100000; i++)
			str_appends(&s, openers[k]);
		fail_cleanly(openers[k], str_cstr(&s));
	}
	expect_error(__LINE__, "Domain \"d\" { Domain \"e\" { Domain \"f\" {",
		     "t.conf:1:14: Domain is not allowed in Domain scope");

	/* EOF in the middle of everything: every prefix of the golden files */
	static const char *golden[] = { "config/good_fallback.conf", "config/good_listeners.conf" };
	for (size_t g = 0; g < 2; g++) {
		FILE *f = fopen(golden[g], "r");
		char buf[8192];
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		CHECK(n > 100);
		for (size_t cut = 0; cut <= n; cut++) {
			str_clear(&s);
			str_append(&s, buf, cut);
			fail_cleanly(golden[g], str_cstr(&s));
		}

		/* random byte mutations, some through files so NULs get in */
		for (int iter = 0; iter < 1500; iter++) {
			str_clear(&s);
			str_append(&s, buf, n);
			int edits = 1 + (int)(rng() % 8);
			for (int e = 0; e < edits; e++) {
				static const char pick[] = "{}()\"=,#\\\n /*:.0\xff\x01";
				size_t at = rng() % n;
				s.s[at] = rng() % 3 ? pick[rng() % (sizeof(pick) - 1)] : (char)(rng() & 0xff);
			}
			if (iter % 10 == 0) {
				c = load_bytes(s.s, n, &err, path, sizeof(path));
				if (c == NULL && strncmp(str_cstr(&err), path, strlen(path)) != 0) {
					fprintf(stderr, "mutation: unlocated error \"%s\"\n", str_cstr(&err));
					check_failures++;
				}
				conf_unref(c);
			} else {
				fail_cleanly("mutation", str_cstr(&s));
			}
		}
	}

	/* include depth: a file that includes itself through a chain of names
	 * is a loop; a long chain of distinct files hits the depth cap */
	for (int i = 0; i < 20; i++) {
		char name[128], body[128];
		snprintf(name, sizeof(name), "%s/chain%d.conf", tmpdir, i);
		snprintf(body, sizeof(body), "include \"chain%d.conf\"\n", i + 1);
		FILE *f = fopen(name, "w");
		if (f) {
			fputs(body, f);
			fclose(f);
		}
	}
	snprintf(path, sizeof(path), "%s/chain0.conf", tmpdir);
	str_clear(&err);
	CHECK(conf_load_file(path, &err) == NULL);
	CHECK(strstr(str_cstr(&err), "chain15.conf:1:9: includes nested too deeply (more than 16 levels)") != NULL);
	if (!strstr(str_cstr(&err), "nested too deeply"))
		fprintf(stderr, "include depth: %s\n", str_cstr(&err));
	for (int i = 0; i < 20; i++) {
		char name[128];
		snprintf(name, sizeof(name), "%s/chain%d.conf", tmpdir, i);
		unlink(name);
	}
	unlink(path);
	snprintf(path, sizeof(path), "%s/x.conf", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	str_free(&s);
	str_free(&err);
}

/* ======================================================================
 * Readers on several threads (a generation is shared read-only)
 * ====================================================================== */

static void *reader(void *arg)
{
	struct conf *c = arg;
	long bad = 0;

	for (int i = 0; i < 20000; i++) {
		if (conf_get(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, "b1", "www.example.com")->u.i != 8)
			bad++;
		if (conf_get(c, CONF_OPT_MAX_RECIPIENTS_PER_BATCH, NULL, "mx.corp.test")->u.i != 81)
			bad++;
		if (conf_get(c, CONF_OPT_MAX_OUTBOUND_CONNECTIONS, "b2", "grouped.example")->u.i != 5)
			bad++;
		if (strcmp(conf_enum_word(CONF_OPT_TLS, CONF_TLS_NO), "no") != 0)
			bad++;
	}
	conf_unref(c);		/* each thread drops the reference it was given */
	return (void *)bad;
}

static void test_threads(void)
{
	struct conf *c = must_load_file("config/good_fallback.conf");
	pthread_t t[4];

	if (c == NULL)
		return;
	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, reader, conf_ref(c)) == 0);
	conf_unref(c);
	for (int i = 0; i < 4; i++) {
		void *bad = NULL;
		pthread_join(t[i], &bad);
		CHECK(bad == NULL);
	}
}

/* test_hostname - Hostname wins; unset, the system's name, fixed per generation. */
static void test_hostname(void)
{
	struct conf *c = must_load(__LINE__, "Hostname = \"mx.example.test\"\n");
	char sysname[256] = "";

	if (c) {
		CHECK_STREQ(conf_hostname(c), "mx.example.test");
		conf_unref(c);
	}
	c = must_load(__LINE__, "");
	if (c == NULL)
		return;
	if (gethostname(sysname, sizeof(sysname) - 1) < 0 || sysname[0] == '\0')
		snprintf(sysname, sizeof(sysname), "localhost");
	CHECK_STREQ(conf_hostname(c), sysname);
	/* The same pointer each time: resolved at load, not per call. */
	CHECK(conf_hostname(c) == conf_hostname(c));
	conf_unref(c);
	/* An empty Hostname counts as unset. */
	c = must_load(__LINE__, "Hostname = \"\"\n");
	if (c) {
		CHECK_STREQ(conf_hostname(c), sysname);
		conf_unref(c);
	}
}

/* Module stanzas are kept as written, with locations, for the module loader. */
static void test_module_stanzas(void)
{
	struct str err = STR_INIT;
	struct conf *c = load("Hostname = h\nstamp \"one\" {\n  header = \"X-A\"\n  list = ( a \"b c\" )\n}\n"
			      "json_log { }\n", &err);

	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "%s\n", str_cstr(&err));
		return;
	}
	CHECK_INTEQ((int)conf_module_count(c), 2);
	const struct conf_module_stanza *m = conf_module_at(c, 0);
	CHECK_STREQ(m->module, "stamp");
	CHECK_STREQ(m->instance, "one");
	CHECK_INTEQ(m->line, 2);
	CHECK_INTEQ((int)m->nopts, 2);
	CHECK_STREQ(m->opts[0].name, "header");
	CHECK(!m->opts[0].is_list);
	CHECK_STREQ(m->opts[0].v[0].text, "X-A");
	CHECK_INTEQ(m->opts[0].v[0].line, 3);
	CHECK_INTEQ(m->opts[0].v[0].col, 12);
	CHECK(m->opts[1].is_list);
	CHECK_INTEQ((int)m->opts[1].n, 2);
	CHECK_STREQ(m->opts[1].v[1].text, "b c");
	m = conf_module_at(c, 1);
	CHECK_STREQ(m->module, "json_log");
	CHECK(m->instance == NULL);
	CHECK_INTEQ((int)m->nopts, 0);
	CHECK(conf_module_at(c, 2) == NULL);
	conf_unref(c);
	str_free(&err);
}

/* test_module_substanzas - sub-stanzas kept as written, with locations, beside the options. */
static void test_module_substanzas(void)
{
	struct str err = STR_INIT;
	struct conf *c = load("opendkim \"o1\" {\n  key = \"/k\"\n  dkim_domain \"example.com\" {\n"
			      "    selector = \"s2\"\n    list = ( a b )\n  }\n  digest = x\n"
			      "  dkim_domain \"example.org\" { }\n  defaults { selector = s1 }\n}\n", &err);

	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "%s\n", str_cstr(&err));
		str_free(&err);
		return;
	}
	CHECK_INTEQ((int)conf_module_count(c), 1);
	const struct conf_module_stanza *m = conf_module_at(c, 0);
	CHECK_INTEQ((int)m->nopts, 2);
	CHECK_STREQ(m->opts[0].name, "key");
	CHECK_STREQ(m->opts[1].name, "digest");
	CHECK_INTEQ((int)m->nsubs, 3);
	const struct conf_module_substanza *s = &m->subs[0];
	CHECK_STREQ(s->name, "dkim_domain");
	CHECK_STREQ(s->arg, "example.com");
	CHECK_INTEQ(s->line, 3);
	CHECK_INTEQ(s->col, 3);
	CHECK_INTEQ((int)s->nopts, 2);
	CHECK_STREQ(s->opts[0].name, "selector");
	CHECK_STREQ(s->opts[0].v[0].text, "s2");
	CHECK_INTEQ(s->opts[0].v[0].line, 4);
	CHECK_INTEQ(s->opts[0].v[0].col, 16);
	CHECK(s->opts[1].is_list);
	CHECK_INTEQ((int)s->opts[1].n, 2);
	CHECK_STREQ(s->opts[1].v[1].text, "b");
	s = &m->subs[1];
	CHECK_STREQ(s->arg, "example.org");
	CHECK_INTEQ((int)s->nopts, 0);
	s = &m->subs[2];
	CHECK_STREQ(s->name, "defaults");
	CHECK(s->arg == NULL);
	CHECK_INTEQ((int)s->nopts, 1);
	CHECK_STREQ(s->opts[0].v[0].text, "s1");
	conf_unref(c);

	/*
	 * A Momentum scope impetus lacks reads as a module stanza with a
	 * sub-stanza: the loader, not the parser, says "unknown scope or module".
	 */
	c = load("Cluster_Listener {\n  Listen \"/tmp/x.sock\" { Enable = true }\n}\n", &err);
	CHECK(c != NULL);
	if (c) {
		m = conf_module_at(c, 0);
		CHECK_STREQ(m->module, "Cluster_Listener");
		CHECK_INTEQ((int)m->nsubs, 1);
		CHECK_STREQ(m->subs[0].name, "Listen");
		CHECK_STREQ(m->subs[0].arg, "/tmp/x.sock");
		CHECK_INTEQ(m->subs[0].line, 2);
		conf_unref(c);
	}
	str_free(&err);
}

/*
 * test_password_not_echoed - words and strings on the line of
 * Outbound_SMTP_AUTH_Pass never appear in an error: a stray second
 * string there may be the password (or half of one with a space).
 */
static void test_password_not_echoed(void)
{
	expect_error(__LINE__, "Outbound_SMTP_AUTH_Pass = \"a\" \"S3cret\"\n",
		     "t.conf:1:31: unexpected a string (not shown: on a password's line)");
	expect_error(__LINE__, "Outbound_SMTP_AUTH_Pass = my S3cret\n",
		     "t.conf:2:1: expected \"=\" or \"{\" after \"(not shown: on a password's line)\", "
		     "not end of file");
	expect_error(__LINE__, "Outbound_SMTP_AUTH_Pass = \"a\" S3cret = 1\n",
		     "t.conf:1:31: unknown option \"(not shown: on a password's line)\"");
	/* other lines are reported as always */
	expect_error(__LINE__, "Outbound_SMTP_AUTH_Pass = \"a\"\nBadOpt = 1\n",
		     "t.conf:2:1: unknown option \"BadOpt\"");
}

/* Control_Listener (the console, docs/console.md): Listen paths, File_Mode, fallbacks. */
static void test_control_listener(void)
{
	struct str err = STR_INIT;
	struct conf *c = load("Control_Listener {\n  Timeout = 5\n  File_Mode = 0640\n"
			      "  Listen \"/run/a\" { File_Mode = 0660 }\n  Listen \"./b\" { }\n}\n",
			      &err);

	CHECK(c != NULL);
	if (c) {
		CHECK_INTEQ(conf_control_count(c), 2);
		CHECK_STREQ(conf_control_path(c, 0), "/run/a");
		CHECK_STREQ(conf_control_path(c, 1), "./b");
		CHECK(conf_control_path(c, 2) == NULL);
		CHECK_INTEQ(conf_control_mode(c, 0), 0660);
		CHECK_INTEQ(conf_control_mode(c, 1), 0640);	/* from Control_Listener */
		CHECK_INTEQ(conf_control_get(c, SIZE_MAX, CONF_OPT_CONTROL_TIMEOUT)->u.i, 5);
		CHECK_INTEQ(conf_control_get(c, 1, CONF_OPT_CONTROL_MAX_CONNECTIONS)->u.i, 64);
		CHECK_INTEQ(conf_module_count(c), 0);
		conf_unref(c);
	}
	c = load("Control_Listener { Listen \"/x\" { } }\n", &err);
	CHECK(c != NULL);
	if (c) {
		CHECK_INTEQ(conf_control_mode(c, 0), 0600);	/* the default */
		CHECK(!conf_control_is_tcp(c, 0));
		conf_unref(c);
	}
	/* TCP: canonical names, loopback unless Allow_Remote (in the Listen or the stanza). */
	c = load("Control_Listener {\n  Listen \"127.0.0.1:02025\" { }\n  Listen \"[::1]:2026\" { }\n"
		 "  Listen \"0.0.0.0:2027\" { Allow_Remote = true }\n  Listen \"./s\" { }\n}\n", &err);
	CHECK(c != NULL);
	if (c) {
		CHECK_STREQ(conf_control_path(c, 0), "127.0.0.1:2025");
		CHECK_STREQ(conf_control_path(c, 1), "[::1]:2026");
		CHECK(conf_control_is_tcp(c, 0) && conf_control_is_tcp(c, 1) && conf_control_is_tcp(c, 2));
		CHECK(!conf_control_is_tcp(c, 3));
		CHECK(conf_control_get(c, 2, CONF_OPT_ALLOW_REMOTE)->u.b);
		CHECK(!conf_control_get(c, 0, CONF_OPT_ALLOW_REMOTE)->u.b);
		conf_unref(c);
	}
	c = load("Control_Listener {\n  Listen \"[::]:2025\" { }\n  Allow_Remote = true\n}\n", &err);
	CHECK(c != NULL);
	if (c)
		conf_unref(c);
	expect_error(__LINE__, "Control_Listener {\n  Listen \"10.0.0.1:2025\" { }\n}\n",
		     "t.conf:2:10: Control_Listener Listen \"10.0.0.1:2025\" is not a loopback address: "
		     "the console has no authentication; set Allow_Remote = true in that Listen to "
		     "accept it");
	expect_error(__LINE__, "Control_Listener {\n  Listen \"localhost:2025\" { }\n}\n",
		     "t.conf:2:10: Control_Listener Listen \"localhost:2025\" is neither a Unix socket "
		     "path (write it with a \"/\", e.g. \"./var/control\") nor a TCP address with a "
		     "port (\"127.0.0.1:2025\", \"[::1]:2025\")");
	c = load("Relay_Hosts = ( \"1.2.3.4\" )\n", &err);
	CHECK(c != NULL);
	if (c) {
		CHECK_INTEQ(conf_control_count(c), 0);
		conf_unref(c);
	}
	unsigned m = 1;
	CHECK(conf_mode_parse("0660", &m) && m == 0660);
	CHECK(conf_mode_parse("7777", &m) && m == 07777);
	CHECK(!conf_mode_parse("08", &m));
	CHECK(!conf_mode_parse("", &m));
	CHECK(!conf_mode_parse("017777", &m));
	CHECK(!conf_mode_parse("-1", &m));
	str_free(&err);
}

/* test_webhooks - Webhook "name" stanzas: values, defaults, and every refusal. */
static void test_webhooks(void)
{
	struct conf *c = must_load(__LINE__,
		"Event_Log = \"events.jsonl\"\n"
		"Webhook \"app-1.x\" {\n  Target = \"https://h.example/p?q=1\"\n"
		"  Events = ( \"Delivery\" \"Bounce\" )\n  Batch_Size = 7\n"
		"  Auth_Header = \"Bearer t\"\n  TLS_Verify = false\n}\n"
		"Webhook \"b\" { Target = \"http://127.0.0.1:9/\" }\n");

	if (c) {
		CHECK_STREQ(conf_str(c, CONF_OPT_EVENT_LOG), "events.jsonl");
		CHECK_INTEQ(conf_webhook_count(c), 2);
		CHECK_STREQ(conf_webhook_name(c, 0), "app-1.x");
		CHECK_STREQ(conf_webhook_get(c, 0, CONF_OPT_WEBHOOK_TARGET)->u.s, "https://h.example/p?q=1");
		CHECK_INTEQ(conf_webhook_get(c, 0, CONF_OPT_WEBHOOK_EVENTS)->u.list.n, 2);
		CHECK_INTEQ(conf_webhook_get(c, 0, CONF_OPT_WEBHOOK_BATCH_SIZE)->u.i, 7);
		CHECK(!conf_webhook_get(c, 0, CONF_OPT_WEBHOOK_TLS_VERIFY)->u.b);
		CHECK_INTEQ(conf_webhook_get(c, 1, CONF_OPT_WEBHOOK_BATCH_SIZE)->u.i, 100);
		CHECK_INTEQ(conf_webhook_get(c, 1, CONF_OPT_WEBHOOK_BATCH_TIMEOUT)->u.i, 1);
		CHECK(conf_webhook_get(c, 1, CONF_OPT_WEBHOOK_TLS_VERIFY)->u.b);
		CHECK(conf_webhook_get(c, 1, CONF_OPT_WEBHOOK_AUTH_HEADER)->u.s == NULL);
		CHECK(conf_webhook_name(c, 2) == NULL);
		conf_unref(c);
	}
	expect_error(__LINE__, "Webhook \"a\" { }",
		     "t.conf:1:9: Webhook \"a\" has no Target (write Target = \"https://host/path\")");
	expect_error(__LINE__, "Webhook \"a\" { Target = \"ftp://x/\" }",
		     "t.conf:1:15: Webhook \"a\": Target \"ftp://x/\" is not an http:// or https:// URL");
	expect_error(__LINE__, "Webhook \"a\" { Target = \"http://x/\" Events = ( \"Delivered\" ) }",
		     "t.conf:1:36: Webhook \"a\": unknown event type \"Delivered\" in Events (Reception, "
		     "Delivery, TransientFailure, Bounce, Expiration, Rejection, AdminAction or all)");
	expect_error(__LINE__, "Webhook \"../x\" { Target = \"http://x/\" }",
		     "t.conf:1:9: Webhook name \"../x\": use at most 64 letters, digits, '_', '-' or "
		     "'.' (not first): it names a directory");
	expect_error(__LINE__, "Webhook \"a\" { Target = \"http://x/\" }\nWebhook \"a\" { }",
		     "t.conf:2:9: duplicate Webhook \"a\" (first at t.conf:1)");
	expect_error(__LINE__, "Webhook { Target = \"http://x/\" }",
		     "t.conf:1:1: Webhook needs a name: Webhook \"events\" { ... }");
	expect_error(__LINE__, "Domain \"d\" { Webhook \"a\" { Target = \"http://x/\" } }",
		     "t.conf:1:14: Webhook is not allowed in Domain scope");
	expect_error(__LINE__, "Webhook \"a\" { Target = \"http://x/\" Batch_Size = 0 }",
		     "t.conf:1:49: value 0 out of range for Batch_Size (1..10000)");
	expect_error(__LINE__, "Webhook \"a\" { Target = \"http://x/\" Retry_Interval = 5 }",
		     "t.conf:1:36: option \"Retry_Interval\" is not allowed in Webhook scope");
}

int main(void)
{
	test_webhooks();
	test_password_not_echoed();
	test_control_listener();
	test_module_stanzas();
	test_module_substanzas();
	test_table();
	test_values();
	test_conformance_defaults();
	test_strings_and_lists();
	test_throttle();
	test_errors();
	test_listen_addresses();
	test_bad_files();
	test_fallback();
	test_scoped();
	test_doc_example();
	test_many_domains();
	test_includes();
	test_listeners();
	test_default();
	test_adversarial();
	test_threads();
	test_hostname();
	return check_done();
}
