/*
 * conf_int.h - internals shared by the files of src/config/
 *
 * Nothing outside src/config/ includes this. A struct conf is a tree of
 * scope nodes (global, Binding_Group, Binding, Domain, ESMTP_Listener,
 * Listen) built by conf_parse.c; every node holds one pointer per option
 * (NULL = not set here), so a lookup is an array index per scope on the
 * fallback chain. Names are found through small case-insensitive hash
 * tables (struct conf_map). Everything a configuration owns lives in its
 * arena and goes away with the last conf_unref(); only the hash tables'
 * slot arrays and the compiled regexes are freed one by one.
 *
 * Ownership: built by one thread, read-only once conf_load_* returns.
 */
#ifndef IMPETUS_CONFIG_CONF_INT_H
#define IMPETUS_CONFIG_CONF_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "config/config.h"
#include "core/str.h"

/* Caps that keep hostile or broken input from costing more than it should. */
#define CONF_FILE_MAX (64u << 20)	/* bytes per configuration file */
#define CONF_INCLUDE_DEPTH_MAX 16	/* nested includes */

/* The system's name when Hostname is unset (conf_hostname). */
#define CONF_HOSTNAME_MAX 255			/* longest name gethostname() gives (HOST_NAME_MAX is 64 on Linux) */
#define CONF_HOSTNAME_FALLBACK "localhost"	/* when gethostname() fails or is empty */

/* ---- arena ----------------------------------------------------------- */

struct conf_arena_block;
struct conf_arena_cleanup;

struct conf_arena {
	struct conf_arena_block *head;
	struct conf_arena_cleanup *cleanups;	/* conf_arena_defer, run by conf_arena_free */
};

void *conf_arena_alloc(struct conf_arena *a, size_t n);	/* zeroed, max-aligned */
char *conf_arena_strndup(struct conf_arena *a, const char *s, size_t n);
char *conf_arena_strdup(struct conf_arena *a, const char *s);
void conf_arena_free(struct conf_arena *a);
/*
 * conf_arena_defer - have conf_arena_free call fn(p) (last deferred, first
 * called): for what a value owns outside the arena, such as the password
 * file an AuthLoginParameters setting loaded.
 */
void conf_arena_defer(struct conf_arena *a, void (*fn)(void *), void *p);

/* ---- case-insensitive name map ---------------------------------------- */

/*
 * Not core/strmap: ASCII case-insensitive, length-delimited keys borrowed
 * from the arena, insert-only, and one hash probed in several maps
 * (conf_map_get_h). docs/internals.md, "Hash tables", says why in full.
 */

struct conf_map_slot {
	const char *key;	/* not owned; must outlive the map */
	size_t len;
	uint32_t hash;
	void *val;
};

struct conf_map {
	struct conf_map_slot *slots;	/* heap; NULL while empty */
	size_t cap;			/* power of two */
	size_t n;
};

void *conf_map_get(const struct conf_map *m, const char *key, size_t len);
/* conf_map_get_h - the same with the key's conf_map_hash() computed once by the caller. */
void *conf_map_get_h(const struct conf_map *m, const char *key, size_t len, uint32_t hash);
uint32_t conf_map_hash(const char *key, size_t len);
void conf_map_put(struct conf_map *m, const char *key, size_t len, void *val);
void conf_map_free(struct conf_map *m);

/* conf_ascii_caseeq_n - n bytes equal ignoring ASCII case (locale-free). */
bool conf_ascii_caseeq_n(const char *a, const char *b, size_t n);
/* conf_ascii_caseeq - whole strings equal ignoring ASCII case. */
bool conf_ascii_caseeq(const char *a, const char *b);

/* ---- values ------------------------------------------------------------ */

struct conf_cidr {
	uint8_t addr[16];	/* IPv6, IPv4 as ::ffff:a.b.c.d; host bits cleared */
	uint8_t bits;		/* prefix length over the 128 bits */
};

