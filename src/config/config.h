/*
 * config.h - the parsed configuration: one immutable generation
 *
 * impetus reads Momentum's ecelerity.conf syntax (see docs/configuration.md):
 *
 *     # comment
 *     Option = value                  value: bare word, "quoted", number
 *     Option = ( "a" "b" c )          list
 *     Option = [ key = "v" k2 = v2 ]   array of key = value pairs (Momentum's)
 *     Scope_Name "arg" { ... }        scoped stanza
 *     include "other.conf"
 *
 * Option names are matched case-insensitively, as Momentum does. Every
 * option is declared once in conf_options.def (name, type, default,
 * scopes, help); the parser, validation, `impetusd -t` and the docs come
 * from that table. Unknown options, values of the wrong type or range, an
 * option in a scope where it is not allowed, and syntax errors are all
 * errors reported as "file:line:col: message".
 *
 * Scopes and fallback: global -> Binding_Group "g" -> Binding "b" ->
 * Domain "d" (a Domain may appear globally, inside a Binding, giving the
 * binding::domain pair, or inside a Binding_Group). conf_get() for
 * (binding, domain) looks in binding::domain, then group::domain (the
 * binding's group), then the global Domain, then the Binding, then its
 * Binding_Group, then global, then the option's default. At each Domain
 * step an exact name that sets the option wins, then the "/regex/" Domain
 * stanzas of that same container in file order. Listener options fall
 * back Listen "addr" -> ESMTP_Listener -> global -> default.
 *
 * Names: options, scopes and domains match case-insensitively; so do
 * binding and binding group names (unique across the whole file). A
 * trailing dot on a domain is ignored. Duplicates (an option set twice
 * in one stanza, two stanzas of the same name in one container) are
 * errors, never silent overrides.
 *
 * Ownership: a struct conf is built by one thread and never changed after
 * conf_load returns; it is reference-counted, so any thread holding a
 * reference may read it. SIGHUP builds a new generation; work in flight
 * keeps the generation it started with.
 */
#ifndef IMPETUS_CONFIG_CONFIG_H
#define IMPETUS_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/str.h"

enum conf_type {
	CONF_T_BOOL,		/* true/false, yes/no, on/off, 1/0 */
	CONF_T_INT,		/* signed integer, with range */
	CONF_T_INTERVAL,	/* seconds; accepts N, Ns, Nm, Nh, Nd */
	CONF_T_SIZE,		/* bytes; accepts N, NK, NM, NG (1024-based) */
	CONF_T_STRING,
	CONF_T_LIST,		/* list of strings */
	CONF_T_ENUM,		/* one of a fixed set of words (stored as index) */
	CONF_T_THROTTLE,	/* "N" or "N/secs" */
	CONF_T_RETRIES,		/* "auto" (-1), "none" (-2) or N */
	CONF_T_LINE_LIMIT,	/* "ignore" (0), "pedantic" (998), "fix" (-1) or N */
	CONF_T_PARAMS,		/* [ key = value ... ]: list holds key, value, key, value, ... */
};

/* CONF_T_RETRIES special values. */
#define CONF_RETRIES_AUTO (-1)	/* derive the limit from Message_Expiration */
#define CONF_RETRIES_NONE (-2)	/* no limit: only Message_Expiration ends retries */

/* CONF_T_LINE_LIMIT values: N > 0 refuses lines longer than N octets. */
#define CONF_LINE_LIMIT_IGNORE 0	/* accept any length */
#define CONF_LINE_LIMIT_FIX (-1)	/* break lines longer than 998 octets */
#define CONF_LINE_LIMIT_RFC 998		/* RFC 5322 2.1.1, what "pedantic" means */

/* CONF_T_ENUM values are word indexes; these name them (test_config checks the table). */
enum conf_tls { CONF_TLS_IFAVAILABLE, CONF_TLS_REQUIRED, CONF_TLS_NO };
enum conf_bounces_inline { CONF_BOUNCES_INLINE_HEADERS, CONF_BOUNCES_INLINE_NONE, CONF_BOUNCES_INLINE_ALL };
enum conf_messageid_header { CONF_MESSAGEID_IFNEEDED, CONF_MESSAGEID_ALWAYS, CONF_MESSAGEID_NEVER,
			     CONF_MESSAGEID_IGNORE /* Momentum's word for never */ };
