/*
 * api_module.c - finding, checking and starting modules (see api_module.h)
 *
 * A module is <dir>/<name>.so for the first directory of Module_Path
 * that has it (default: the installed module directory). Each shared
 * object is opened once per process (RTLD_NOW | RTLD_LOCAL: a missing
 * symbol is an error at load, not a crash later) and never closed, so a
 * pointer into a module stays valid however generations come and go;
 * its `impetus_module` symbol is checked for the API version first.
 *
 * An instance owns a copy of its option values and sub-stanzas (heap),
 * because a generation may outlive the struct conf that declared it by
 * the time its instances' fini runs.
 *
 * Versions: the loader reads a field of struct imp_module only when the
 * module's api_minor is at least the minor that added it (mod_subs): a
 * module built for 1.0 has a shorter struct.
 *
 * Ownership: the loaded-module list and every generation being built
 * belong to the scheduler thread (and to main() before the loops run);
 * instances of a frozen generation are read-only.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "api/api.h"
#include "api/api_module.h"
#include "api/api_runtime.h"
#include "config/config.h"
#include "core/loop.h"
#include "core/mem.h"
#include "log/log.h"

#ifndef IMPETUS_MODULE_DIR
#define IMPETUS_MODULE_DIR "/usr/local/lib/impetus/modules"
#endif

/* The options every instance has, whatever its module declares. */
#define OPT_ENABLED "enabled"
#define OPT_DEBUG_LEVEL "debug_level"
#define DEBUG_LEVEL_MAX 9

/* One shared object, opened once. */
struct loaded {
	char *name;			/* lower-cased stanza name */
	char *path;
	const struct imp_module *mod;
};

static struct loaded *loaded;
static size_t nloaded, loaded_cap;

/* One option value of an instance, typed by the module's table. */
struct opt_val {
	bool set;			/* written in the stanza (else the default) */
	bool has;			/* has a value: set, or a default exists */
	int64_t i;			/* BOOL (0/1), INT, INTERVAL, SIZE */
	char *s;			/* STRING */
	char **list;			/* LIST */
	size_t n;
};

/* One sub-stanza of an instance (API 1.1), in file order. */
struct sub_val {
	const struct imp_substanza *decl;	/* in the module's table */
	char *arg;			/* "" when not named */
	struct opt_val *vals;		/* decl->noptions of them */
};

struct imp_error {
	struct str msg;
};

/* mod_subs - the module's sub-stanza table; none for a module built for API 1.0. */
static const struct imp_substanza *mod_subs(const struct imp_module *mod, size_t *n)
{
	if (mod == NULL || mod->api_minor < 1 || mod->substanzas == NULL) {
		*n = 0;
		return NULL;
	}
	*n = mod->nsubstanzas;
	return mod->substanzas;
}

/* mod_scoped - the module's scoped option table; none for a module built before API 1.2. */
static const struct imp_option *mod_scoped(const struct imp_module *mod, size_t *n)
{
	if (mod == NULL || mod->api_minor < 2 || mod->scoped_options == NULL) {
		*n = 0;
		return NULL;
	}
	*n = mod->nscoped_options;
	return mod->scoped_options;
}

/* ---- finding a module ------------------------------------------------- */

