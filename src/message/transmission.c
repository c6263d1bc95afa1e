/*
 * transmission.c - a JSON injection request: parsed, checked, and rendered per recipient
 * (transmission.h)
 *
 * Parsing does all the work that does not depend on a recipient, once:
 * the JSON is loaded, a KumoMTA request is rewritten into the SparkPost
 * shape (kumo_convert), the top-level fields are checked, and every
 * string of the content that may hold substitutions is compiled into a
 * template (struct tx_part). Rendering a recipient then costs a shallow
 * copy of the content with the rendered strings put in, and msg_build.
 *
 * What is the recipient's fault (an address msg_build refuses, data of
 * the wrong type, metadata over the context limit) rejects only that
 * recipient; what is wrong with the request as a whole (no recipients,
 * a template that does not compile, a sender that cannot be) is found
 * here, before any message exists.
 *
 * Ownership: struct transmission owns its JSON tree and templates; a
 * struct tx_msg owns its strings. Failure: -EINVAL with a struct tx_err.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <impetus/session.h>

#include "core/base64.h"
#include "core/mem.h"
#include "message/template.h"
#include "message/transmission.h"

#define CAMPAIGN_MAX 64

/* Where a templated string lives in the content. */
enum part_where {
	IN_CONTENT,		/* content.<key> */
	IN_FROM,		/* content.from.<key> (from as an object) */
	IN_HEADERS,		/* content.headers.<key> */
};

struct tx_part {
	enum part_where where;
	const char *key;		/* the JSON tree's own key string */
	struct template *t;
	enum template_escape mode;
};

struct transmission {
	json_t *root;			/* the request, SparkPost shape */
	json_t *content;		/* borrowed from root */
	json_t *recipients;		/* borrowed */
	json_t *global_data;		/* substitution_data, or NULL */
	json_t *global_meta;		/* metadata, or NULL */
	const char *sender;
	const char *binding;
	const char *campaign;
	bool sandbox;
	struct tx_part *parts;
	size_t nparts;
};

/* fail - fill err (status, field, text) and return -EINVAL. */
static int fail(struct tx_err *err, int status, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct tx_err *err, int status, const char *field, const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	snprintf(err->field, sizeof(err->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	utf8_trim(err->field);	/* both may quote the client's text, cut anywhere */
	utf8_trim(err->text);
	return -EINVAL;
}

/* opt_string - root[key] as a string: 1 and *out, 0 when absent or null, -EINVAL otherwise. */
static int opt_string(const json_t *obj, const char *key, const char *path, const char **out,
		      struct tx_err *err)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(err, 422, path, "must be a string");
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(err, 422, path, "must not contain NUL");
	*out = json_string_value(v);
	return 1;
}

/* opt_object - obj[key] as an object (NULL when absent or null), -EINVAL when another type. */
static int opt_object(const json_t *obj, const char *key, const char *path, json_t **out,
		      struct tx_err *err)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return fail(err, 422, path, "must be an object");
	*out = v;
	return 1;
}

/* envelope_addr_ok - an envelope address: local@domain, no space, control, '<' or '>'. */
static bool envelope_addr_ok(const char *a)
{
	const char *at = strrchr(a, '@');

	if (at == NULL || at == a || at[1] == '\0' || strlen(a) > 320)
		return false;
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>')
			return false;
	return true;
}

/* ==================== KumoMTA's shape ==================== */

/* kumo_attachment - one of content.attachments[] into attachments[] or inline_images[]. */
static int kumo_attachment(const json_t *a, size_t i, json_t *atts, json_t *imgs,
			   struct tx_err *err)
{
	char path[64];
	const char *data, *type, *name, *cid;
	int r;

	snprintf(path, sizeof(path), "content.attachments[%zu]", i);
	if (!json_is_object(a))
		return fail(err, 422, path, "must be an object {data, content_type, file_name, base64, content_id}");
	char sub[96];