enum conf_date_header { CONF_DATE_IFNEEDED, CONF_DATE_PEDANTIC, CONF_DATE_IGNORE };
enum conf_missing_headers { CONF_MISSING_REJECT, CONF_MISSING_ALLOW };
enum conf_api_key_role { CONF_API_KEY_READ, CONF_API_KEY_ADMIN, CONF_API_KEY_INJECT };
enum conf_rfc2822_mode { CONF_RFC2822_FIX, CONF_RFC2822_IGNORE, CONF_RFC2822_PEDANTIC };

/* Scope bits: where an option may be written. */
#define CONF_S_GLOBAL        0x01
#define CONF_S_BINDING_GROUP 0x02
#define CONF_S_BINDING       0x04
#define CONF_S_DOMAIN        0x08
#define CONF_S_LISTENER      0x10	/* ESMTP_Listener and its Listen stanzas */
#define CONF_S_CONTROL       0x20	/* Control_Listener and its Listen stanzas */
#define CONF_S_HTTP          0x40	/* HTTP_Listener and its Listen stanzas */
#define CONF_S_HTTP_KEY      0x80	/* API_Key stanzas inside HTTP_Listener */
#define CONF_S_WEBHOOK       0x100	/* Webhook "name" stanzas (docs/events.md) */
#define CONF_S_DELIVERY (CONF_S_GLOBAL | CONF_S_BINDING_GROUP | CONF_S_BINDING | CONF_S_DOMAIN)

/* The option ids, in table order: CONF_OPT_SPOOLBASE, ... */
enum conf_opt {
#define CONF_OPTION(id, name, type, scopes, def, min, max, enumvals, help) CONF_OPT_##id,
#include "config/conf_options.def"
#undef CONF_OPTION
	CONF_OPT__COUNT
};

/* A throttle: count events per period seconds; count 0 = unlimited. */
struct conf_throttle {
	uint32_t count;
	uint32_t period;
};

/* One value, typed by the option's table entry. */
struct conf_value {
	union {
		bool b;
		int64_t i;		/* INT, INTERVAL, SIZE, ENUM (index), RETRIES (-1 = auto) */
		const char *s;		/* STRING (NULL when unset and no default) */
		struct conf_throttle t;
		struct {
			const char *const *v;
			size_t n;
		} list;
	} u;
	const char *file;	/* where it was set; NULL for the default */
	int line;
};

struct conf;
struct conf_listener;

/* conf_load_file - parse a file (and its includes). NULL + err on failure. */
struct conf *conf_load_file(const char *path, struct str *err);
/* conf_load_string - parse text; name stands for the file in messages. */
struct conf *conf_load_string(const char *text, const char *name, struct str *err);
/* conf_load_default - the embedded default configuration (etc/impetus.conf). */
struct conf *conf_load_default(struct str *err);
const char *conf_default_text(void);

struct conf *conf_ref(struct conf *c);
void conf_unref(struct conf *c);

/*
 * conf_get - the value of an option for a (binding, domain) pair with
 * scope fallback; binding and domain may be NULL. Domain names match
 * case-insensitively; "/regex/" Domain stanzas are tried after exact names.
 * Never NULL: unset options yield their default.
 */
const struct conf_value *conf_get(const struct conf *c, enum conf_opt opt,
				  const char *binding, const char *domain);

/*
 * conf_get_where - conf_get, also appending to where the stanza the value
 * comes from: "default", "global", 'Binding "b"', 'Binding_Group "g"
 * Domain "d"', 'Binding "b" Domain "/re/"' (the console's config show).
 */
const struct conf_value *conf_get_where(const struct conf *c, enum conf_opt opt,
					const char *binding, const char *domain,
					struct str *where);

/* Shorthands for global scope. */
bool conf_bool(const struct conf *c, enum conf_opt opt);
int64_t conf_int(const struct conf *c, enum conf_opt opt);
const char *conf_str(const struct conf *c, enum conf_opt opt);

/* Bindings and binding groups as configured (global default binding excluded). */
size_t conf_binding_count(const struct conf *c);
const char *conf_binding_name(const struct conf *c, size_t i);
/* conf_binding_group_of - the group holding binding, or NULL. */
const char *conf_binding_group_of(const struct conf *c, const char *binding);
/* conf_binding_exists - whether a Binding stanza has this name. */
bool conf_binding_exists(const struct conf *c, const char *binding);
/* conf_binding_canonical - the name as the Binding stanza spells it ("B2" for "b2"), or NULL. */
const char *conf_binding_canonical(const struct conf *c, const char *binding);

