/*
 * config.c - one configuration generation: lifetime and lookups
 *
 * A struct conf is built by conf_parse.c and then only read. This file
 * holds its memory (arena, hash maps), its reference count, and the
 * lookups every other module calls on hot paths:
 *
 *   conf_get(binding, domain)    binding::domain -> Binding_Group::domain
 *                                -> global Domain -> Binding
 *                                -> Binding_Group -> global -> default
 *   conf_listener_get(listener)  Listen -> ESMTP_Listener -> global -> default
 *
 * Each step is a hash lookup of a name (once per call) and an array index
 * by option id, so a lookup costs a few cache lines. Inside one container
 * an exact Domain stanza that sets the option wins; then the "/regex/"
 * Domain stanzas of that container are tried in file order, but only for
 * options that at least one of them sets (regex_sets), so options no regex
 * touches never pay for PCRE2.
 *
 * The server's own name (conf_hostname) is resolved here, once per
 * generation when it is loaded: Hostname if set, else the system's name.
 * It lives in the configuration and not in the SMTP server because the
 * banner, EHLO, Received and Message-ID (smtp/) and bounces and the
 * default EHLO_Hostname of deliveries (queue/) all need the same answer,
 * and a queue that included an SMTP server header to learn it had its
 * layers upside down. Resolving at load time keeps gethostname() off
 * every hot path; a reload (SIGHUP) picks up a changed system name.
 *
 * Ownership: read-only after conf_load_*; the count is atomic, so any
 * thread holding a reference may read and conf_unref(). Failures: loads
 * return NULL with the error in err; lookups cannot fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/conf_int.h"
#include "core/mem.h"

/* ======================================================================
 * Arena
 * ====================================================================== */

#define ARENA_BLOCK (16u * 1024)

struct conf_arena_block {
	struct conf_arena_block *next;
	size_t used, cap;
	max_align_t data[];
};

void *conf_arena_alloc(struct conf_arena *a, size_t n)
{
	const size_t align = sizeof(max_align_t);
	struct conf_arena_block *b = a->head;

	n = (n + align - 1) / align * align;
	if (n == 0)
		n = align;
	if (b == NULL || b->cap - b->used < n) {
		size_t cap = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;

		b = xmalloc(sizeof(*b) + cap);
		b->used = 0;
		b->cap = cap;
		if (cap == n && a->head) {
			/* A big one-off: keep the current block for small allocations. */
			b->next = a->head->next;
			a->head->next = b;
		} else {
			b->next = a->head;
			a->head = b;
		}
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

char *conf_arena_strndup(struct conf_arena *a, const char *s, size_t n)
{
	char *p = conf_arena_alloc(a, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *conf_arena_strdup(struct conf_arena *a, const char *s)
{
	return conf_arena_strndup(a, s, strlen(s));
}

struct conf_arena_cleanup {
	struct conf_arena_cleanup *next;
	void (*fn)(void *);
	void *p;
};

void conf_arena_defer(struct conf_arena *a, void (*fn)(void *), void *p)
{
	struct conf_arena_cleanup *c = xmalloc(sizeof(*c));

	c->fn = fn;
	c->p = p;
	c->next = a->cleanups;
	a->cleanups = c;
}

void conf_arena_free(struct conf_arena *a)
{
	struct conf_arena_block *b = a->head;

	while (a->cleanups) {
		struct conf_arena_cleanup *c = a->cleanups;

		a->cleanups = c->next;
		c->fn(c->p);
		free(c);
	}

	while (b) {
		struct conf_arena_block *next = b->next;

		free(b);
		b = next;
	}
	a->head = NULL;
}

/* ======================================================================
 * Case-insensitive map (open addressing, linear probing)
 * ====================================================================== */

/* conf_map_hash - FNV-1a over the ASCII-lowercased bytes. */
uint32_t conf_map_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 'A' && c <= 'Z')
			c += 32;
		h = (h ^ c) * 16777619u;
	}
	return h;
}

void *conf_map_get(const struct conf_map *m, const char *key, size_t len)
{
	return m->n ? conf_map_get_h(m, key, len, conf_map_hash(key, len)) : NULL;
}

void *conf_map_get_h(const struct conf_map *m, const char *key, size_t len, uint32_t h)
{
	if (m->n == 0)
		return NULL;
	size_t mask = m->cap - 1;

	for (size_t i = h & mask; m->slots[i].key; i = (i + 1) & mask) {
		const struct conf_map_slot *s = &m->slots[i];

		if (s->hash == h && s->len == len && conf_ascii_caseeq_n(s->key, key, len))
			return s->val;
	}
	return NULL;
}

/* map_insert - place a slot without growing (there is always a free one). */
static void map_insert(struct conf_map_slot *slots, size_t cap, const struct conf_map_slot *in)
{
	size_t mask = cap - 1, i = in->hash & mask;

	while (slots[i].key)
		i = (i + 1) & mask;
	slots[i] = *in;
}

void conf_map_put(struct conf_map *m, const char *key, size_t len, void *val)
{
	struct conf_map_slot in = { key, len, conf_map_hash(key, len), val };

	/* Keep the load under one half so probes stay short. */
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct conf_map_slot *slots = xcalloc(cap, sizeof(*slots));

		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].key)
				map_insert(slots, cap, &m->slots[i]);
		free(m->slots);
		m->slots = slots;
		m->cap = cap;
	}
	map_insert(m->slots, m->cap, &in);
	m->n++;
}