struct conf_cidr_set {
	size_t n;
	struct conf_cidr *v;
};

/*
 * A value as stored. The public struct conf_value comes first, so
 * conf_get()'s answer can be turned back into its setting to reach what
 * validation precomputed (extra: the parsed CIDR blocks of Relay_Hosts).
 */
struct conf_setting {
	struct conf_value v;
	int col;
	const void *extra;
};

static inline const struct conf_setting *conf_setting_of(const struct conf_value *v)
{
	return (const struct conf_setting *)(const void *)v;
}

/*
 * The parsed value of AuthLoginParameters / AuthPlainParameters (extra of
 * the setting): the password file, loaded when the value was read.
 */
struct conf_auth_params {
	const char *path;		/* the file of uri = "file:///..." */
	struct passwd_db *db;		/* freed with the configuration (conf_arena_defer) */
	bool log;			/* log_authentication = true */
};

/* conf_default_setting - the table default of opt (parsed once, never freed). */
const struct conf_setting *conf_default_setting(enum conf_opt opt);

/* One item of a value as written: a scalar, or one element of a list. */
struct conf_item {
	const char *text;
	int line, col;
};

/*
 * conf_setting_build - type-check and range-check a value for opt, run the
 * option's extra validation, and fill *out (strings and arrays from a).
 * On error, returns false, sets *bad to the offending item's index, and
 * appends the message (without location) to msg.
 */
bool conf_setting_build(enum conf_opt opt, const struct conf_item *items, size_t n,
			bool is_list, struct conf_arena *a, struct conf_setting *out,
			size_t *bad, struct str *msg);

/*
 * conf_params_build - an array value "[ k = v ... ]" of a CONF_T_PARAMS
 * option (items: key, value, key, value, ...): checks the keys and loads
 * the password file (conf_auth.c). On error as conf_setting_build, *bad
 * the offending item (n: the closing "]").
 */
bool conf_params_build(enum conf_opt opt, const struct conf_item *items, size_t n,
		       struct conf_arena *a, struct conf_setting *s, size_t *bad, struct str *msg);
/* conf_extensions_build - SMTP_Extensions' extra check; extra = the CONF_AUTH_* mask (conf_auth.c). */
bool conf_extensions_build(const struct conf_item *items, size_t n, struct conf_arena *a,
			   struct conf_setting *s, size_t *bad, struct str *msg);
/* conf_auth_check - after parsing: each listener's AUTH mechanisms have a password file. */
bool conf_auth_check(const struct conf *c, struct str *err);

/* Table internals used by the parser: conf_option_suggest and conf_name_distance are in config.h. */

/* ---- addresses (conf_relay.c) ------------------------------------------- */

bool conf_cidr_parse(const char *s, struct conf_cidr *out);
bool conf_ip_literal_valid(const char *s);
/*
 * conf_listen_parse - "ip:port", "[ipv6]:port", ":port", "*:port",
 * "[*]:port"; port 0..65535 required. Fills the socket address and the
 * canonical text ("0.0.0.0:25", "[::1]:2525") into canon (>= 64 bytes).
 */
bool conf_listen_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
		       char *canon, size_t canonlen);

/* ---- the tree ---------------------------------------------------------- */

enum conf_node_kind {
	CONF_N_GLOBAL,
	CONF_N_BINDING_GROUP,
	CONF_N_BINDING,
	CONF_N_DOMAIN,
	CONF_N_ESMTP_LISTENER,
	CONF_N_LISTEN,
	CONF_N_CONTROL_LISTENER,	/* Control_Listener */
	CONF_N_CONTROL_LISTEN,		/* a Listen "path" stanza inside Control_Listener */
	CONF_N_HTTP_LISTENER,		/* HTTP_Listener */
	CONF_N_HTTP_LISTEN,		/* a Listen "ip:port" stanza inside HTTP_Listener */
	CONF_N_HTTP_KEY,		/* an API_Key "name" stanza inside HTTP_Listener */
	CONF_N_WEBHOOK,			/* a Webhook "name" stanza (global scope; docs/events.md) */
	CONF_N__COUNT
};

