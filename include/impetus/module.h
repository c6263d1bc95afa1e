/*
 * impetus/module.h - declaring a module, its options and its instances
 *
 * A module is a shared object (impetus_<name>.so, or <name>.so) found on
 * Module_Path. It exports one symbol, `impetus_module`, a struct
 * imp_module declared with IMP_MODULE_DEFINE: its name, the API version
 * it was compiled against, its option table and its life-cycle functions.
 * impetusd refuses a module whose API major version differs from its own,
 * or whose minor version is newer, naming both versions.
 *
 * The configuration declares instances the Momentum way:
 *
 *     Module_Path = ( "/usr/lib/impetus/modules" )
 *     header_stamp "stamp1" { header = "X-Stamp" value = "%{msg:id}" }
 *     json_log { path = "/var/log/impetus/events.jsonl" }    # singleton
 *
 * Every instance has the common options `enabled` (bool, default true)
 * and `debug_level` (0..9, default 0); the rest come from the module's
 * option table and are checked by `impetusd -t` with file:line:col
 * errors, like the core's own options.
 *
 * Sub-stanzas (API 1.1). A module may also declare sub-stanzas, written
 * inside an instance's stanza one level deep, each with options of its
 * own (Momentum's per-domain settings):
 *
 *     opendkim "opendkim1" {
 *       key = "/etc/impetus/dkim/%{d}.%{s}.key"   selector = "s1"
 *       dkim_domain "example.com" { selector = "s2" }
 *     }
 *
 * They are checked like the options, with file:line:col errors, and read
 * with imp_substanza_count() and the imp_substanza_* accessors.
 *
 * Generations. Each configuration load (start-up, SIGHUP) creates new
 * instances: init runs for every declared, enabled instance of the new
 * generation, on the scheduler thread, before any of its hooks can run;
 * the hooks it registers belong to that generation only. Work in flight
 * keeps the generation it started with. When the last user of a
 * generation is gone, fini runs for each of its instances, on the
 * scheduler thread, and must cancel the timers the instance started. If
 * any init fails, start-up stops with the module's error, and a reload
 * keeps the old generation (every new instance that had initialised is
 * finalised). Shared objects stay mapped for the life of the process.
 */
#ifndef IMPETUS_MODULE_H
#define IMPETUS_MODULE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The API version. The major number changes when a compiled module
 * would break (a function removed or changed, a struct laid out anew);
 * the minor number when functions or hooks are added. A module runs on
 * an impetusd with the same major and an equal or newer minor.
 */
#define IMP_API_MAJOR 1
#define IMP_API_MINOR 4

/* Option types of a module's table (the core's CONF_T_* with the same parsers). */
enum imp_option_type {
	IMP_OPT_BOOL,		/* true/false, yes/no, on/off, 1/0 */
	IMP_OPT_INT,		/* integer in [min, max] */
	IMP_OPT_INTERVAL,	/* seconds: N, Ns, Nm, Nh, Nd, in [min, max] */
	IMP_OPT_SIZE,		/* bytes: N, NK, NM, NG, in [min, max] */
	IMP_OPT_STRING,
	IMP_OPT_LIST,		/* ( "a" "b" ) */
};

/*
 * One option of a module. def is the default as configuration text
 * (parsed with the type's parser when the module loads; a bad default
 * refuses the module), or NULL for none. required options must be set in
 * every instance.
 */
struct imp_option {
	const char *name;
	enum imp_option_type type;
	const char *def;
	int64_t min, max;	/* INT, INTERVAL, SIZE; both 0 = no range */
	bool required;
	const char *help;	/* one line, for `impetusd --list` and docs */
};

/*
 * One kind of sub-stanza a module accepts (API 1.1): `name "arg" { ... }`
 * when named, `name { ... }` when not. A stanza may hold any number of
 * them, each (name, arg) once. Its options are checked like the module's
 * own (defaults, ranges, required); enabled and debug_level are not
 * among them.
 */
struct imp_substanza {
	const char *name;		/* [a-z0-9_]+ */
	bool named;			/* takes "arg" */
	const struct imp_option *options;	/* table; NULL when none */
	size_t noptions;
	const char *help;		/* one line */
};

/* An instance of a module in one generation. Opaque. */
struct imp_instance;
/* Where an init function writes why it failed. Opaque. */
struct imp_error;

#define IMP_MODULE_SINGLETON 0x01	/* at most one instance, written `name { }` */

struct imp_module {
	uint32_t api_major;		/* IMP_API_MAJOR the module was compiled with */
	uint32_t api_minor;		/* IMP_API_MINOR the module was compiled with */
	const char *name;		/* the stanza name; [a-z0-9_]+ */
	const char *version;		/* the module's own version, for logs */
	const char *description;	/* one line */
	unsigned flags;			/* IMP_MODULE_* */
	const struct imp_option *options;	/* table; NULL when none */
	size_t noptions;
	/*
	 * init - set up one instance (scheduler thread, once per generation):
	 * read options, open files, register hooks, macros, timers. Returns 0,
	 * or a negative value after imp_error_set() to refuse the generation.
	 */
	int (*init)(struct imp_instance *inst, struct imp_error *err);
	/* fini - release what init made (scheduler thread); may be NULL. */
	void (*fini)(struct imp_instance *inst);
	/*
	 * API 1.1: the sub-stanzas the module accepts; NULL when none. Read
	 * only when api_minor >= 1 (a module built for 1.0 has a shorter
	 * struct, and impetusd never reads past it). New fields come here, at
	 * the end, each read only from the minor version that added it.
	 */
	const struct imp_substanza *substanzas;
	size_t nsubstanzas;
	/*
	 * API 1.2: options the module adds to the core's delivery scopes
	 * (global, Binding_Group, Binding, Domain, binding::domain), such as
	 * opendkim's `opendkim_sign`; NULL when none. Types BOOL, INT,
	 * INTERVAL, SIZE and STRING; a name the core already uses is refused.
	 * Read with imp_scoped_option_*.
	 */
	const struct imp_option *scoped_options;
	size_t nscoped_options;
};