void conf_map_free(struct conf_map *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* ======================================================================
 * Construction and lifetime
 * ====================================================================== */

const char *conf_node_kind_name(enum conf_node_kind k)
{
	static const char *names[CONF_N__COUNT] = {
		[CONF_N_GLOBAL] = "global",
		[CONF_N_BINDING_GROUP] = "Binding_Group",
		[CONF_N_BINDING] = "Binding",
		[CONF_N_DOMAIN] = "Domain",
		[CONF_N_ESMTP_LISTENER] = "ESMTP_Listener",
		[CONF_N_LISTEN] = "Listen",
		[CONF_N_CONTROL_LISTENER] = "Control_Listener",
		[CONF_N_CONTROL_LISTEN] = "Control_Listener Listen",
		[CONF_N_HTTP_LISTENER] = "HTTP_Listener",
		[CONF_N_HTTP_LISTEN] = "HTTP_Listener Listen",
		[CONF_N_HTTP_KEY] = "API_Key",
		[CONF_N_WEBHOOK] = "Webhook",
	};
	return (unsigned)k < CONF_N__COUNT ? names[k] : "?";
}

unsigned conf_node_kind_scope(enum conf_node_kind k)
{
	switch (k) {
	case CONF_N_GLOBAL: return CONF_S_GLOBAL;
	case CONF_N_BINDING_GROUP: return CONF_S_BINDING_GROUP;
	case CONF_N_BINDING: return CONF_S_BINDING;
	case CONF_N_DOMAIN: return CONF_S_DOMAIN;
	case CONF_N_ESMTP_LISTENER:
	case CONF_N_LISTEN: return CONF_S_LISTENER;
	case CONF_N_CONTROL_LISTENER:
	case CONF_N_CONTROL_LISTEN: return CONF_S_CONTROL;
	case CONF_N_HTTP_LISTENER:
	case CONF_N_HTTP_LISTEN: return CONF_S_HTTP;
	case CONF_N_HTTP_KEY: return CONF_S_HTTP_KEY;
	case CONF_N_WEBHOOK: return CONF_S_WEBHOOK;
	case CONF_N__COUNT: break;
	}
	return 0;
}

struct conf *conf_new(const char *source)
{
	struct conf *c = XNEW(struct conf);

	(void)conf_default_setting(0);	/* parse the table once, before any file */
	atomic_init(&c->refs, 1);
	c->source = conf_arena_strdup(&c->arena, source);
	c->global = conf_node_new(c, CONF_N_GLOBAL, NULL, NULL, c->source, 0, 0);
	return c;
}

struct conf_node *conf_node_new(struct conf *c, enum conf_node_kind kind, struct conf_node *parent,
				const char *name, const char *file, int line, int col)
{
	struct conf_node *n = conf_arena_alloc(&c->arena, sizeof(*n));

	n->kind = kind;
	n->parent = parent;
	n->name = name;
	n->file = file;
	n->line = line;
	n->col = col;
	if (c->nnodes == c->nodes_cap) {
		c->nodes_cap = c->nodes_cap ? c->nodes_cap * 2 : 32;
		c->nodes = xrealloc(c->nodes, c->nodes_cap * sizeof(*c->nodes));
	}
	c->nodes[c->nnodes++] = n;
	return n;
}

struct conf *conf_ref(struct conf *c)
{
	if (c)
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void conf_unref(struct conf *c)
{
	if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (c->attached_release)
		c->attached_release(c->attached);
	for (size_t i = 0; i < c->nnodes; i++) {
		struct conf_node *n = c->nodes[i];

		conf_map_free(&n->domains);
		free(n->regex);
		if (n->re)
			pcre2_code_free(n->re);
	}
	free(c->nodes);
	for (size_t i = 0; i < c->nmodules; i++) {
		free((void *)c->modules[i].opts);
		free((void *)c->modules[i].subs);	/* their options are in the arena */
	}
	free(c->modules);
	free(c->scoped);
	conf_map_free(&c->binding_map);
	conf_map_free(&c->group_map);
	conf_map_free(&c->all_domains);
	conf_arena_free(&c->arena);
	free(c);
}

size_t conf_module_count(const struct conf *c)
{
	return c->nmodules;
}

const struct conf_module_stanza *conf_module_at(const struct conf *c, size_t i)
{
	return i < c->nmodules ? &c->modules[i] : NULL;
}

void conf_attach(struct conf *c, void *ext, void (*release)(void *ext))
{
	c->attached = ext;
	c->attached_release = release;
}

void *conf_attached(const struct conf *c)
{
	return c->attached;
}

/* resolve_hostname - fix the generation's own name: Hostname, else the system's name. */
static void resolve_hostname(struct conf *c)
{
	const char *h = conf_str(c, CONF_OPT_HOSTNAME);
	char sysname[CONF_HOSTNAME_MAX + 1] = "";

	if (h && *h) {
		c->hostname = h;
		return;
	}
	/* gethostname() need not terminate a truncated name: leave it room. */
	if (gethostname(sysname, sizeof(sysname) - 1) < 0 || sysname[0] == '\0')
		snprintf(sysname, sizeof(sysname), "%s", CONF_HOSTNAME_FALLBACK);
	c->hostname = conf_arena_strdup(&c->arena, sysname);
}

struct conf *conf_load_string(const char *text, const char *name, struct str *err)
{
	struct conf *c = conf_new(name ? name : "(string)");

	if (text == NULL)
		text = "";
	if (!conf_parse_text(c, text, strlen(text), c->source, err) || !conf_auth_check(c, err)) {
		conf_unref(c);
		return NULL;
	}
	resolve_hostname(c);
	return c;
}

struct conf *conf_load_file(const char *path, struct str *err)
{
	struct conf *c = conf_new(path);

	if (!conf_parse_path(c, c->source, err) || !conf_auth_check(c, err)) {
		conf_unref(c);
		return NULL;
	}
	resolve_hostname(c);
	return c;
}

struct conf *conf_load_default(struct str *err)
{
	return conf_load_string(conf_default_text(), "etc/impetus.conf", err);
}

const char *conf_source(const struct conf *c)
{
	return c->source;
}

const char *conf_hostname(const struct conf *c)
{
	return c->hostname;
}

/* ======================================================================
 * Lookups
 * ====================================================================== */

/* regex_matches - whether a regex Domain stanza matches the name. */
static bool regex_matches(const struct conf_node *n, const char *domain, size_t len)
{
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	int rc;

	if (md == NULL)
		return false;
	rc = pcre2_match(n->re, (PCRE2_SPTR)domain, len, 0, 0, md, NULL);
	pcre2_match_data_free(md);
	return rc >= 0;
}

/*
 * binding_chain - the Binding stanza named binding (*b) and the
 * Binding_Group around it (*g), each NULL when there is none: the
 * containers searched before the global scope.
 */
static void binding_chain(const struct conf *c, const char *binding, const struct conf_node **b,
			  const struct conf_node **g)
{
	*b = NULL;
	*g = NULL;
	if (binding == NULL || c->nbindings == 0)
		return;
	*b = conf_map_get(&c->binding_map, binding, strlen(binding));
	*g = *b ? (*b)->parent : NULL;
	if (*g && (*g)->kind != CONF_N_BINDING_GROUP)
		*g = NULL;
}

/* domain_len - length of a domain name without one trailing dot. */
static size_t domain_len(const char *domain)
{
	size_t n = strlen(domain);

	return n > 0 && domain[n - 1] == '.' ? n - 1 : n;
}

/* container_node - opt from a container's Domain stanzas (exact, then regexes); *from = the stanza. */
static const struct conf_setting *container_node(const struct conf_node *ct, enum conf_opt opt,
						 const char *domain, size_t len, uint32_t hash,
						 const struct conf_node **from)
{
	const struct conf_node *d = conf_map_get_h(&ct->domains, domain, len, hash);

	if (d && d->vals[opt]) {
		*from = d;
		return d->vals[opt];
	}
	if (!ct->regex_sets[opt])
		return NULL;
	for (size_t i = 0; i < ct->nregex; i++) {
		d = ct->regex[i];
		if (d->vals[opt] && regex_matches(d, domain, len)) {
			*from = d;
			return d->vals[opt];
		}
	}
	return NULL;
}

/* resolve - conf_get's fallback chain; *from is the stanza that set it (NULL: the default). */
static const struct conf_value *resolve(const struct conf *c, enum conf_opt opt,
					const char *binding, const char *domain,
					const struct conf_node **from)
{
	const struct conf_node *b = NULL, *g = NULL;
	const struct conf_setting *s;

	if ((unsigned)opt >= CONF_OPT__COUNT)
		abort();	/* a caller bug: there is no sane value to return */
	binding_chain(c, binding, &b, &g);
	if (domain) {
		size_t len = domain_len(domain);
		uint32_t h = conf_map_hash(domain, len);

		if (b && (s = container_node(b, opt, domain, len, h, from)))
			return &s->v;
		if (g && (s = container_node(g, opt, domain, len, h, from)))
			return &s->v;
		if ((s = container_node(c->global, opt, domain, len, h, from)))
			return &s->v;
	}
	if (b && b->vals[opt]) {
		*from = b;
		return &b->vals[opt]->v;
	}
	if (g && g->vals[opt]) {
		*from = g;
		return &g->vals[opt]->v;
	}
	if (c->global->vals[opt]) {
		*from = c->global;
		return &c->global->vals[opt]->v;
	}
	*from = NULL;
	return &conf_default_setting(opt)->v;
}

const struct conf_value *conf_get(const struct conf *c, enum conf_opt opt,
				  const char *binding, const char *domain)
{
	const struct conf_node *from;

	return resolve(c, opt, binding, domain, &from);
}

/* describe_node - a stanza as the console names it: 'Binding "b" Domain "d"', "global". */
static void describe_node(const struct conf_node *n, struct str *where)
{
	const struct conf_node *chain[8];
	size_t k = 0;

	if (n == NULL) {
		str_appends(where, "default");
		return;
	}
	if (n->kind == CONF_N_GLOBAL) {
		str_appends(where, "global");
		return;
	}
	for (; n && n->kind != CONF_N_GLOBAL && k < 8; n = n->parent)
		chain[k++] = n;
	while (k-- > 0) {
		str_appends(where, conf_node_kind_name(chain[k]->kind));
		if (chain[k]->name)
			str_appendf(where, " \"%s\"", chain[k]->name);
		if (k)
			str_appendc(where, ' ');
	}
}

const struct conf_value *conf_get_where(const struct conf *c, enum conf_opt opt,
					const char *binding, const char *domain,
					struct str *where)
{
	const struct conf_node *from;
	const struct conf_value *v = resolve(c, opt, binding, domain, &from);

	describe_node(from, where);
	return v;
}

const struct conf_value *conf_listener_get_where(const struct conf *c,
						 const struct conf_listener *l,
						 enum conf_opt opt, struct str *where)
{
	const struct conf_node *from = NULL;

	if ((unsigned)opt >= CONF_OPT__COUNT)
		abort();
	if (l && l->node->vals[opt])
		from = l->node;
	else if (c->esmtp && c->esmtp->vals[opt])
		from = c->esmtp;
	else if (c->global->vals[opt])
		from = c->global;
	describe_node(from, where);
	return conf_listener_get(c, l, opt);
}

/* node_scoped - the scoped setting name of one stanza, or NULL. */
static const struct conf_scoped_setting *node_scoped(const struct conf_node *n, const char *name)
{
	for (const struct conf_scoped_setting *o = n ? n->scoped : NULL; o; o = o->next)
		if (conf_ascii_caseeq(o->opt.name, name))
			return o;
	return NULL;
}

/* container_scoped - container_value for a scoped setting. */
static const struct conf_scoped_setting *container_scoped(const struct conf_node *ct,
							  const char *name, const char *domain,
							  size_t len, uint32_t hash)
{
	const struct conf_scoped_setting *o;

	if ((o = node_scoped(conf_map_get_h(&ct->domains, domain, len, hash), name)))
		return o;
	if (!ct->regex_scoped)
		return NULL;
	for (size_t i = 0; i < ct->nregex; i++)
		if ((o = node_scoped(ct->regex[i], name)) && regex_matches(ct->regex[i], domain, len))
			return o;
	return NULL;
}

size_t conf_scoped_count(const struct conf *c)
{
	return c->nscoped;
}

const struct conf_scoped_setting *conf_scoped_at(const struct conf *c, size_t i)
{
	return i < c->nscoped ? c->scoped[i] : NULL;
}

const struct conf_scoped_setting *conf_scoped_get(const struct conf *c, const char *name,
						  const char *binding, const char *domain)
{
	const struct conf_node *b = NULL, *g = NULL;
	const struct conf_scoped_setting *o;

	if (c->nscoped == 0)
		return NULL;
	binding_chain(c, binding, &b, &g);
	if (domain) {
		size_t len = domain_len(domain);
		uint32_t h = conf_map_hash(domain, len);

		if (b && (o = container_scoped(b, name, domain, len, h)))
			return o;
		if (g && (o = container_scoped(g, name, domain, len, h)))
			return o;
		if ((o = container_scoped(c->global, name, domain, len, h)))
			return o;
	}
	if ((o = node_scoped(b, name)) || (o = node_scoped(g, name)))
		return o;
	return node_scoped(c->global, name);
}

bool conf_bool(const struct conf *c, enum conf_opt opt)
{
	return conf_get(c, opt, NULL, NULL)->u.b;
}

int64_t conf_int(const struct conf *c, enum conf_opt opt)
{
	return conf_get(c, opt, NULL, NULL)->u.i;
}

const char *conf_str(const struct conf *c, enum conf_opt opt)
{
	return conf_get(c, opt, NULL, NULL)->u.s;
}

/* ======================================================================
 * Bindings, domains, listeners
 * ====================================================================== */

size_t conf_binding_count(const struct conf *c)
{
	return c->nbindings;
}

const char *conf_binding_name(const struct conf *c, size_t i)
{
	return i < c->nbindings ? c->bindings[i]->name : NULL;
}

const char *conf_binding_group_of(const struct conf *c, const char *binding)
{
	const struct conf_node *b;

	if (binding == NULL)
		return NULL;
	b = conf_map_get(&c->binding_map, binding, strlen(binding));
	if (b && b->parent && b->parent->kind == CONF_N_BINDING_GROUP)
		return b->parent->name;
	return NULL;
}

bool conf_binding_exists(const struct conf *c, const char *binding)
{
	return binding && conf_map_get(&c->binding_map, binding, strlen(binding)) != NULL;
}

const char *conf_binding_canonical(const struct conf *c, const char *binding)
{
	const struct conf_node *n = binding ? conf_map_get(&c->binding_map, binding, strlen(binding)) : NULL;

	return n ? n->name : NULL;
}

bool conf_domain_configured(const struct conf *c, const char *domain)
{
	return domain && conf_map_get(&c->all_domains, domain, domain_len(domain)) != NULL;
}

size_t conf_listener_count(const struct conf *c)
{
	return c->nlisteners;
}

const struct conf_listener *conf_listener_at(const struct conf *c, size_t i)
{
	return i < c->nlisteners ? c->listeners[i] : NULL;
}

const char *conf_listener_address(const struct conf_listener *l)
{
	return l->address;
}

const struct sockaddr *conf_listener_sockaddr(const struct conf_listener *l, socklen_t *len)
{
	if (len)
		*len = l->sslen;
	return (const struct sockaddr *)&l->ss;
}

const struct conf_value *conf_listener_get(const struct conf *c, const struct conf_listener *l,
					   enum conf_opt opt)
{
	if ((unsigned)opt >= CONF_OPT__COUNT)
		abort();
	if (l && l->node->vals[opt])
		return &l->node->vals[opt]->v;
	if (c->esmtp && c->esmtp->vals[opt])
		return &c->esmtp->vals[opt]->v;
	if (c->global->vals[opt])
		return &c->global->vals[opt]->v;
	return &conf_default_setting(opt)->v;
}

size_t conf_control_count(const struct conf *c)
{
	return c->ncontrols;
}

const char *conf_control_path(const struct conf *c, size_t i)
{
	return i < c->ncontrols ? c->controls[i]->name : NULL;
}

const struct conf_value *conf_control_get(const struct conf *c, size_t i, enum conf_opt opt)
{
	if ((unsigned)opt >= CONF_OPT__COUNT)
		abort();
	if (i < c->ncontrols && c->controls[i]->vals[opt])
		return &c->controls[i]->vals[opt]->v;
	if (c->control && c->control->vals[opt])
		return &c->control->vals[opt]->v;
	return &conf_default_setting(opt)->v;
}

size_t conf_http_count(const struct conf *c)
{
	return c->nhttps;
}

const char *conf_http_address(const struct conf *c, size_t i)
{
	return i < c->nhttps ? c->https[i]->address : NULL;
}

const struct sockaddr *conf_http_sockaddr(const struct conf *c, size_t i, socklen_t *len)
{
	if (i >= c->nhttps)
		return NULL;
	*len = c->https[i]->sslen;
	return (const struct sockaddr *)&c->https[i]->ss;
}

const struct conf_value *conf_http_get(const struct conf *c, size_t i, enum conf_opt opt)
{
	if ((unsigned)opt >= CONF_OPT__COUNT)
		abort();
	if (i < c->nhttps && c->https[i]->node->vals[opt])
		return &c->https[i]->node->vals[opt]->v;
	if (c->http && c->http->vals[opt])
		return &c->http->vals[opt]->v;
	return &conf_default_setting(opt)->v;
}

size_t conf_http_key_count(const struct conf *c)
{
	return c->nhttp_keys;
}

const char *conf_http_key_name(const struct conf *c, size_t i)
{
	return i < c->nhttp_keys ? c->http_keys[i]->name : NULL;
}

const char *conf_http_key_hash(const struct conf *c, size_t i)
{
	const struct conf_setting *s;

	if (i >= c->nhttp_keys)
		return NULL;
	s = c->http_keys[i]->vals[CONF_OPT_API_KEY_HASH];
	return s ? s->v.u.s : NULL;
}

enum conf_api_key_role conf_http_key_role(const struct conf *c, size_t i)
{
	const struct conf_setting *s = i < c->nhttp_keys ? c->http_keys[i]->vals[CONF_OPT_API_KEY_ROLE] : NULL;

	return (enum conf_api_key_role)(s ? s->v.u.i : conf_default_setting(CONF_OPT_API_KEY_ROLE)->v.u.i);
}

size_t conf_webhook_count(const struct conf *c)
{
	return c->nwebhooks;
}

const char *conf_webhook_name(const struct conf *c, size_t i)
{
	return i < c->nwebhooks ? c->webhooks[i]->name : NULL;
}

const struct conf_value *conf_webhook_get(const struct conf *c, size_t i, enum conf_opt opt)
{
	if ((unsigned)opt >= CONF_OPT__COUNT)
		abort();
	if (i < c->nwebhooks && c->webhooks[i]->vals[opt])
		return &c->webhooks[i]->vals[opt]->v;
	return &conf_default_setting(opt)->v;
}

bool conf_http_hash_ok(const char *hash)
{
	size_t n = hash ? strlen(hash) : 0;

	if (n >= 3 && hash[0] == '$' && strchr(hash + 1, '$') != NULL && n < 512 &&
	    strpbrk(hash, " \t:\r\n") == NULL)
		return true;
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((hash[i] >= '0' && hash[i] <= '9') || (hash[i] >= 'a' && hash[i] <= 'f') ||
		      (hash[i] >= 'A' && hash[i] <= 'F')))
			return false;
	return true;
}

bool conf_mode_parse(const char *s, unsigned *out)
{
	unsigned v = 0;

	if (s == NULL || *s == '\0' || strlen(s) > 5)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '7')
			return false;
		v = v * 8 + (unsigned)(*s - '0');
	}
	if (v > 07777)
		return false;
	*out = v;
	return true;
}

bool conf_control_is_tcp(const struct conf *c, size_t i)
{
	return i < c->ncontrols && strchr(c->controls[i]->name, '/') == NULL;
}

unsigned conf_control_mode(const struct conf *c, size_t i)
{
	unsigned m = 0600;

	conf_mode_parse(conf_control_get(c, i, CONF_OPT_FILE_MODE)->u.s, &m);
	return m;
}