/* Domains named in Domain stanzas (exact names, any binding), for relay control. */
bool conf_domain_configured(const struct conf *c, const char *domain);

/* ESMTP listeners: one per Listen "addr" stanza under ESMTP_Listener. */
size_t conf_listener_count(const struct conf *c);
const struct conf_listener *conf_listener_at(const struct conf *c, size_t i);
const char *conf_listener_address(const struct conf_listener *l);	/* "ip:port" or "[v6]:port" */
/*
 * conf_listener_get - a listener option with Listen -> ESMTP_Listener ->
 * global fallback; l may be NULL (start at ESMTP_Listener).
 */
const struct conf_value *conf_listener_get(const struct conf *c, const struct conf_listener *l,
					   enum conf_opt opt);

/* conf_listener_get_where - conf_listener_get, naming the stanza as conf_get_where does. */
const struct conf_value *conf_listener_get_where(const struct conf *c,
						 const struct conf_listener *l,
						 enum conf_opt opt, struct str *where);

/* Table access, for `impetusd -t`, docs and the console. */
const char *conf_option_name(enum conf_opt opt);
enum conf_type conf_option_type(enum conf_opt opt);
const char *conf_option_help(enum conf_opt opt);
/* conf_option_lookup - id by name (case-insensitive); -1 when unknown. */
int conf_option_lookup(const char *name);
/* conf_option_suggest - a core option name close to name (for "did you mean"), or NULL. */
const char *conf_option_suggest(const char *name);
/* conf_name_distance - Levenshtein distance ignoring case, capped at 9 for long strings. */
unsigned conf_name_distance(const char *a, const char *b);

/* conf_parse_throttle - parse "N" or "N/secs"; false on bad syntax. */
bool conf_parse_throttle(const char *s, struct conf_throttle *out);

/*
 * Additions (config owner). Errors from the conf_load_* functions are
 * appended to err as one line "file:line:col: message" (no newline);
 * loading stops at the first error. A file that cannot be opened at all
 * gives "file: cannot open configuration: <reason>".
 */

/*
 * conf_relay_domain_match - whether Relay_Domains (listener scope with
 * fallback; l may be NULL) covers domain: exact names match
 * case-insensitively, "*.example.com" matches subdomains only,
 * "*example.com" any name ending in "example.com". A trailing dot on
 * domain is ignored.
 */
bool conf_relay_domain_match(const struct conf *c, const struct conf_listener *l,
			     const char *domain);
/*
 * conf_relay_host_match - whether the client address sa falls in a
 * Relay_Hosts entry (listener scope with fallback). IPv4-mapped IPv6
 * clients (::ffff:a.b.c.d) match IPv4 entries. Non-IP families never match.
 */
bool conf_relay_host_match(const struct conf *c, const struct conf_listener *l,
			   const struct sockaddr *sa);

/*
 * SMTP AUTH of a listener (docs/smtp-server.md "Authentication"), with
 * Listen -> ESMTP_Listener -> global fallback for each option; l may be
 * NULL. mechs is what SMTP_Extensions offers ("AUTH LOGIN PLAIN");
 * each offered mechanism has a password file (the load refuses a
 * configuration where it has none): AuthPlainParameters for PLAIN,
 * AuthLoginParameters for LOGIN, each falling back to the other. The
 * password files belong to the configuration: valid while the caller
 * holds a reference.
 */
#define CONF_AUTH_PLAIN 0x1u
#define CONF_AUTH_LOGIN 0x2u

struct passwd_db;

struct conf_auth {
	unsigned mechs;				/* CONF_AUTH_* offered; 0: no AUTH */
	const struct passwd_db *plain_db;	/* NULL unless PLAIN is offered */
	const struct passwd_db *login_db;	/* NULL unless LOGIN is offered */
	bool plain_log, login_log;		/* log_authentication = true */
	bool allow_plaintext;			/* Auth_Allow_Plaintext */
};

void conf_listener_auth(const struct conf *c, const struct conf_listener *l, struct conf_auth *out);