	snprintf(sub, sizeof(sub), "%s.data", path);
	if ((r = opt_string(a, "data", sub, &data, err)) < 0)
		return r;
	if (r == 0)
		return fail(err, 422, sub, "is required");
	snprintf(sub, sizeof(sub), "%s.content_type", path);
	if ((r = opt_string(a, "content_type", sub, &type, err)) < 0)
		return r;
	snprintf(sub, sizeof(sub), "%s.file_name", path);
	if ((r = opt_string(a, "file_name", sub, &name, err)) < 0)
		return r;
	snprintf(sub, sizeof(sub), "%s.content_id", path);
	if ((r = opt_string(a, "content_id", sub, &cid, err)) < 0)
		return r;
	json_t *b64 = json_object_get(a, "base64");
	if (b64 && !json_is_boolean(b64) && !json_is_null(b64)) {
		snprintf(sub, sizeof(sub), "%s.base64", path);
		return fail(err, 422, sub, "must be true or false");
	}

	json_t *o = json_object();
	if (b64 && json_is_true(b64)) {
		json_object_set_new(o, "data", json_string(data));
	} else {
		/* Kumo's default: data is the content itself; the builder wants base64. */
		struct str enc = STR_INIT;

		base64_encode(data, json_string_length(json_object_get(a, "data")), 0, &enc);
		json_object_set_new(o, "data", json_stringn(enc.s ? enc.s : "", enc.len));
		str_free(&enc);
	}
	json_object_set_new(o, "type", json_string(type ? type : "application/octet-stream"));
	if (cid) {
		json_object_set_new(o, "name", json_string(cid));
		json_array_append_new(imgs, o);
	} else {
		json_object_set_new(o, "name", json_string(name ? name : "attachment"));
		json_array_append_new(atts, o);
	}
	return 0;
}

/* kumo_content - Kumo's content (a message string or a builder object) as SparkPost's. */
static int kumo_content(const json_t *k, json_t *content, struct tx_err *err)
{
	static const struct {
		const char *from, *to;
	} same[] = {
		{ "subject", "subject" }, { "text_body", "text" }, { "html_body", "html" },
		{ "from", "from" }, { "headers", "headers" },
	};

	if (json_is_string(k)) {
		json_object_set(content, "email_rfc822", (json_t *)k);
		return 0;
	}
	if (!json_is_object(k))
		return fail(err, 422, "content", "must be a string (a whole message) or a builder object");
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		json_t *v = json_object_get(k, same[i].from);

		if (v && !json_is_null(v))
			json_object_set(content, same[i].to, v);
	}
	json_t *rt = json_object_get(k, "reply_to");
	if (json_is_object(rt))
		rt = json_object_get(rt, "email");
	if (rt && !json_is_null(rt))
		json_object_set(content, "reply_to", rt);

	json_t *as = json_object_get(k, "attachments");
	if (as && !json_is_null(as)) {
		size_t i;
		json_t *a;

		if (!json_is_array(as))
			return fail(err, 422, "content.attachments", "must be an array");
		json_t *atts = json_array(), *imgs = json_array();

		json_array_foreach(as, i, a) {
			int r = kumo_attachment(a, i, atts, imgs, err);

			if (r < 0) {
				json_decref(atts);
				json_decref(imgs);
				return r;
			}
		}
		if (json_array_size(atts))
			json_object_set(content, "attachments", atts);
		if (json_array_size(imgs))
			json_object_set(content, "inline_images", imgs);
		json_decref(atts);
		json_decref(imgs);
	}
	return 0;
}