/* conf_node_kind_name - the stanza name as written in messages ("global", "Binding", ...). */
const char *conf_node_kind_name(enum conf_node_kind k);
/* conf_node_kind_scope - the CONF_S_* bit of a kind. */
unsigned conf_node_kind_scope(enum conf_node_kind k);

struct conf_node {
	enum conf_node_kind kind;
	const char *name;		/* stanza argument; NULL for global and ESMTP_Listener */
	const char *file;
	int line, col;
	struct conf_node *parent;	/* the containing stanza; NULL for global */
	const struct conf_setting *vals[CONF_OPT__COUNT];

	/* Domain containers (global, Binding_Group, Binding): */
	struct conf_map domains;	/* exact names -> struct conf_node */
	struct conf_node **regex;	/* "/re/" Domain stanzas in file order (heap) */
	size_t nregex, regex_cap;
	bool regex_sets[CONF_OPT__COUNT];	/* some regex Domain here sets opt */

	/* Regex Domain stanzas: */
	pcre2_code *re;

	/* Options no core table knows, for modules (conf_scoped_get); arena. */
	struct conf_scoped_setting *scoped;
	bool regex_scoped;		/* Domain container: some regex Domain here has one */
};

struct conf_listener {
	struct conf_node *node;		/* the Listen stanza */
	const char *address;		/* canonical "ip:port" / "[v6]:port" */
	struct sockaddr_storage ss;
	socklen_t sslen;
};

struct conf {
	atomic_int refs;
	void *attached;				/* conf_attach(): the module generation */
	void (*attached_release)(void *);
	struct conf_arena arena;
	const char *source;
	const char *hostname;			/* conf_hostname(): set once loaded */

	struct conf_node *global;
	struct conf_node *esmtp;		/* ESMTP_Listener; NULL when absent */

	struct conf_module_stanza *modules;	/* heap; file order (strings in the arena) */
	size_t nmodules, modules_cap;

	struct conf_listener **listeners;	/* arena; file order */
	size_t nlisteners, listeners_cap;

	struct conf_node *control;		/* Control_Listener; NULL when absent */
	struct conf_node **controls;		/* arena; its Listen stanzas, file order */
	size_t ncontrols, controls_cap;

	struct conf_node *http;			/* HTTP_Listener; NULL when absent */
	struct conf_listener **https;		/* arena; its Listen stanzas, file order */
	size_t nhttps, https_cap;
	struct conf_node **http_keys;		/* arena; its API_Key stanzas, file order */
	size_t nhttp_keys, http_keys_cap;

	struct conf_node **webhooks;		/* arena; Webhook stanzas, file order */
	size_t nwebhooks, webhooks_cap;

	struct conf_node **bindings;		/* arena; file order */
	size_t nbindings, bindings_cap;
	struct conf_map binding_map;
	struct conf_map group_map;
	struct conf_map all_domains;		/* every exact Domain name, any container */

	const struct conf_scoped_setting **scoped;	/* heap; file order */
	size_t nscoped, scoped_cap;

	struct conf_node **nodes;		/* heap; every node, for teardown */
	size_t nnodes, nodes_cap;
};

/* conf_new - an empty configuration with its global node. */
struct conf *conf_new(const char *source);
/* conf_node_new - a node registered for teardown. */
struct conf_node *conf_node_new(struct conf *c, enum conf_node_kind kind, struct conf_node *parent,
				const char *name, const char *file, int line, int col);

/* conf_parse_text - parse text (named name) into c; false with err filled. */
bool conf_parse_text(struct conf *c, const char *text, size_t len, const char *name,
		     struct str *err);
/* conf_parse_path - read and parse a file into c. */
bool conf_parse_path(struct conf *c, const char *path, struct str *err);

#endif