/*
 * Control listeners (the console's sockets, docs/console.md): one per
 * Listen stanza under Control_Listener, i in 0 .. count - 1: a Unix
 * socket path (it has a "/") or a canonical TCP address.
 * conf_control_get reads an option with Listen -> Control_Listener ->
 * default fallback (i == SIZE_MAX: Control_Listener itself).
 * conf_control_mode is File_Mode as a number (checked when loading).
 */
size_t conf_control_count(const struct conf *c);
const char *conf_control_path(const struct conf *c, size_t i);
const struct conf_value *conf_control_get(const struct conf *c, size_t i, enum conf_opt opt);
unsigned conf_control_mode(const struct conf *c, size_t i);
/* conf_control_is_tcp - Listen i is a TCP address ("ip:port", canonical), not a Unix socket path. */
bool conf_control_is_tcp(const struct conf *c, size_t i);
/* conf_mode_parse - an octal file mode "0660" / "660" (0..07777); false when not one. */
bool conf_mode_parse(const char *s, unsigned *out);

/*
 * HTTP listeners (docs/http-api.md): one per Listen "ip:port" stanza
 * under HTTP_Listener, i in 0 .. count - 1, with its canonical address.
 * conf_http_get reads an option with Listen -> HTTP_Listener -> default
 * fallback (i == SIZE_MAX: HTTP_Listener itself); global values never
 * apply, so a global TLS_Certificate for SMTP does not turn HTTP into
 * HTTPS. API keys: one per API_Key "name" stanza, in file order; the
 * parser checked that each has a well-formed Hash.
 */
size_t conf_http_count(const struct conf *c);
const char *conf_http_address(const struct conf *c, size_t i);
const struct sockaddr *conf_http_sockaddr(const struct conf *c, size_t i, socklen_t *len);
const struct conf_value *conf_http_get(const struct conf *c, size_t i, enum conf_opt opt);
size_t conf_http_key_count(const struct conf *c);
const char *conf_http_key_name(const struct conf *c, size_t i);
const char *conf_http_key_hash(const struct conf *c, size_t i);
enum conf_api_key_role conf_http_key_role(const struct conf *c, size_t i);
/*
 * Webhooks: one per Webhook "name" stanza, in file order. conf_webhook_get
 * reads an option of stanza i (its value or the option's default).
 */
size_t conf_webhook_count(const struct conf *c);
const char *conf_webhook_name(const struct conf *c, size_t i);
const struct conf_value *conf_webhook_get(const struct conf *c, size_t i, enum conf_opt opt);
/* conf_http_hash_ok - a crypt(3) hash ("$id$...") or 64 hex digits (SHA-256). */
bool conf_http_hash_ok(const char *hash);

/* conf_listener_sockaddr - the parsed Listen address, ready for bind(). */
const struct sockaddr *conf_listener_sockaddr(const struct conf_listener *l, socklen_t *len);

/* conf_source - the file (or name) the configuration was loaded from. */
const char *conf_source(const struct conf *c);

/*
 * conf_hostname - the server's own name: Hostname, or the system's name
 * (gethostname(), "localhost" if that fails) when unset. Resolved once
 * when the generation is loaded, so it costs a pointer read; never NULL.
 * Any thread holding a reference.
 */
const char *conf_hostname(const struct conf *c);

/*
 * conf_attach - hang ext on the generation before it is shared (the
 * module generation, src/api/api.h); release(ext) runs when the last
 * reference goes, on whatever thread drops it. conf_attached returns it
 * (NULL when nothing is attached). The configuration does not look
 * inside ext.
 */
void conf_attach(struct conf *c, void *ext, void (*release)(void *ext));
void *conf_attached(const struct conf *c);

/*
 * Module stanzas. At global scope, a stanza whose name is neither a scope
 * nor an option declares a module instance, Momentum's way:
 *
 *     header_stamp "stamp1" { header = "X-Stamp" value = "%{msg:id}" }
 *     json_log { path = "/var/log/impetus/events.jsonl" }
 *
 * A module stanza may also hold sub-stanzas, one level deep, each with
 * options only (module API 1.1):
 *
 *     opendkim "opendkim1" { key = "/k/%{d}" dkim_domain "example.com" { selector = "s2" } }
 *
 * The parser keeps such a stanza as written (options, sub-stanzas and
 * their items with locations); the module loader (src/api/api_module.c)
 * finds the module, checks the options and sub-stanzas against its tables
 * and reports file:line:col errors. A module name is [A-Za-z0-9_]+; an
 * option set twice in one stanza or sub-stanza, two stanzas with the same
 * module and instance name, two sub-stanzas with the same name and
 * argument in one stanza, and a stanza inside a sub-stanza are parse
 * errors. The parser does not know which modules exist: an unknown
 * Momentum scope holding stanzas of its own (Control_Listener { Listen
 * ... }) reads as a module stanza, and the loader reports it as "unknown
 * scope or module" with file:line:col.
 */