/* kumo_recipient - {email, name, substitutions, metadata} as SparkPost's recipient. */
static json_t *kumo_recipient(json_t *k)
{
	json_t *r = json_object();

	if (!json_is_object(k)) {
		json_object_set(r, "address", k);	/* refused at render, naming the recipient */
		return r;
	}
	json_t *email = json_object_get(k, "email"), *name = json_object_get(k, "name");
	json_t *addr = json_object();

	if (email)
		json_object_set(addr, "email", email);
	if (name && !json_is_null(name))
		json_object_set(addr, "name", name);
	json_object_set_new(r, "address", addr);

	/* Kumo's predefined substitutions: email, name, to_header. */
	json_t *subs = json_object_get(k, "substitutions");
	json_t *data = json_is_object(subs) ? json_copy(subs) : json_object();

	if (subs && !json_is_object(subs) && !json_is_null(subs))
		json_object_set(r, "substitution_data", subs);	/* refused at render */
	else {
		if (json_is_string(email) && json_object_get(data, "email") == NULL)
			json_object_set(data, "email", email);
		if (json_is_string(name) && json_object_get(data, "name") == NULL)
			json_object_set(data, "name", name);
		if (json_is_string(email) && json_object_get(data, "to_header") == NULL) {
			struct str to = STR_INIT;

			if (json_is_string(name) && json_string_length(name)) {
				/* A quoted-string: quotes and backslashes escaped. */
				str_appendc(&to, '"');
				for (const char *c = json_string_value(name); *c; c++) {
					if (*c == '"' || *c == '\\')
						str_appendc(&to, '\\');
					str_appendc(&to, *c);
				}
				str_append(&to, "\" ", 2);
			}
			str_appendf(&to, "<%s>", json_string_value(email));
			json_object_set_new(data, "to_header", json_string(str_cstr(&to)));
			str_free(&to);
		}
		json_object_set(r, "substitution_data", data);
	}
	json_decref(data);
	json_t *meta = json_object_get(k, "metadata");
	if (meta)
		json_object_set(r, "metadata", meta);
	return r;
}

/* kumo_convert - a KumoMTA inject request as a SparkPost transmission (a new tree). */
static int kumo_convert(json_t *k, json_t **out, struct tx_err *err)
{
	const char *sender;
	int r;

	if ((r = opt_string(k, "envelope_sender", "envelope_sender", &sender, err)) < 0)
		return r;
	if (r == 0)
		return fail(err, 422, "envelope_sender", "is required");
	json_t *c = json_object_get(k, "content");
	if (c == NULL || json_is_null(c))
		return fail(err, 422, "content", "is required");
	json_t *rs = json_object_get(k, "recipients");
	if (!json_is_array(rs))
		return fail(err, 422, "recipients", "must be an array of {email, name, substitutions}");

	json_t *tx = json_object(), *content = json_object(), *recipients = json_array();
	json_object_set_new(tx, "return_path", json_string(sender));
	json_object_set_new(tx, "content", content);
	json_object_set_new(tx, "recipients", recipients);
	if ((r = kumo_content(c, content, err)) < 0) {
		json_decref(tx);
		return r;
	}
	size_t i;
	json_t *rk;
	json_array_foreach(rs, i, rk)
		json_array_append_new(recipients, kumo_recipient(rk));
	json_t *subs = json_object_get(k, "substitutions");
	if (subs)
		json_object_set(tx, "substitution_data", subs);
	*out = tx;
	return 0;
}

/* ==================== parsing ==================== */

/* add_part - compile s (at path) as a template of the content. */
static int add_part(struct transmission *tx, enum part_where where, const char *key,
		    const char *s, size_t n, enum template_escape mode, const char *path,
		    struct tx_err *err)
{
	struct template_error te;
	struct template *t;

	if (template_compile(s, n, &t, &te) < 0) {
		struct str msg = STR_INIT;

		template_error_format(&te, NULL, &msg);
		fail(err, 422, path, "%s", str_cstr(&msg));
		str_free(&msg);
		return -EINVAL;
	}
	if (template_is_static(t)) {
		template_free(t);	/* nothing to substitute: the string goes as it is */
		return 0;
	}
	tx->parts = xrealloc(tx->parts, (tx->nparts + 1) * sizeof(*tx->parts));
	tx->parts[tx->nparts++] = (struct tx_part){ where, key, t, mode };
	return 0;
}

