/*
 * api.h - the daemon's side of the module API: generations and hooks
 *
 * A struct api_gen is one generation of the extension state: the module
 * instances declared by one configuration generation, and every hook's
 * subscriber list (built-ins included), in order. It is built on the
 * scheduler thread when a configuration loads (api_gen_new, then the
 * built-ins and each instance's init register into it while `building`
 * is set), then frozen and attached to its struct conf (conf_attach), so
 * whoever holds a conf reference holds its hooks: a session or a queue
 * finds them with api_gen_of(conf), one pointer read. Once frozen nothing
 * changes, so any thread may walk the lists without a lock.
 *
 * When the conf's last reference goes, the generation is released; its
 * instances' fini functions run on the scheduler thread (posted there
 * when the last reference went on another thread).
 *
 * Files: api_gen.c (this header's generation and registration),
 * api_module.c (loading modules: Module_Path, dlopen, option tables,
 * init/fini), api_runtime.c (the daemon objects the services reach:
 * loops, pools, spool, queue).
 */
#ifndef IMPETUS_API_API_H
#define IMPETUS_API_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <impetus/console.h>
#include <impetus/hooks.h>
#include <impetus/module.h>

#include "core/str.h"

struct conf;

/* Every hook, one subscriber list each. The validation phases come first, in enum imp_phase order. */
enum api_hook_id {
	API_HOOK_VALIDATE_FIRST = 0,
	API_HOOK_VALIDATE_LAST = IMP_PHASE__COUNT - 1,
	API_HOOK_SIGN,
	API_HOOK_CONNECTION_GOAL,
	API_HOOK_CHOOSE_BINDING,
	API_HOOK_CLIENT_PARAMS,
	API_HOOK_CLASSIFY,
	API_HOOK_LOG,
	API_HOOK__COUNT
};

/* One subscriber. fn is the hook's typed function pointer, stored as a generic one. */
struct api_sub {
	void (*fn)(void);
	void *closure;
	int order;
	unsigned seq;			/* registration order, breaks ties */
	struct imp_instance *inst;	/* the subscriber's instance (api_core_instance for built-ins) */
	uint32_t log_types;		/* API_HOOK_LOG: bit (type - 'A') per enum imp_log_type */
};

struct api_hook {
	struct api_sub *v;		/* sorted by (order, seq) */
	size_t n, cap;
};

/* One console command (include/impetus/console.h); name and help are heap copies. */
struct api_cmd {
	char *name, *help;
	int (*fn)(struct imp_cli *cli, int argc, const char *const *argv, void *closure);
	void *closure;
	struct imp_instance *inst;
};

struct api_gen {
	atomic_int refs;
	bool building;			/* registrations allowed (scheduler thread, during load) */
	unsigned seq;
	struct api_hook hooks[API_HOOK__COUNT];
	struct imp_instance **inst;	/* declared instances, configuration order */
	size_t ninst, inst_cap;
	void *macros;			/* the generation's macro table (policy/macro.c) */
	void (*macros_free)(void *);
	struct api_cmd *cmds;		/* console commands, sorted by name (api_console.c) */
	size_t ncmds, cmds_cap;
	struct conf *conf;		/* not a reference: the conf owns the generation */
};

/* A module instance (opaque to modules as struct imp_instance). */
struct imp_instance {
	struct api_gen *gen;
	const struct imp_module *mod;
	const char *module_name;	/* mod->name, or "core" for built-ins */
	const char *name;		/* "" for a singleton */
	const char *file;		/* where the stanza is */
	int line;
	int debug_level;
	bool enabled;
	bool initialised;		/* init succeeded: fini is owed */
	void *data;			/* imp_instance_set_data */
	void *opts;			/* the parsed option values (api_module.c) */
	void *subs;			/* the sub-stanzas, in file order (api_module.c) */
	size_t nsubs;
};

/* api_gen_new - an empty generation in building state (scheduler thread). */
struct api_gen *api_gen_new(void);
/* api_gen_freeze - no more registrations; the lists are final. */
void api_gen_freeze(struct api_gen *g);
/*
 * api_gen_attach - give conf the generation: conf_unref of its last
 * reference releases g (fini on the scheduler thread).
 */
void api_gen_attach(struct api_gen *g, struct conf *conf);
/* api_gen_release - run fini for the initialised instances and free g (scheduler thread). */
void api_gen_release(struct api_gen *g);
/*
 * api_instance_fini_hook - set by the module loader (api_module.c):
 * finalise (fini, when initialised) and free one module instance. NULL
 * while no loader is linked in (unit tests of the registry).
 */
extern void (*api_instance_fini_hook)(struct imp_instance *inst);

/* api_gen_of - the generation attached to conf, or NULL (a conf loaded by tools or tests). */
struct api_gen *api_gen_of(const struct conf *conf);

/*
 * The calling thread's current generation: what the services that take
 * no instance (imp_macro_expand, imp_macro_needs) use; when none is set
 * they use the running configuration's generation. The module loader
 * sets it around init and fini (where the generation being built is not
 * the running one yet); a hook dispatcher may set it around a subscriber
 * list so a session keeps its own generation's expanders after a reload. api_gen_enter returns the
 * previous value for api_gen_leave, so calls nest (a hook that runs
 * inline inside another). Thread-local: costs a store, never a lock, and
 * holds no reference (the caller holds one while it runs the code).
 */
struct api_gen *api_gen_enter(struct api_gen *g);
void api_gen_leave(struct api_gen *prev);
/* api_gen_current - the calling thread's current generation, or NULL. */
struct api_gen *api_gen_current(void);

/*
 * api_builtins_register - register the built-in subscribers and macros
 * into a building generation, as api_core_instance(g) (api_builtin.c;
 * scheduler thread, before any module's init).
 */
void api_builtins_register(struct api_gen *g);

/* api_core_instance - the pseudo-instance built-ins register as (module "core"). */
struct imp_instance *api_core_instance(struct api_gen *g);

/*
 * api_hook_add - register a subscriber (what the typed imp_hook_*
 * functions do). -EINVAL when the generation is not building or fn NULL.
 */
int api_hook_add(struct imp_instance *inst, enum api_hook_id id, void (*fn)(void), void *closure,
		 int order, uint32_t log_types);

/* api_hook_of - the subscriber list of id in the generation of conf; NULL when none. */
static inline const struct api_hook *api_hook_of(const struct conf *conf, enum api_hook_id id)
{
	struct api_gen *g = api_gen_of(conf);

	if (g == NULL || g->hooks[id].n == 0)
		return NULL;
	return &g->hooks[id];
}

/* api_log_type_bit - the log_types bit of a type; 0 for an unknown letter. */
static inline uint32_t api_log_type_bit(int type)
{
	return (type >= 'A' && type <= 'Z') ? 1u << (type - 'A') : 0;
}

#endif