/* IMP_MODULE_DEFINE - declare the module's entry point with the current API version. */
#define IMP_MODULE_DEFINE(...)                                                           \
	__attribute__((visibility("default"))) const struct imp_module impetus_module = { \
		.api_major = IMP_API_MAJOR, .api_minor = IMP_API_MINOR, __VA_ARGS__ }

/*
 * imp_error_set - say why init failed, as one line ("cannot open
 * /etc/x: No such file or directory"); impetusd prefixes the module,
 * instance and the stanza's file:line. The last call wins.
 */
void imp_error_set(struct imp_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Instance accessors. Any thread may call them on an instance whose
 * generation it holds (a hook of the instance, a job it submitted);
 * strings returned live as long as the instance.
 */
const char *imp_instance_module(const struct imp_instance *inst);	/* "header_stamp" */
const char *imp_instance_name(const struct imp_instance *inst);	/* "stamp1"; "" for a singleton */
int imp_instance_debug_level(const struct imp_instance *inst);
/* imp_instance_set_data / imp_instance_data - the module's own pointer for this instance. */
void imp_instance_set_data(struct imp_instance *inst, void *data);
void *imp_instance_data(const struct imp_instance *inst);

/*
 * Options of an instance, by name as in the module's table (matched
 * case-insensitively): the configured value or the default. Asking for an
 * option the table does not declare, or with the wrong type, is a
 * programming error and aborts. imp_option_string returns NULL when the
 * option is unset and has no default; imp_option_list sets *n to 0.
 */
bool imp_option_bool(const struct imp_instance *inst, const char *name);
int64_t imp_option_int(const struct imp_instance *inst, const char *name);	/* INT, INTERVAL, SIZE */
const char *imp_option_string(const struct imp_instance *inst, const char *name);
const char *const *imp_option_list(const struct imp_instance *inst, const char *name, size_t *n);
/* imp_option_is_set - whether the instance's stanza sets the option. */
bool imp_option_is_set(const struct imp_instance *inst, const char *name);

/*
 * Sub-stanzas of an instance (API 1.1), by the name in the module's
 * sub-stanza table (matched case-insensitively), in file order: the i-th
 * is 0 .. imp_substanza_count() - 1. A name the table does not declare,
 * an i out of range, an option its table does not declare or asked for
 * with the wrong type is a programming error: a paniclog line, then
 * abort. The options read like imp_option_*: the value set in the
 * sub-stanza or the default.
 */
size_t imp_substanza_count(const struct imp_instance *inst, const char *name);
/* imp_substanza_arg - the "arg" of the i-th sub-stanza name; "" when not named. */
const char *imp_substanza_arg(const struct imp_instance *inst, const char *name, size_t i);
bool imp_substanza_option_bool(const struct imp_instance *inst, const char *name, size_t i,
			       const char *opt);
int64_t imp_substanza_option_int(const struct imp_instance *inst, const char *name, size_t i,
				 const char *opt);	/* INT, INTERVAL, SIZE */
const char *imp_substanza_option_string(const struct imp_instance *inst, const char *name,
					size_t i, const char *opt);
const char *const *imp_substanza_option_list(const struct imp_instance *inst, const char *name,
					     size_t i, const char *opt, size_t *n);
bool imp_substanza_option_is_set(const struct imp_instance *inst, const char *name, size_t i,
				 const char *opt);

/*
 * Scoped options (API 1.2): the value of one of the module's
 * scoped_options for a (binding, domain) pair, found the way the core
 * finds its own delivery options: binding::domain, Binding_Group::domain,
 * global Domain, Binding, Binding_Group, global, then the table's
 * default. binding NULL or "" is the default binding; domain NULL looks
 * in no Domain scope. Written in any scope by any module's table, the
 * value is checked when the configuration loads (`impetusd -t` too).
 * Call from a hook subscriber or init of the instance (the generation's
 * configuration is held then), on any thread; not from fini or a pool
 * job that outlived a reload. A name the scoped table does not declare,
 * or the wrong type, is a programming error: a paniclog line, then abort.
 */
bool imp_scoped_option_bool(const struct imp_instance *inst, const char *name,
			    const char *binding, const char *domain);
int64_t imp_scoped_option_int(const struct imp_instance *inst, const char *name,
			      const char *binding, const char *domain);	/* INT, INTERVAL, SIZE */
/* imp_scoped_option_string - the value, valid while the caller holds the generation (above); NULL: none. */
const char *imp_scoped_option_string(const struct imp_instance *inst, const char *name,
				     const char *binding, const char *domain);

#ifdef __cplusplus
}
#endif

#endif