struct conf_module_value {
	const char *text;
	int line, col;
};

struct conf_module_option {
	const char *name;		/* as written */
	int line, col;
	bool is_list;			/* written "( ... )" */
	const struct conf_module_value *v;
	size_t n;
};

/* One sub-stanza of a module stanza: name ["arg"] { option = value ... }. */
struct conf_module_substanza {
	const char *name;		/* as written */
	const char *arg;		/* NULL: written without an argument */
	int line, col;			/* of the name */
	const struct conf_module_option *opts;
	size_t nopts;
};

struct conf_module_stanza {
	const char *module;		/* as written */
	const char *instance;		/* NULL: written without a name */
	const char *file;
	int line, col;
	const struct conf_module_option *opts;
	size_t nopts;
	const struct conf_module_substanza *subs;	/* in file order */
	size_t nsubs;
};

size_t conf_module_count(const struct conf *c);
/* conf_module_at - the i-th module stanza, in file order. */
const struct conf_module_stanza *conf_module_at(const struct conf *c, size_t i);

/*
 * Scoped module options (module API 1.2). An option the core table does
 * not know, written as "name = value" in the global, Binding_Group,
 * Binding or Domain scope (binding::domain included; never in listener
 * scopes), is kept as written for the module that declares it in its
 * scoped option table (opendkim's `opendkim_sign`). The parser checks
 * only the syntax and duplicates in one scope; the module loader checks
 * names, types and values with file:line:col. A configuration that
 * declares no module stanza at all cannot have such options: there the
 * first one is the parse error "unknown option", as before.
 */
struct conf_scoped_setting {
	struct conf_module_option opt;	/* name, values and location as written */
	const char *file;		/* where it is written */
	const char *scope;		/* "global", "Binding", ... for messages */
	const struct conf_scoped_setting *next;	/* the next one of the same stanza */
};

/* conf_scoped_count / conf_scoped_at - every scoped setting, in file order. */
size_t conf_scoped_count(const struct conf *c);
const struct conf_scoped_setting *conf_scoped_at(const struct conf *c, size_t i);
/*
 * conf_scoped_get - the scoped setting name (case-insensitive) for
 * (binding, domain) with conf_get's fallback chain; NULL when no scope
 * on the chain sets it.
 */
const struct conf_scoped_setting *conf_scoped_get(const struct conf *c, const char *name,
						  const char *binding, const char *domain);


/*
 * conf_scalar_parse - parse text as a BOOL (0/1 in *out), INT, INTERVAL
 * (seconds) or SIZE (bytes) the way option values are parsed. Returns 0,
 * -1 for bad syntax, -2 for a number that does not fit in 64 bits.
 */
int conf_scalar_parse(enum conf_type type, const char *text, int64_t *out);

/* More table access: scopes (CONF_S_* bits), default text (NULL: none), range, enum words. */
unsigned conf_option_scopes(enum conf_opt opt);
const char *conf_option_default(enum conf_opt opt);
void conf_option_range(enum conf_opt opt, int64_t *min, int64_t *max);
const char *conf_option_enum_words(enum conf_opt opt);
const char *conf_type_name(enum conf_type t);
/* conf_enum_word - the word of an ENUM value ("?" when out of range). */
const char *conf_enum_word(enum conf_opt opt, int64_t index);
/* conf_value_format - append v as configuration text ("300", "( \"a\" \"b\" )", "(unset)"). */
void conf_value_format(enum conf_opt opt, const struct conf_value *v, struct str *out);
/*
 * conf_doc_option_table - append the Markdown option table of
 * docs/configuration.md ("Options"), generated from conf_options.def;
 * what `impetusd -t --list` prints.
 */
void conf_doc_option_table(struct str *out);

#endif