/* compile_content - a template for every string of the content that may hold substitutions. */
static int compile_content(struct transmission *tx, struct tx_err *err)
{
	static const struct {
		const char *key;
		enum template_escape mode;
	} fields[] = {
		{ "subject", TEMPLATE_HEADER }, { "reply_to", TEMPLATE_HEADER },
		{ "from", TEMPLATE_HEADER }, { "text", TEMPLATE_TEXT }, { "html", TEMPLATE_HTML },
		{ "email_rfc822", TEMPLATE_TEXT },
	};
	char path[TX_FIELD_MAX];
	const char *key;
	json_t *v;
	int r;

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		void *it = json_object_iter_at(tx->content, fields[i].key);

		if (it == NULL || !json_is_string(v = json_object_iter_value(it)))
			continue;	/* absent, or a type msg_build names */
		snprintf(path, sizeof(path), "content.%s", fields[i].key);
		r = add_part(tx, IN_CONTENT, json_object_iter_key(it), json_string_value(v),
			     json_string_length(v), fields[i].mode, path, err);
		if (r < 0)
			return r;
	}
	json_t *from = json_object_get(tx->content, "from");
	if (json_is_object(from)) {
		json_object_foreach(from, key, v) {
			if ((strcmp(key, "email") && strcmp(key, "name")) || !json_is_string(v))
				continue;
			snprintf(path, sizeof(path), "content.from.%s", key);
			r = add_part(tx, IN_FROM, key, json_string_value(v), json_string_length(v),
				     TEMPLATE_HEADER, path, err);
			if (r < 0)
				return r;
		}
	}
	json_t *headers = json_object_get(tx->content, "headers");
	if (json_is_object(headers)) {
		json_object_foreach(headers, key, v) {
			if (!json_is_string(v))
				continue;
			snprintf(path, sizeof(path), "content.headers.%s", key);
			r = add_part(tx, IN_HEADERS, key, json_string_value(v), json_string_length(v),
				     TEMPLATE_HEADER, path, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* has_tags - whether s holds a substitution ("{{"). */
static bool has_tags(const char *s)
{
	return strstr(s, "{{") != NULL;
}

/* choose_sender - return_path, else the from address when it is a plain one. */
static int choose_sender(struct transmission *tx, struct tx_err *err)
{
	const char *rp;
	int r;

	if ((r = opt_string(tx->root, "return_path", "return_path", &rp, err)) < 0)
		return r;
	if (r == 0) {
		json_t *from = json_object_get(tx->content, "from");

		if (json_is_object(from))
			from = json_object_get(from, "email");
		if (json_is_string(json_object_get(tx->content, "email_rfc822")))
			return fail(err, 422, "return_path", "is required with content.email_rfc822");
		if (!json_is_string(from))
			return fail(err, 422, "return_path", "is required when content.from has no address");
		rp = json_string_value(from);
		if (has_tags(rp))
			return fail(err, 422, "return_path",
				    "is required when the from address has substitutions");
	}
	if (!envelope_addr_ok(rp))
		return fail(err, 422, r ? "return_path" : "content.from",
			    "is not an envelope address (local@domain, no spaces or <>)");
	tx->sender = rp;
	return 0;
}

/* parse_options - options{sandbox, ip_pool}; the others (tracking, ...) are accepted and ignored. */
static int parse_options(struct transmission *tx, struct tx_err *err)
{
	json_t *o;
	int r;

	if ((r = opt_object(tx->root, "options", "options", &o, err)) <= 0)
		return r;
	json_t *sb = json_object_get(o, "sandbox");
	if (sb && !json_is_boolean(sb) && !json_is_null(sb))
		return fail(err, 422, "options.sandbox", "must be true or false");
	tx->sandbox = sb && json_is_true(sb);
	if ((r = opt_string(o, "ip_pool", "options.ip_pool", &tx->binding, err)) < 0)
		return r;
	if (tx->binding && (*tx->binding == '\0' || strpbrk(tx->binding, "\r\n@ ")))
		return fail(err, 422, "options.ip_pool", "is not a binding name");
	return 0;
}

/* parse_root - the top-level fields of a SparkPost-shaped request. */
static int parse_root(struct transmission *tx, struct tx_err *err)
{
	int r;

	if (!json_is_object(tx->root))
		return fail(err, 422, "", "the request must be a JSON object");
	tx->recipients = json_object_get(tx->root, "recipients");
	if (json_is_object(tx->recipients) && json_object_get(tx->recipients, "list_id"))
		return fail(err, 422, "recipients.list_id", "stored recipient lists are not supported: "
			    "give the recipients in the request");
	if (!json_is_array(tx->recipients))
		return fail(err, 422, "recipients", "is required: an array of recipients");
	if (json_array_size(tx->recipients) == 0)
		return fail(err, 422, "recipients", "must hold at least one recipient");
	if ((r = opt_object(tx->root, "content", "content", &tx->content, err)) < 0)
		return r;
	if (r == 0)
		return fail(err, 422, "content", "is required");
	if (json_object_get(tx->content, "template_id"))
		return fail(err, 422, "content.template_id", "stored templates are not supported: "
			    "give the content in the request");
	if ((r = opt_object(tx->root, "substitution_data", "substitution_data", &tx->global_data,
			    err)) < 0)
		return r;
	if ((r = opt_object(tx->root, "metadata", "metadata", &tx->global_meta, err)) < 0)
		return r;
	if ((r = opt_string(tx->root, "campaign_id", "campaign_id", &tx->campaign, err)) < 0)
		return r;
	if (tx->campaign && strlen(tx->campaign) > CAMPAIGN_MAX)
		return fail(err, 422, "campaign_id", "is longer than %d bytes", CAMPAIGN_MAX);
	if ((r = parse_options(tx, err)) < 0)
		return r;
	if ((r = choose_sender(tx, err)) < 0)
		return r;
	return compile_content(tx, err);
}

int transmission_parse(enum tx_shape shape, const char *body, size_t len,
		       struct transmission **out, struct tx_err *err)
{
	json_error_t je;
	json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	int r;

	memset(err, 0, sizeof(*err));
	if (doc == NULL)
		return fail(err, 400, "", "the body is not JSON: %s at line %d column %d", je.text,
			    je.line, je.column);
	if (shape == TX_KUMO) {
		json_t *tx = NULL;

		if (!json_is_object(doc)) {
			json_decref(doc);
			return fail(err, 422, "", "the request must be a JSON object");
		}
		r = kumo_convert(doc, &tx, err);
		json_decref(doc);
		if (r < 0)
			return r;
		doc = tx;
	}
	struct transmission *tx = XNEW(struct transmission);

	tx->root = doc;
	if ((r = parse_root(tx, err)) < 0) {
		transmission_free(tx);
		return r;
	}
	*out = tx;
	return 0;
}

void transmission_free(struct transmission *tx)
{
	if (tx == NULL)
		return;
	for (size_t i = 0; i < tx->nparts; i++)
		template_free(tx->parts[i].t);
	free(tx->parts);
	json_decref(tx->root);
	free(tx);
}

size_t transmission_count(const struct transmission *tx)
{
	return json_array_size(tx->recipients);
}

const char *transmission_sender(const struct transmission *tx)
{
	return tx->sender;
}

const char *transmission_binding(const struct transmission *tx)
{
	return tx->binding;
}

bool transmission_sandbox(const struct transmission *tx)
{
	return tx->sandbox;
}

/* rcpt_address - recipient r's address: the string, or the object's email; NULL when neither. */
static const char *rcpt_address(const json_t *r)
{
	json_t *a = json_object_get(r, "address");

	if (json_is_object(a))
		a = json_object_get(a, "email");
	return json_is_string(a) ? json_string_value(a) : NULL;
}

const char *transmission_rcpt(const struct transmission *tx, size_t i)
{
	const char *a = rcpt_address(json_array_get(tx->recipients, i));

	return a ? a : "";
}

/* ==================== rendering ==================== */

/* rcpt_fail - a refusal of recipient i: "recipients[i]." before the field. */
static int rcpt_fail(struct tx_err *err, size_t i, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int rcpt_fail(struct tx_err *err, size_t i, const char *field, const char *fmt, ...)
{
	va_list ap;

	err->status = 422;
	snprintf(err->field, sizeof(err->field), "recipients[%zu]%s%s", i, *field ? "." : "", field);
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	utf8_trim(err->field);
	utf8_trim(err->text);
	return -EINVAL;
}

/*
 * recipient_data - the data a recipient's templates see first: its
 * substitution_data plus what SparkPost predefines (address, email,
 * return_path) where the recipient did not set them. A new reference.
 */
static json_t *recipient_data(const struct transmission *tx, json_t *sub, json_t *address,
			      const char *email)
{
	json_t *d = sub ? json_copy(sub) : json_object();

	if (json_object_get(d, "address") == NULL)
		json_object_set(d, "address", address);
	if (json_object_get(d, "email") == NULL)
		json_object_set_new(d, "email", json_string(email));
	if (json_object_get(d, "return_path") == NULL)
		json_object_set_new(d, "return_path", json_string(tx->sender));
	return d;
}

/* render_content - a shallow copy of the content with every template rendered for this recipient. */
static int render_content(const struct transmission *tx, json_t *data, json_t **out,
			  struct tx_err *err)
{
	json_t *c = json_copy(tx->content), *from = NULL, *headers = NULL;
	struct str s = STR_INIT;
	int r = 0;

	for (size_t i = 0; i < tx->nparts && r == 0; i++) {
		const struct tx_part *p = &tx->parts[i];
		struct template_error te;
		json_t *into = c;

		if (p->where == IN_FROM) {
			if (from == NULL) {
				from = json_copy(json_object_get(c, "from"));
				json_object_set_new(c, "from", from);
			}
			into = from;
		} else if (p->where == IN_HEADERS) {
			if (headers == NULL) {
				headers = json_copy(json_object_get(c, "headers"));
				json_object_set_new(c, "headers", headers);
			}
			into = headers;
		}
		str_clear(&s);
		if (template_render(p->t, data, tx->global_data, p->mode, &s, &te) < 0) {
			struct str msg = STR_INIT;

			template_error_format(&te, NULL, &msg);
			r = fail(err, 422, p->where == IN_CONTENT ? "content" : p->where == IN_FROM ?
				 "content.from" : "content.headers", "%s: %s", p->key, str_cstr(&msg));
			str_free(&msg);
			break;
		}
		json_t *v = json_stringn(s.s ? s.s : "", s.len);
		if (v == NULL) {
			r = fail(err, 422, "content", "%s: the substituted text is not UTF-8", p->key);
			break;
		}
		json_object_set_new(into, p->key, v);
	}
	str_free(&s);
	if (r < 0) {
		json_decref(c);
		return r;
	}
	*out = c;
	return 0;
}

/* set_vctx - one context pair, the value owned by m. */
static void set_vctx(struct tx_msg *m, const char *key, char *value)
{
	m->owned[m->nvctx] = value;
	m->vctx[2 * m->nvctx] = key;
	m->vctx[2 * m->nvctx + 1] = value;
	m->nvctx++;
}

/* message_context - transmission id, campaign, merged metadata and tags for recipient i. */
static int message_context(const struct transmission *tx, size_t i, json_t *r, uint64_t id,
			   struct tx_msg *m, struct tx_err *err)
{
	json_t *meta = json_object_get(r, "metadata"), *tags = json_object_get(r, "tags");
	char buf[24];

	if (meta && !json_is_null(meta) && !json_is_object(meta))
		return rcpt_fail(err, i, "metadata", "must be an object");
	if (tags && !json_is_null(tags)) {
		size_t k;
		json_t *t;

		if (!json_is_array(tags))
			return rcpt_fail(err, i, "tags", "must be an array of strings");
		json_array_foreach(tags, k, t)
			if (!json_is_string(t))
				return rcpt_fail(err, i, "tags", "must be an array of strings");
	}
	snprintf(buf, sizeof(buf), "%" PRIu64, id);
	set_vctx(m, TX_VCTX_ID, xstrdup(buf));
	if (tx->campaign)
		set_vctx(m, TX_VCTX_CAMPAIGN, xstrdup(tx->campaign));
	if (json_is_object(meta) || tx->global_meta) {
		json_t *all = tx->global_meta ? json_copy(tx->global_meta) : json_object();

		if (json_is_object(meta))
			json_object_update(all, meta);
		char *text = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);

		json_decref(all);
		if (text == NULL || strlen(text) > IMP_VCTX_VALUE_MAX) {
			free(text);
			return rcpt_fail(err, i, "metadata", "with the transmission's metadata is over "
					 "%d bytes of JSON", IMP_VCTX_VALUE_MAX);
		}
		set_vctx(m, TX_VCTX_METADATA, text);
	}
	if (json_is_array(tags) && json_array_size(tags)) {
		char *text = json_dumps(tags, JSON_COMPACT);

		if (text == NULL || strlen(text) > IMP_VCTX_VALUE_MAX) {
			free(text);
			return rcpt_fail(err, i, "tags", "are over %d bytes of JSON", IMP_VCTX_VALUE_MAX);
		}
		set_vctx(m, TX_VCTX_TAGS, text);
	}
	return 0;
}

int transmission_render(const struct transmission *tx, size_t i, uint64_t id,
			const struct msg_build_opts *o, struct tx_msg *m, struct tx_err *err)
{
	json_t *r = json_array_get(tx->recipients, i);
	json_t *sub, *content, *data;
	struct msg_build_err be;
	int rc;

	memset(m, 0, sizeof(*m));
	memset(err, 0, sizeof(*err));
	if (!json_is_object(r))
		return rcpt_fail(err, i, "", "must be an object {address, substitution_data, ...}");
	json_t *address = json_object_get(r, "address");
	const char *email = rcpt_address(r);
	if (address == NULL)
		return rcpt_fail(err, i, "address", "is required");
	if (email == NULL)
		return rcpt_fail(err, i, json_is_object(address) ? "address.email" : "address",
				 "is required: the recipient's address");
	if (!envelope_addr_ok(email))
		return rcpt_fail(err, i, json_is_object(address) ? "address.email" : "address",
				 "is not an address (local@domain, no spaces or <>)");
	sub = json_object_get(r, "substitution_data");
	if (sub && !json_is_null(sub) && !json_is_object(sub))
		return rcpt_fail(err, i, "substitution_data", "must be an object");
	if ((rc = message_context(tx, i, r, id, m, err)) < 0)
		return rc;

	data = recipient_data(tx, json_is_object(sub) ? sub : NULL, address, email);
	rc = render_content(tx, data, &content, err);
	json_decref(data);
	if (rc < 0)
		return rc;
	rc = msg_build(content, address, o, &m->data, &be);
	json_decref(content);
	if (rc < 0) {
		if (strncmp(be.field, "address", 7) == 0)
			return rcpt_fail(err, i, be.field, "%s", be.text);
		return fail(err, 422, be.field, "%s", be.text);
	}
	m->rcpt = xstrdup(email);
	return 0;
}

void tx_msg_free(struct tx_msg *m)
{
	str_free(&m->data);
	free(m->rcpt);
	for (size_t i = 0; i < m->nvctx; i++)
		free(m->owned[i]);
	memset(m, 0, sizeof(*m));
}