/* lower - a lower-cased copy of name. */
static char *lower(const char *name)
{
	char *s = xstrdup(name);

	for (char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

/*
 * module_open - the module name, from the loaded list or Module_Path.
 * NULL with a message (without location) in msg.
 */
static const struct loaded *module_open(const struct conf *conf, const char *name, struct str *msg)
{
	char *lname = lower(name);
	const struct conf_value *mp = conf_get(conf, CONF_OPT_MODULE_PATH, NULL, NULL);
	static const char *const default_path[] = { IMPETUS_MODULE_DIR };
	const char *const *dirs = mp->u.list.n ? mp->u.list.v : default_path;
	size_t ndirs = mp->u.list.n ? mp->u.list.n : 1;
	struct str path = STR_INIT;
	const struct loaded *found = NULL;

	for (size_t i = 0; i < nloaded; i++)
		if (strcmp(loaded[i].name, lname) == 0) {
			found = &loaded[i];
			goto out;
		}
	for (size_t i = 0; i < ndirs; i++) {
		struct stat st;

		str_clear(&path);
		str_appendf(&path, "%s/%s.so", dirs[i], lname);
		if (stat(str_cstr(&path), &st) == 0)
			break;
		str_clear(&path);
	}
	if (path.len == 0) {
		str_appendf(msg, "unknown scope or module \"%.100s\": no %s.so in Module_Path (", name, lname);
		for (size_t i = 0; i < ndirs; i++)
			str_appendf(msg, "%s%s", i ? " " : "", dirs[i]);
		str_appendc(msg, ')');
		goto out;
	}
	void *h = dlopen(str_cstr(&path), RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		str_appendf(msg, "cannot load module %s: %s", str_cstr(&path), e ? e : "unknown error");
		goto out;
	}
	const struct imp_module *mod = dlsym(h, "impetus_module");
	if (mod == NULL) {
		str_appendf(msg, "%s is not an impetus module (no impetus_module symbol)", str_cstr(&path));
		dlclose(h);
		goto out;
	}
	if (mod->api_major != IMP_API_MAJOR || mod->api_minor > IMP_API_MINOR) {
		str_appendf(msg,
			    "module %s was built for impetus module API %u.%u; this impetusd has API %u.%u "
			    "(a module runs on the same major version and an equal or newer minor)",
			    str_cstr(&path), mod->api_major, mod->api_minor, IMP_API_MAJOR, IMP_API_MINOR);
		dlclose(h);
		goto out;
	}
	if (mod->name == NULL || strcasecmp(mod->name, lname) != 0) {
		str_appendf(msg, "module %s calls itself \"%s\", not \"%s\"", str_cstr(&path),
			    mod->name ? mod->name : "(null)", lname);
		dlclose(h);
		goto out;
	}
	if (nloaded == loaded_cap) {
		loaded_cap = loaded_cap ? loaded_cap * 2 : 8;
		loaded = xrealloc(loaded, loaded_cap * sizeof(*loaded));
	}
	loaded[nloaded] = (struct loaded){ .name = lname, .path = xstrdup(str_cstr(&path)), .mod = mod };
	lname = NULL;
	found = &loaded[nloaded++];
out:
	free(lname);
	str_free(&path);
	return found;
}

/* ---- options ---------------------------------------------------------- */

static enum conf_type conf_type_of(enum imp_option_type t)
{
	switch (t) {
	case IMP_OPT_BOOL: return CONF_T_BOOL;
	case IMP_OPT_INT: return CONF_T_INT;
	case IMP_OPT_INTERVAL: return CONF_T_INTERVAL;
	case IMP_OPT_SIZE: return CONF_T_SIZE;
	case IMP_OPT_STRING: return CONF_T_STRING;
	case IMP_OPT_LIST: return CONF_T_LIST;
	}
	return CONF_T_STRING;
}

static void opt_val_clear(struct opt_val *v)
{
	free(v->s);
	for (size_t i = 0; i < v->n; i++)
		free(v->list[i]);
	free(v->list);
	memset(v, 0, sizeof(*v));
}

/*
 * opt_parse - parse the items of one option into v. Returns -1 with
 * msg and *bad (the item at fault) on error.
 */
static int opt_parse(const struct imp_option *o, const struct conf_module_value *items, size_t n,
		     bool is_list, struct opt_val *v, size_t *bad, struct str *msg)
{
	*bad = 0;
	if (o->type == IMP_OPT_LIST) {
		v->list = xcalloc(n ? n : 1, sizeof(*v->list));
		for (size_t i = 0; i < n; i++)
			v->list[i] = xstrdup(items[i].text);
		v->n = n;
		v->has = true;
		return 0;
	}
	if (is_list || n != 1) {
		str_appendf(msg, "option \"%s\" takes a single value, not a list", o->name);
		return -1;
	}
	if (o->type == IMP_OPT_STRING) {
		v->s = xstrdup(items[0].text);
		v->has = true;
		return 0;
	}
	int64_t x = 0;
	int r = conf_scalar_parse(conf_type_of(o->type), items[0].text, &x);
	if (r == -1) {
		str_appendf(msg, "\"%.200s\" is not a valid %s for %s", items[0].text,
			    conf_type_name(conf_type_of(o->type)), o->name);
		return -1;
	}
	if (o->type != IMP_OPT_BOOL && (o->min != 0 || o->max != 0) &&
	    (r == -2 || x < o->min || x > o->max)) {
		str_appendf(msg, "value %.200s out of range for %s (%lld..%lld)", items[0].text, o->name,
			    (long long)o->min, (long long)o->max);
		return -1;
	}
	if (r == -2) {
		str_appendf(msg, "value %.200s out of range for %s", items[0].text, o->name);
		return -1;
	}
	v->i = x;
	v->has = true;
	return 0;
}

/* split_default - the items of a default text: one value, or a "( a b )" list of words. */
static size_t split_default(const char *def, struct conf_module_value *items, char *buf, size_t max,
			    bool *is_list)
{
	size_t n = 0;

	*is_list = false;
	while (*def == ' ')
		def++;
	if (*def != '(') {
		items[0].text = def;
		return 1;
	}
	*is_list = true;
	strcpy(buf, def + 1);
	for (char *tok = strtok(buf, " \t,()\""); tok && n < max; tok = strtok(NULL, " \t,()\""))
		items[n++].text = tok;
	return n;
}

/* find_in - index of name in an option table, or -1. */
static int find_in(const struct imp_option *table, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(table[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* find_option - index of name in mod's table, or -1. */
static int find_option(const struct imp_module *mod, const char *name)
{
	return find_in(mod->options, mod->noptions, name);
}

/* is_common - whether name is one of the options every instance has. */
static bool is_common(const char *name)
{
	return strcasecmp(name, OPT_ENABLED) == 0 || strcasecmp(name, OPT_DEBUG_LEVEL) == 0;
}

/* where - "file:line:col: " of a stanza item. */
static void where(struct str *err, const char *file, int line, int col)
{
	str_appendf(err, "%s:%d:%d: ", file, line, col);
}

/*
 * opts_fill - check the options written in a stanza or sub-stanza against
 * table and fill vals: the values set, then the defaults. what names the
 * stanza in messages ("module x", "sub-stanza d of module x"); line and
 * col locate it. common: the caller handled enabled and debug_level.
 */
static int opts_fill(const struct loaded *lm, const struct imp_option *table, size_t ntable,
		     const char *what, bool common, const char *file, int line, int col,
		     const struct conf_module_option *opts, size_t nopts, struct opt_val *vals,
		     struct str *err)
{
	struct str msg = STR_INIT;
	size_t bad;
	int rc = -1;

	for (size_t k = 0; k < nopts; k++) {
		const struct conf_module_option *o = &opts[k];

		if (common && is_common(o->name))
			continue;
		int idx = find_in(table, ntable, o->name);
		if (idx < 0) {
			where(err, file, o->line, o->col);
			str_appendf(err, "unknown option \"%.100s\" for %s (it takes:", o->name, what);
			for (size_t i = 0; i < ntable; i++)
				str_appendf(err, " %s", table[i].name);
			str_appends(err, common ? " enabled debug_level)" : ntable ? ")" : " no options)");
			goto out;
		}
		str_clear(&msg);
		if (opt_parse(&table[idx], o->v, o->n, o->is_list, &vals[idx], &bad, &msg) < 0) {
			if (bad < o->n && !o->is_list)
				where(err, file, o->v[bad].line, o->v[bad].col);
			else
				where(err, file, o->line, o->col);
			str_append(err, msg.s, msg.len);
			goto out;
		}
		vals[idx].set = true;
	}
	for (size_t i = 0; i < ntable; i++) {
		const struct imp_option *o = &table[i];

		if (vals[i].set)
			continue;
		if (o->required) {
			where(err, file, line, col);
			str_appendf(err, "%s needs option \"%s\" (%s)", what, o->name,
				    o->help ? o->help : "no help");
			goto out;
		}
		if (o->def == NULL)
			continue;
		struct conf_module_value items[32];
		char buf[1024];
		bool is_list;
		size_t n;

		if (strlen(o->def) >= sizeof(buf)) {
			str_appendf(err, "%s: %s: default of option \"%s\" too long", lm->path, what,
				    o->name);
			goto out;
		}
		n = split_default(o->def, items, buf, 32, &is_list);
		str_clear(&msg);
		if (opt_parse(o, items, n, is_list, &vals[i], &bad, &msg) < 0) {
			str_appendf(err, "%s: %s: bad default for option \"%s\": %s", lm->path, what,
				    o->name, str_cstr(&msg));
			goto out;
		}
	}
	rc = 0;
out:
	str_free(&msg);
	return rc;
}

/* ---- instances -------------------------------------------------------- */

static void instance_free(struct imp_instance *inst)
{
	struct opt_val *vals = inst->opts;
	struct sub_val *subs = inst->subs;

	if (vals)
		for (size_t i = 0; i < inst->mod->noptions; i++)
			opt_val_clear(&vals[i]);
	free(vals);
	for (size_t k = 0; k < inst->nsubs; k++) {
		if (subs[k].vals)
			for (size_t i = 0; i < subs[k].decl->noptions; i++)
				opt_val_clear(&subs[k].vals[i]);
		free(subs[k].vals);
		free(subs[k].arg);
	}
	free(subs);
	free((char *)inst->name);
	free((char *)inst->file);
	free(inst);
}

static void call_fini(void *arg)
{
	struct imp_instance *inst = arg;
	struct api_gen *prev = api_gen_enter(inst->gen);

	inst->mod->fini(inst);
	api_gen_leave(prev);
}

/* instance_fini - api_instance_fini_hook: fini if init succeeded, then free. */
static void instance_fini(struct imp_instance *inst)
{
	if (inst->initialised && inst->mod->fini) {
		struct loop *sched = api_runtime()->scheduler;

		/* Timers and posts a fini cancels belong to the scheduler loop. */
		if (sched && loop_current() == NULL)
			loop_call_as(sched, call_fini, inst);
		else
			call_fini(inst);
	}
	inst->initialised = false;
	instance_free(inst);
}

/* sub_allowed - append the sub-stanzas a module takes, for an error message. */
static void sub_allowed(struct str *err, const struct imp_substanza *t, size_t nt)
{
	str_appends(err, " (it takes:");
	for (size_t i = 0; i < nt; i++)
		str_appendf(err, "%s %s%s { }", i ? "," : "", t[i].name, t[i].named ? " \"name\"" : "");
	str_appendc(err, ')');
}

/* subs_new - check the stanza's sub-stanzas against the module's table and copy them into inst. */
static int subs_new(struct imp_instance *inst, const struct conf_module_stanza *st,
		    const struct loaded *lm, struct str *err)
{
	const struct imp_module *mod = lm->mod;
	size_t nt;
	const struct imp_substanza *t = mod_subs(mod, &nt);
	struct sub_val *subs;
	struct str what = STR_INIT;
	int rc = -1;

	if (st->nsubs == 0)
		return 0;
	subs = xcalloc(st->nsubs, sizeof(*subs));
	inst->subs = subs;
	for (size_t k = 0; k < st->nsubs; k++) {
		const struct conf_module_substanza *ss = &st->subs[k];
		const struct imp_substanza *d = NULL;

		for (size_t i = 0; i < nt && d == NULL; i++)
			if (strcasecmp(t[i].name, ss->name) == 0)
				d = &t[i];
		if (d == NULL) {
			where(err, st->file, ss->line, ss->col);
			if (nt == 0) {
				str_appendf(err, "module %s takes no sub-stanzas (\"%.100s\" is one)", mod->name,
					    ss->name);
				if (mod->api_minor < 1)
					str_appendf(err, "; it was built for module API %u.%u, before sub-stanzas",
						    mod->api_major, mod->api_minor);
			} else {
				str_appendf(err, "unknown sub-stanza \"%.100s\" for module %s", ss->name,
					    mod->name);
				sub_allowed(err, t, nt);
			}
			goto out;
		}
		if (d->named && ss->arg == NULL) {
			where(err, st->file, ss->line, ss->col);
			str_appendf(err, "sub-stanza %s of module %s needs a name: %s \"name\" { ... }",
				    d->name, mod->name, d->name);
			goto out;
		}
		if (!d->named && ss->arg) {
			where(err, st->file, ss->line, ss->col);
			str_appendf(err, "sub-stanza %s of module %s takes no name: write %s { ... }",
				    d->name, mod->name, d->name);
			goto out;
		}
		subs[k].decl = d;
		subs[k].arg = xstrdup(ss->arg ? ss->arg : "");
		subs[k].vals = xcalloc(d->noptions ? d->noptions : 1, sizeof(*subs[k].vals));
		inst->nsubs = k + 1;
		str_clear(&what);
		str_appendf(&what, "sub-stanza %s of module %s", d->name, mod->name);
		if (opts_fill(lm, d->options, d->noptions, str_cstr(&what), false, st->file, ss->line,
			      ss->col, ss->opts, ss->nopts, subs[k].vals, err) < 0)
			goto out;
	}
	rc = 0;
out:
	str_free(&what);
	return rc;
}

/* instance_new - check one stanza against its module and make the instance. */
static struct imp_instance *instance_new(struct api_gen *g, const struct conf_module_stanza *st,
					 const struct loaded *lm, struct str *err)
{
	const struct imp_module *mod = lm->mod;
	struct imp_instance *inst = xcalloc(1, sizeof(*inst));
	struct opt_val *vals = xcalloc(mod->noptions ? mod->noptions : 1, sizeof(*vals));
	struct str msg = STR_INIT;

	inst->gen = g;
	inst->mod = mod;
	inst->module_name = mod->name;
	inst->name = xstrdup(st->instance ? st->instance : "");
	inst->file = xstrdup(st->file);
	inst->line = st->line;
	inst->enabled = true;
	inst->opts = vals;

	if ((mod->flags & IMP_MODULE_SINGLETON) && st->instance) {
		where(err, st->file, st->line, st->col);
		str_appendf(err, "module \"%s\" has one instance only: write %s { ... } without a name",
			    mod->name, mod->name);
		goto fail;
	}
	for (size_t k = 0; k < st->nopts; k++) {
		const struct conf_module_option *o = &st->opts[k];

		if (is_common(o->name)) {
			bool en = strcasecmp(o->name, OPT_ENABLED) == 0;
			int64_t x = 0;
			int r = (o->is_list || o->n != 1) ? -1 :
				conf_scalar_parse(en ? CONF_T_BOOL : CONF_T_INT, o->v[0].text, &x);

			if (r != 0 || (!en && (x < 0 || x > DEBUG_LEVEL_MAX))) {
				where(err, st->file, o->n ? o->v[0].line : o->line,
				      o->n ? o->v[0].col : o->col);
				if (en)
					str_appendf(err, "\"%.200s\" is not a valid boolean for enabled",
						    o->n ? o->v[0].text : "");
				else
					str_appendf(err, "debug_level takes a number from 0 to %d",
						    DEBUG_LEVEL_MAX);
				goto fail;
			}
			if (en)
				inst->enabled = x != 0;
			else
				inst->debug_level = (int)x;
		}
	}
	str_appendf(&msg, "module %s", mod->name);
	if (opts_fill(lm, mod->options, mod->noptions, str_cstr(&msg), true, st->file, st->line,
		      st->col, st->opts, st->nopts, vals, err) < 0)
		goto fail;
	if (subs_new(inst, st, lm, err) < 0)
		goto fail;
	str_free(&msg);
	return inst;
fail:
	str_free(&msg);
	instance_free(inst);
	return NULL;
}

/* check_table - a module's option table must be usable before any stanza is read. */
static int check_table(const struct loaded *lm, struct str *msg)
{
	const struct imp_module *mod = lm->mod;

	if (mod->noptions && mod->options == NULL) {
		str_appendf(msg, "%s: module %s declares %zu options but no table", lm->path, mod->name,
			    mod->noptions);
		return -1;
	}
	for (size_t i = 0; i < mod->noptions; i++) {
		const char *n = mod->options[i].name;

		if (n == NULL || *n == '\0' || strcasecmp(n, OPT_ENABLED) == 0 ||
		    strcasecmp(n, OPT_DEBUG_LEVEL) == 0 || (unsigned)mod->options[i].type > IMP_OPT_LIST) {
			str_appendf(msg, "%s: module %s: option %zu has a bad name or type", lm->path,
				    mod->name, i);
			return -1;
		}
	}
	size_t ns;
	const struct imp_option *so = mod_scoped(mod, &ns);
	if (ns && so == NULL) {
		str_appendf(msg, "%s: module %s declares %zu scoped options but no table", lm->path,
			    mod->name, ns);
		return -1;
	}
	for (size_t i = 0; i < ns; i++) {
		const char *n = so[i].name;

		if (n == NULL || *n == '\0' || (unsigned)so[i].type > IMP_OPT_STRING ||
		    conf_option_lookup(n) >= 0) {
			str_appendf(msg, "%s: module %s: scoped option %zu has a bad type or a name "
				    "that is empty or a core option's", lm->path, mod->name, i);
			return -1;
		}
	}
	size_t nt;
	const struct imp_substanza *t = mod_subs(mod, &nt);
	if (nt && t == NULL) {
		str_appendf(msg, "%s: module %s declares %zu sub-stanzas but no table", lm->path,
			    mod->name, nt);
		return -1;
	}
	for (size_t i = 0; i < nt; i++) {
		if (t[i].name == NULL || t[i].name[0] == '\0' || (t[i].noptions && t[i].options == NULL)) {
			str_appendf(msg, "%s: module %s: sub-stanza %zu has no name or no option table",
				    lm->path, mod->name, i);
			return -1;
		}
		for (size_t j = 0; j < t[i].noptions; j++) {
			const char *n = t[i].options[j].name;

			if (n == NULL || *n == '\0' || (unsigned)t[i].options[j].type > IMP_OPT_LIST) {
				str_appendf(msg, "%s: module %s: sub-stanza %s: option %zu has a bad name or type",
					    lm->path, mod->name, t[i].name, j);
				return -1;
			}
		}
	}
	return 0;
}

/* ---- generations ------------------------------------------------------- */

/* scoped_decl - the scoped option name of a module of g (first declared wins), or NULL. */
static const struct imp_option *scoped_decl(const struct api_gen *g, const char *name)
{
	for (size_t k = 1; k < g->ninst; k++) {
		size_t n;
		const struct imp_option *t = mod_scoped(g->inst[k]->mod, &n);
		int idx = find_in(t, n, name);

		if (idx >= 0)
			return &t[idx];
	}
	return NULL;
}

/* scoped_suggest - a core or loaded scoped option name close to name, or NULL. */
static const char *scoped_suggest(const struct api_gen *g, const char *name)
{
	const char *best = conf_option_suggest(name);

	if (best)
		return best;
	for (size_t k = 1; k < g->ninst; k++) {
		size_t n;
		const struct imp_option *t = mod_scoped(g->inst[k]->mod, &n);

		for (size_t i = 0; i < n; i++)
			if (conf_name_distance(name, t[i].name) <= 2)
				return t[i].name;
	}
	return NULL;
}

/*
 * scoped_check - every option the core did not know, written in a
 * delivery scope, must be a scoped option of a module the configuration
 * loads, with a value of its type.
 */
static int scoped_check(const struct api_gen *g, const struct conf *conf, struct str *err)
{
	struct str msg = STR_INIT;
	int rc = 0;

	for (size_t i = 0; i < conf_scoped_count(conf) && rc == 0; i++) {
		const struct conf_scoped_setting *cs = conf_scoped_at(conf, i);
		const struct conf_module_option *o = &cs->opt;
		const struct imp_option *d = scoped_decl(g, o->name);
		struct opt_val v = { 0 };
		size_t bad;

		if (d == NULL) {
			const char *sug = scoped_suggest(g, o->name);

			where(err, cs->file, o->line, o->col);
			str_appendf(err, "unknown option \"%.100s\" in %s scope", o->name, cs->scope);
			if (sug)
				str_appendf(err, " (did you mean \"%s\"?)", sug);
			else
				str_appends(err, " (neither a core option nor a scoped option of a module "
					    "this configuration loads)");
			rc = -1;
			break;
		}
		str_clear(&msg);
		if (opt_parse(d, o->v, o->n, o->is_list, &v, &bad, &msg) < 0) {
			if (bad < o->n && !o->is_list)
				where(err, cs->file, o->v[bad].line, o->v[bad].col);
			else
				where(err, cs->file, o->line, o->col);
			str_append(err, msg.s, msg.len);
			rc = -1;
		}
		opt_val_clear(&v);
	}
	str_free(&msg);
	return rc;
}

struct api_gen *api_modules_load(struct conf *conf, struct str *err)
{
	struct api_gen *g = api_gen_new();
	struct str msg = STR_INIT;

	g->conf = conf;
	api_instance_fini_hook = instance_fini;
	for (size_t i = 0; i < conf_module_count(conf); i++) {
		const struct conf_module_stanza *st = conf_module_at(conf, i);
		const struct loaded *lm;

		str_clear(&msg);
		lm = module_open(conf, st->module, &msg);
		if (lm == NULL) {
			where(err, st->file, st->line, st->col);
			str_append(err, msg.s, msg.len);
			goto fail;
		}
		if (check_table(lm, err) < 0)
			goto fail;
		for (size_t k = 1; k < g->ninst; k++)
			if (g->inst[k]->mod == lm->mod && (lm->mod->flags & IMP_MODULE_SINGLETON)) {
				where(err, st->file, st->line, st->col);
				str_appendf(err, "module \"%s\" has one instance only (first at %s:%d)",
					    lm->mod->name, g->inst[k]->file, g->inst[k]->line);
				goto fail;
			}
		struct imp_instance *inst = instance_new(g, st, lm, err);
		if (inst == NULL)
			goto fail;
		if (g->ninst == g->inst_cap) {
			g->inst_cap *= 2;
			g->inst = xrealloc(g->inst, g->inst_cap * sizeof(*g->inst));
		}
		g->inst[g->ninst++] = inst;
	}
	if (scoped_check(g, conf, err) < 0)
		goto fail;
	str_free(&msg);
	return g;
fail:
	str_free(&msg);
	api_gen_release(g);
	return NULL;
}

/* init_all - the built-ins, then each enabled instance's init (on the scheduler loop). */
struct start_ctx {
	struct api_gen *g;
	struct str *err;
	int rc;
};

static void init_all(void *arg)
{
	struct start_ctx *sc = arg;
	struct api_gen *g = sc->g;

	api_builtins_register(g);
	for (size_t i = 1; i < g->ninst; i++) {
		struct imp_instance *inst = g->inst[i];
		struct imp_error e = { STR_INIT };

		if (!inst->enabled || inst->mod->init == NULL) {
			inst->initialised = inst->enabled;
			continue;
		}
		struct api_gen *prev = api_gen_enter(g);
		int r = inst->mod->init(inst, &e);
		api_gen_leave(prev);
		if (r < 0) {
			str_appendf(sc->err, "%s:%d: module %s%s%s%s: init failed: %s", inst->file,
				    inst->line, inst->module_name, *inst->name ? " \"" : "", inst->name,
				    *inst->name ? "\"" : "",
				    e.msg.len ? str_cstr(&e.msg) : "(no reason given)");
			str_free(&e.msg);
			sc->rc = -1;
			return;
		}
		str_free(&e.msg);
		inst->initialised = true;
	}
}

int api_modules_start(struct api_gen *g, struct str *err)
{
	struct start_ctx sc = { g, err, 0 };
	struct loop *sched = api_runtime()->scheduler;

	/* An init that starts a timer or posts needs to run as the scheduler loop. */
	if (sched && loop_current() == NULL)
		loop_call_as(sched, init_all, &sc);
	else
		init_all(&sc);
	if (sc.rc < 0) {
		api_gen_release(g);
		return -1;
	}
	api_gen_freeze(g);
	api_gen_attach(g, g->conf);
	return 0;
}

/* ---- what modules call ---------------------------------------------------- */

void imp_error_set(struct imp_error *err, const char *fmt, ...)
{
	va_list ap;

	str_clear(&err->msg);
	va_start(ap, fmt);
	str_vappendf(&err->msg, fmt, ap);
	va_end(ap);
}

/* option_of - the value of name; aborts on a name or type the table does not declare. */
static const struct opt_val *option_of(const struct imp_instance *inst, const char *name,
				       unsigned types)
{
	int idx = inst->mod ? find_option(inst->mod, name) : -1;

	if (idx < 0 || !(types & (1u << inst->mod->options[idx].type))) {
		log_panic("module %s: BUG: option \"%s\" %s", inst->module_name, name,
			  idx < 0 ? "is not in its option table" : "asked for with the wrong type");
		abort();
	}
	return &((const struct opt_val *)inst->opts)[idx];
}

bool imp_option_bool(const struct imp_instance *inst, const char *name)
{
	if (strcasecmp(name, OPT_ENABLED) == 0)
		return inst->enabled;
	return option_of(inst, name, 1u << IMP_OPT_BOOL)->i != 0;
}

int64_t imp_option_int(const struct imp_instance *inst, const char *name)
{
	if (strcasecmp(name, OPT_DEBUG_LEVEL) == 0)
		return inst->debug_level;
	return option_of(inst, name,
			 1u << IMP_OPT_INT | 1u << IMP_OPT_INTERVAL | 1u << IMP_OPT_SIZE)->i;
}

const char *imp_option_string(const struct imp_instance *inst, const char *name)
{
	return option_of(inst, name, 1u << IMP_OPT_STRING)->s;
}

const char *const *imp_option_list(const struct imp_instance *inst, const char *name, size_t *n)
{
	const struct opt_val *v = option_of(inst, name, 1u << IMP_OPT_LIST);

	*n = v->n;
	return (const char *const *)v->list;
}

bool imp_option_is_set(const struct imp_instance *inst, const char *name)
{
	return option_of(inst, name, ~0u)->set;
}

/* sub_of - the i-th sub-stanza name of inst; aborts on a name the table lacks or i out of range. */
static const struct sub_val *sub_of(const struct imp_instance *inst, const char *name, size_t i)
{
	size_t nt;
	const struct imp_substanza *t = mod_subs(inst->mod, &nt);
	const struct sub_val *subs = inst->subs;
	bool known = false;
	size_t seen = 0;

	for (size_t k = 0; k < nt && !known; k++)
		known = strcasecmp(t[k].name, name) == 0;
	if (known)
		for (size_t k = 0; k < inst->nsubs; k++)
			if (strcasecmp(subs[k].decl->name, name) == 0 && seen++ == i)
				return &subs[k];
	log_panic("module %s: BUG: sub-stanza \"%s\" %s", inst->module_name, name,
		  known ? "asked for past its count" : "is not in its sub-stanza table");
	abort();
}

/* sub_option_of - the value of option opt of a sub-stanza; aborts like option_of. */
static const struct opt_val *sub_option_of(const struct imp_instance *inst, const char *name,
					   size_t i, const char *opt, unsigned types)
{
	const struct sub_val *sv = sub_of(inst, name, i);
	int idx = find_in(sv->decl->options, sv->decl->noptions, opt);

	if (idx < 0 || !(types & (1u << sv->decl->options[idx].type))) {
		log_panic("module %s: BUG: option \"%s\" of sub-stanza %s %s", inst->module_name, opt,
			  name, idx < 0 ? "is not in its option table" : "asked for with the wrong type");
		abort();
	}
	return &sv->vals[idx];
}

size_t imp_substanza_count(const struct imp_instance *inst, const char *name)
{
	size_t nt, n = 0;
	const struct imp_substanza *t = mod_subs(inst->mod, &nt);
	const struct sub_val *subs = inst->subs;
	bool known = false;

	for (size_t k = 0; k < nt && !known; k++)
		known = strcasecmp(t[k].name, name) == 0;
	if (!known) {
		log_panic("module %s: BUG: sub-stanza \"%s\" is not in its sub-stanza table",
			  inst->module_name, name);
		abort();
	}
	for (size_t k = 0; k < inst->nsubs; k++)
		n += strcasecmp(subs[k].decl->name, name) == 0;
	return n;
}

const char *imp_substanza_arg(const struct imp_instance *inst, const char *name, size_t i)
{
	return sub_of(inst, name, i)->arg;
}

bool imp_substanza_option_bool(const struct imp_instance *inst, const char *name, size_t i,
			       const char *opt)
{
	return sub_option_of(inst, name, i, opt, 1u << IMP_OPT_BOOL)->i != 0;
}

int64_t imp_substanza_option_int(const struct imp_instance *inst, const char *name, size_t i,
				 const char *opt)
{
	return sub_option_of(inst, name, i, opt,
			     1u << IMP_OPT_INT | 1u << IMP_OPT_INTERVAL | 1u << IMP_OPT_SIZE)->i;
}

const char *imp_substanza_option_string(const struct imp_instance *inst, const char *name,
					size_t i, const char *opt)
{
	return sub_option_of(inst, name, i, opt, 1u << IMP_OPT_STRING)->s;
}

const char *const *imp_substanza_option_list(const struct imp_instance *inst, const char *name,
					     size_t i, const char *opt, size_t *n)
{
	const struct opt_val *v = sub_option_of(inst, name, i, opt, 1u << IMP_OPT_LIST);

	*n = v->n;
	return (const char *const *)v->list;
}

bool imp_substanza_option_is_set(const struct imp_instance *inst, const char *name, size_t i,
				 const char *opt)
{
	return sub_option_of(inst, name, i, opt, ~0u)->set;
}

/* ---- scoped options (API 1.2) ---------------------------------------------- */

/*
 * scoped_of - the declaration of the instance's scoped option name and
 * its text for (binding, domain): the setting on the fallback chain, or
 * the default (NULL when none). Aborts on a name or type the table does
 * not declare.
 */
static const struct imp_option *scoped_of(const struct imp_instance *inst, const char *name,
					  unsigned types, const char *binding, const char *domain,
					  const char **text)
{
	size_t n;
	const struct imp_option *t = mod_scoped(inst->mod, &n);
	int idx = find_in(t, n, name);

	if (idx < 0 || !(types & (1u << t[idx].type))) {
		log_panic("module %s: BUG: scoped option \"%s\" %s", inst->module_name, name,
			  idx < 0 ? "is not in its scoped option table" : "asked for with the wrong type");
		abort();
	}
	const struct conf_scoped_setting *cs = inst->gen->conf == NULL ? NULL :
		conf_scoped_get(inst->gen->conf, t[idx].name, binding && *binding ? binding : NULL,
				domain && *domain ? domain : NULL);

	/* Checked at load (scoped_check): a single value of the option's type. */
	*text = cs && cs->opt.n == 1 ? cs->opt.v[0].text : t[idx].def;
	return &t[idx];
}

bool imp_scoped_option_bool(const struct imp_instance *inst, const char *name,
			    const char *binding, const char *domain)
{
	const char *text;
	int64_t x = 0;

	scoped_of(inst, name, 1u << IMP_OPT_BOOL, binding, domain, &text);
	return text && conf_scalar_parse(CONF_T_BOOL, text, &x) == 0 && x != 0;
}

int64_t imp_scoped_option_int(const struct imp_instance *inst, const char *name,
			      const char *binding, const char *domain)
{
	const char *text;
	int64_t x = 0;
	const struct imp_option *d = scoped_of(inst, name,
					       (1u << IMP_OPT_INT) | (1u << IMP_OPT_INTERVAL) |
					       (1u << IMP_OPT_SIZE), binding, domain, &text);

	if (text == NULL || conf_scalar_parse(conf_type_of(d->type), text, &x) != 0)
		return 0;
	return x;
}

const char *imp_scoped_option_string(const struct imp_instance *inst, const char *name,
				     const char *binding, const char *domain)
{
	const char *text;

	scoped_of(inst, name, 1u << IMP_OPT_STRING, binding, domain, &text);
	return text;
}
