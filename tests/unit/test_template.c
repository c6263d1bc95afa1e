/*
 * test_template.c - src/message/template.c: the transmissions API's templates
 *
 * Golden cases first: the examples of Momentum's pages (substitution
 * data, the stored template and its preview, the complex flight
 * template, SparkPost's precedence example), each with its data and the
 * exact output. Then a table of the language's rules (escaping, paths,
 * brackets, conditions, loops, values), a table of refused templates
 * with the exact line:col and message, and the render limits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "core/str.h"
#include "message/template.h"

/* parse - a JSON text as an object (NULL for NULL); aborts on a typo here. */
static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *v;

	if (text == NULL)
		return NULL;
	v = json_loads(text, JSON_DECODE_ANY, &je);
	if (v == NULL) {
		fprintf(stderr, "bad test JSON: %s: %s\n", text, je.text);
		abort();
	}
	return v;
}

/* render_case - compile src, render with the data, compare with want. */
static void render_case(int line, const char *src, const char *rcpt, const char *global,
			enum template_escape mode, const char *want)
{
	struct template *t = NULL;
	struct template_error err;
	struct str out = STR_INIT;
	json_t *r = parse(rcpt), *g = parse(global);
	int rc = template_compile(src, strlen(src), &t, &err);

	if (rc != 0) {
		fprintf(stderr, "line %d: compile failed %u:%u: %s\n", line, err.line,
			err.col, err.msg);
		check_failures++;
	} else {
		rc = template_render(t, r, g, mode, &out, &err);
		if (rc != 0 || strcmp(str_cstr(&out), want) != 0) {
			fprintf(stderr, "line %d: rendered (rc %d) \"%s\", expected \"%s\"\n",
				line, rc, str_cstr(&out), want);
			check_failures++;
		}
	}
	template_free(t);
	str_free(&out);
	json_decref(r);
	json_decref(g);
}

#define RENDER(src, rcpt, global, mode, want) \
	render_case(__LINE__, src, rcpt, global, mode, want)

static void error_case(int line, const char *src, unsigned eline, unsigned ecol,
		       const char *emsg);
#define REFUSE_FWD(src, l, c, msg) error_case(__LINE__, src, l, c, msg)

/* ---- Momentum's examples ---------------------------------------------------- */

/* The flight notification of complex_template.md, its "html" on one line. */
static const char complex_html[] =
	"<p>{{if not Airports[departAirport]}}Hi {{ firstName or 'there' }},<br>"
	"You do not appear to be traveling anywhere. This email must be a mistake.<br>"
	"{{else}}{{if Airports[departAirport] and Airports[departAirport].city then}}"
	"Hi {{ firstName or 'there' }},<br>You are planning a trip from {{departAirport}} in "
	"{{Airports[departAirport].city}} to{{arriveAirport}} in {{Airports[arriveAirport].city}}."
	"<br>{{end}}The weather in {{Airports[arriveAirport].city}} is <a href=\\\"http://"
	"www.theweathernetwork.com/weather/{{Airports[arriveAirport].country}}/"
	"{{Airports[arriveAirport].region}}/{{Airports[arriveAirport].weatherc}}\\\"target="
	"\\\"_blank\\\"> {{Airports[arriveAirport].city}}.{{end}}</a></p>";

static const char complex_global[] =
	"{\"senderAddress\":\"sender@example.com\","
	"\"SubjectText\":\"complex template example\","
	"\"Airports\":{"
	"\"YYZ\":{\"code\":\"YYZ\",\"city\":\"Toronto\",\"name\":\"Toronto International Airport\","
	"\"country\":\"canada\",\"region\":\"ontario\",\"weatherc\":\"toronto\"},"
	"\"SFO\":{\"code\":\"SFO\",\"city\":\"San Francisco\",\"name\":\"San Francisco "
	"International Airport\",\"country\":\"united-states\",\"region\":\"california\","
	"\"weatherc\":\"san-francisco\"},"
	"\"BWI\":{\"code\":\"BWI\",\"city\":\"Baltimore\",\"name\":\"Baltimore-Washington "
	"International Airport\",\"country\":\"united-states\",\"region\":\"maryland\","
	"\"weatherc\":\"baltimore\"}}}";

/* The conditional of complex_template.md as the page shows it, on lines. */
static const char complex_text[] =
	"{{if not Airports[departAirport]}}\n"
	"  Hi {{ firstName or 'there' }}, You do not appear to be traveling anywhere. "
	"This email must be a mistake.\n"
	"{{else}}\n"
	"{{if Airports[departAirport] and Airports[departAirport].city then}}\n"
	"  Hi {{ firstName or 'there' }}, You are planning a trip from {{departAirport}} in "
	"{{Airports[departAirport].city}}\n"
	"  to {{arriveAirport}} in {{Airports[arriveAirport].city}}.\n"
	"{{end}}\n"
	"{{end}}\n";

static void test_momentum_examples(void)
{
	/* substitution_data.md: global "sender", each recipient's "firstname" */
	RENDER("Hi {{firstname}},\r\nWelcome to {{sender}}!\r\nThis email was sent using "
	       "substitution data.",
	       "{\"firstname\":\"recipient1 first name\"}", "{\"sender\":\"Momentum\"}",
	       TEMPLATE_TEXT,
	       "Hi recipient1 first name,\r\nWelcome to Momentum!\r\nThis email was sent "
	       "using substitution data.");
	RENDER("Hi {{firstname}},\r\nWelcome to {{sender}}!\r\nThis email was sent using "
	       "substitution data.",
	       "{\"firstname\":\"recipient2 first name\"}", "{\"sender\":\"Momentum\"}",
	       TEMPLATE_TEXT,
	       "Hi recipient2 first name,\r\nWelcome to Momentum!\r\nThis email was sent "
	       "using substitution data.");
	/* stored_template.md: the preview and the updated template */
	RENDER("Hi {{firstName}},\r\nWelcome to {{sender}}!", NULL,
	       "{\"firstName\":\"recipient first name\",\"sender\":\"Momentum\"}", TEMPLATE_TEXT,
	       "Hi recipient first name,\r\nWelcome to Momentum!");
	RENDER("Hi {{firstName}},\r\nWelcome to {{sender}}!\r\nThis is your first stored "
	       "template.", "{\"firstName\":\"Ann\"}", "{\"sender\":\"Momentum\"}", TEMPLATE_TEXT,
	       "Hi Ann,\r\nWelcome to Momentum!\r\nThis is your first stored template.");
	RENDER("Sending Email Using a Stored Template", NULL, NULL, TEMPLATE_HEADER,
	       "Sending Email Using a Stored Template");

	/* complex_template.md: subject, from and the html part */
	const char *yyz_sfo = "{\"firstName\":\"recipient first name\","
		"\"departAirport\":\"YYZ\",\"arriveAirport\":\"SFO\"}";
	RENDER("This is a {{SubjectText}} of a flight notification from {{departAirport}} "
	       "to {{arriveAirport}}", yyz_sfo, complex_global, TEMPLATE_HEADER,
	       "This is a complex template example of a flight notification from YYZ to SFO");
	RENDER("{{senderAddress}}", yyz_sfo, complex_global, TEMPLATE_HEADER,
	       "sender@example.com");
	RENDER(complex_html, yyz_sfo, complex_global, TEMPLATE_HTML,
	       "<p>Hi recipient first name,<br>You are planning a trip from YYZ in Toronto "
	       "toSFO in San Francisco.<br>The weather in San Francisco is <a href=\\\"http://"
	       "www.theweathernetwork.com/weather/united-states/california/san-francisco\\\""
	       "target=\\\"_blank\\\"> San Francisco.</a></p>");
	/* the other branch: no departing airport, no first name */
	RENDER(complex_html, "{\"arriveAirport\":\"SFO\"}", complex_global, TEMPLATE_HTML,
	       "<p>Hi there,<br>You do not appear to be traveling anywhere. This email must "
	       "be a mistake.<br></a></p>");
	/* an airport the data does not know is the same as none */
	RENDER(complex_html, "{\"departAirport\":\"XXX\",\"firstName\":\"Bo\"}",
	       complex_global, TEMPLATE_HTML,
	       "<p>Hi Bo,<br>You do not appear to be traveling anywhere. This email must "
	       "be a mistake.<br></a></p>");
	/* a name needing escapes in the html part */
	RENDER(complex_html, "{\"firstName\":\"<Ann & \\\"Bo\\\">\",\"departAirport\":\"BWI\","
	       "\"arriveAirport\":\"YYZ\"}", complex_global, TEMPLATE_HTML,
	       "<p>Hi &lt;Ann &amp; &quot;Bo&quot;&gt;,<br>You are planning a trip from BWI in "
	       "Baltimore toYYZ in Toronto.<br>The weather in Toronto is <a href=\\\"http://"
	       "www.theweathernetwork.com/weather/canada/ontario/toronto\\\"target=\\\"_blank"
	       "\\\"> Toronto.</a></p>");
	RENDER(complex_text, yyz_sfo, complex_global, TEMPLATE_TEXT,
	       "\n\n  Hi recipient first name, You are planning a trip from YYZ in Toronto\n"
	       "  to SFO in San Francisco.\n\n\n");
	RENDER(complex_text, NULL, complex_global, TEMPLATE_TEXT,
	       "\n  Hi there, You do not appear to be traveling anywhere. This email must be "
	       "a mistake.\n\n");

	/* SparkPost's reference: the recipient's value wins over the transmission's */
	RENDER("Hello, {{city}}!", "{\"city\":\"New York\"}", "{\"city\":\"Seattle\"}",
	       TEMPLATE_HTML, "Hello, New York!");
	RENDER("Hello, {{city}}!", "{\"town\":\"New York\"}", "{\"city\":\"Seattle\"}",
	       TEMPLATE_HTML, "Hello, Seattle!");
}

/* ---- the language's rules ------------------------------------------------- */

static void test_values_and_escaping(void)
{
	const char *d = "{\"s\":\"a<b>&\\\"c'\",\"i\":40,\"r\":1.5,\"w\":3.0,\"t\":true,"
		"\"f\":false,\"n\":null,\"o\":{\"k\":1},\"a\":[1,2],\"e\":\"\","
		"\"nl\":\"x\\r\\ny\\nz\",\"u\":\"\\u00e9t\\u00e9\"}";

	RENDER("{{s}}", d, NULL, TEMPLATE_HTML, "a&lt;b&gt;&amp;&quot;c&#39;");
	RENDER("{{{s}}}", d, NULL, TEMPLATE_HTML, "a<b>&\"c'");
	RENDER("{{ s }}|{{{ s }}}", d, NULL, TEMPLATE_TEXT, "a<b>&\"c'|a<b>&\"c'");
	RENDER("<b>{{i}}</b>", d, NULL, TEMPLATE_HTML, "<b>40</b>");
	RENDER("{{i}} {{r}} {{w}} {{t}} {{f}} [{{n}}] [{{o}}] [{{a}}] [{{e}}] [{{missing}}]",
	       d, NULL, TEMPLATE_TEXT, "40 1.5 3 true false [] [] [] [] []");
	RENDER("{{nl}}", d, NULL, TEMPLATE_TEXT, "x\r\ny\nz");
	RENDER("{{nl}}|{{{nl}}}", d, NULL, TEMPLATE_HEADER, "x  y z|x  y z");
	RENDER("{{u}}", d, NULL, TEMPLATE_HTML, "\xc3\xa9t\xc3\xa9");
	RENDER("{{'lit' }}{{ \"x}}y\" }}{{'it\\'s'}}{{'a\\nb'}}", NULL, NULL, TEMPLATE_TEXT,
	       "litx}}yit'sa\nb");
	RENDER("{{'{{'}}not a tag}}", NULL, NULL, TEMPLATE_TEXT, "{{not a tag}}");
	RENDER("{{ 7 }} {{-2}} {{ 2.50 }} {{1e3}} {{true}} [{{nil}}]", NULL, NULL,
	       TEMPLATE_TEXT, "7 -2 2.5 1000 true []");
	RENDER("a { b } c }} d", NULL, NULL, TEMPLATE_TEXT, "a { b } c }} d");
	RENDER("", NULL, NULL, TEMPLATE_TEXT, "");
	/* not JSON objects: ignored, as if absent */
	RENDER("[{{x}}]", "[1]", "\"str\"", TEMPLATE_TEXT, "[]");
}

static void test_paths(void)
{
	const char *d = "{\"address\":{\"city\":\"Paris\",\"geo\":{\"lat\":48}},"
		"\"items\":[{\"sku\":\"A1\"},{\"sku\":\"B2\"}],\"key\":\"geo\",\"two\":2,"
		"\"map\":{\"x y\":\"spaced\"}}";

	RENDER("{{address.city}} {{address.geo.lat}}", d, NULL, TEMPLATE_TEXT, "Paris 48");
	RENDER("[{{address.zip}}][{{address.city.more}}][{{nothing.at.all}}]", d, NULL,
	       TEMPLATE_TEXT, "[][][]");
	RENDER("{{items[1].sku}} {{items[two].sku}} [{{items[0].sku}}] [{{items[3]}}]", d,
	       NULL, TEMPLATE_TEXT, "A1 B2 [] []");
	RENDER("{{address[key].lat}} {{address['city']}} {{map['x y']}}", d, NULL,
	       TEMPLATE_TEXT, "48 Paris spaced");
	RENDER("[{{items['sku']}}][{{address[1]}}][{{items[1.5]}}]", d, NULL, TEMPLATE_TEXT,
	       "[][][]");
	RENDER("{{ (address).city }}", d, NULL, TEMPLATE_TEXT, "Paris");
	/* the recipient's object hides the whole global one, not field by field */
	RENDER("{{address.city}}/{{address.zip}}", "{\"address\":{\"city\":\"Rome\"}}",
	       "{\"address\":{\"city\":\"Oslo\",\"zip\":\"0150\"}}", TEMPLATE_TEXT, "Rome/");
	/* a name present with null in the recipient's data still hides the global */
	RENDER("[{{x}}]", "{\"x\":null}", "{\"x\":\"g\"}", TEMPLATE_TEXT, "[]");
}

static void test_conditions(void)
{
	const char *d = "{\"age\":40,\"half\":40.0,\"state\":\"MD\",\"is_member\":true,"
		"\"no\":false,\"zero\":0,\"empty\":\"\",\"n\":null,\"lst\":[],\"s10\":\"10\","
		"\"s9\":\"9\",\"o1\":{\"a\":1},\"o2\":{\"a\":1}}";

	RENDER("{{if is_member}}member{{else}}guest{{end}}", d, NULL, TEMPLATE_TEXT, "member");
	RENDER("{{if no}}1{{elseif n}}2{{elseif missing}}3{{else}}4{{end}}", d, NULL,
	       TEMPLATE_TEXT, "4");
	RENDER("{{if age > 50}}old{{elseif age >= 40}}forty{{else}}young{{end}}", d, NULL,
	       TEMPLATE_TEXT, "forty");
	RENDER("{{if age < 40}}a{{end}}{{if age <= 40}}b{{end}}{{if age == 40}}c{{end}}"
	       "{{if age != 40}}d{{end}}{{if age == half}}e{{end}}{{if age ~= 41}}f{{end}}",
	       d, NULL, TEMPLATE_TEXT, "bcef");
	RENDER("{{if state == 'MD'}}md{{end}}{{if state == \"md\"}}lower{{end}}"
	       "{{if s10 < s9}}strings{{end}}{{if age == '40'}}mixed{{end}}"
	       "{{if age < 'z'}}ordered{{end}}", d, NULL, TEMPLATE_TEXT, "mdstrings");
	/* Lua's truth: 0, "" and [] are true; missing, null and false are not */
	RENDER("{{if zero}}0{{end}}{{if empty}}e{{end}}{{if lst}}l{{end}}{{if n}}n{{end}}"
	       "{{if missing}}m{{end}}", d, NULL, TEMPLATE_TEXT, "0el");
	RENDER("{{if not missing}}a{{end}}{{if not not is_member}}b{{end}}"
	       "{{if not (age == 41)}}c{{end}}{{if missing == nil}}d{{end}}"
	       "{{if n == missing}}e{{end}}{{if n != nil}}f{{end}}", d, NULL, TEMPLATE_TEXT,
	       "abcde");
	/* "not" binds tighter than "==": (not age) == false */
	RENDER("{{if not age == false}}lua{{end}}", d, NULL, TEMPLATE_TEXT, "lua");
	RENDER("{{if is_member and age > 30}}a{{end}}{{if no or age > 30}}b{{end}}"
	       "{{if no and missing.x}}c{{end}}{{if is_member or no}}d{{end}}"
	       "{{if no or n or zero}}e{{end}}", d, NULL, TEMPLATE_TEXT, "abde");
	/* "or" binds weaker than "and" */
	RENDER("{{if is_member or no and n}}p{{end}}", d, NULL, TEMPLATE_TEXT, "p");
	/* and/or give an operand, as the default-value idiom needs */
	RENDER("{{missing or 'dflt'}} {{state or 'x'}} {{is_member and state}} "
	       "[{{no and state}}] {{empty or 'e'}}", d, NULL, TEMPLATE_TEXT, "dflt MD MD [false] ");
	RENDER("{{if o1 == o2}}deep{{end}}{{if lst == lst}}same{{end}}", d, NULL,
	       TEMPLATE_TEXT, "deepsame");
	RENDER("{{if age then}}t{{end}}{{if no}}{{elseif age then}}u{{end}}", d, NULL,
	       TEMPLATE_TEXT, "tu");
	RENDER("{{if is_member}}{{if age > 50}}a{{elseif state == 'MD'}}b{{end}}c{{else}}d"
	       "{{end}}", d, NULL, TEMPLATE_TEXT, "bc");
}

static void test_loops(void)
{
	const char *d = "{\"files\":[{\"name\":\"a.txt\",\"sizes\":[1,2]},"
		"{\"name\":\"b.txt\",\"sizes\":[]},{\"name\":\"c<\",\"sizes\":[3]}],"
		"\"words\":[\"x\",\"y\",\"z\"],\"obj\":{\"k\":1},\"empty\":[],"
		"\"cart\":{\"items\":[{\"p\":5},{\"p\":7}]}}";

	RENDER("{{each words}}[{{loop_var}}]{{end}}", d, NULL, TEMPLATE_TEXT, "[x][y][z]");
	RENDER("{{each files}}{{loop_var.name}}:{{each loop_var.sizes}}{{loop_vars.files.name}}"
	       "={{loop_var}};{{end}}|{{end}}", d, NULL, TEMPLATE_HTML,
	       "a.txt:a.txt=1;a.txt=2;|b.txt:|c&lt;:c&lt;=3;|");
	RENDER("{{each cart.items}}{{loop_vars.items.p}}{{if loop_var.p > 6}}!{{end}}{{end}}",
	       d, NULL, TEMPLATE_TEXT, "57!");
	/* loop_vars.<name>: the innermost loop of that name */
	RENDER("{{each words}}{{each words}}{{loop_vars.words}}{{loop_var}} {{end}}{{end}}",
	       d, NULL, TEMPLATE_TEXT, "xx yy zz xx yy zz xx yy zz ");
	RENDER("a{{each obj}}X{{end}}{{each empty}}Y{{end}}{{each missing}}Z{{end}}"
	       "{{each words[1]}}W{{end}}b", d, NULL, TEMPLATE_TEXT, "ab");
	/* the recipient's array replaces the global one */
	RENDER("{{each words}}{{loop_var}}{{end}}", "{\"words\":[\"r\"]}", d, TEMPLATE_TEXT,
	       "r");
	/* two loops one after the other, and a loop inside a condition */
	RENDER("{{each words}}{{loop_var}}{{end}}-{{each words}}{{loop_var}}{{end}}"
	       "{{if words}}{{each words}}{{if loop_var == 'y'}}Y{{end}}{{end}}{{end}}",
	       d, NULL, TEMPLATE_TEXT, "xyz-xyzY");
}

/* The examples of docs/templates.md. */
static void test_doc_examples(void)
{
	const char *src = "Hi {{ firstName or 'there' }},\n{{if orders}}Your orders:\n"
		"{{each orders}}  #{{loop_var.id}}: {{loop_var.total}} EUR"
		"{{if loop_var.total > 100}} (free delivery){{end}}\n{{end}}{{else}}"
		"You have no open orders.\n{{end}}";

	RENDER(src, "{\"firstName\":\"Ann\",\"orders\":[{\"id\":7,\"total\":120},"
	       "{\"id\":9,\"total\":30}]}", NULL, TEMPLATE_TEXT,
	       "Hi Ann,\nYour orders:\n  #7: 120 EUR (free delivery)\n  #9: 30 EUR\n");
	RENDER(src, "{}", NULL, TEMPLATE_TEXT, "Hi there,\nYou have no open orders.\n");
	/* an empty array is true, as in Momentum's (Lua) engine */
	RENDER(src, "{\"orders\":[]}", NULL, TEMPLATE_TEXT, "Hi there,\nYour orders:\n");
	RENDER("{{each files}}\n  {{loop_var.name}}: {{each loop_var.sizes}}"
	       "{{loop_vars.files.name}}/{{loop_var}} {{end}}\n{{end}}",
	       "{\"files\":[{\"name\":\"a\",\"sizes\":[1,2]},{\"name\":\"b\"}]}", NULL,
	       TEMPLATE_TEXT, "\n  a: a/1 a/2 \n\n  b: \n");
	RENDER("{{1e20}} {{order.end}}", "{\"order\":{\"end\":\"E\"}}", NULL, TEMPLATE_TEXT,
	       "1e+20 E");
	REFUSE_FWD("{{ f(x) }}", 1, 5, "unexpected '(' after the value");
}

/* One compile, many renders: the template keeps no state of a render. */
static void test_compile_once(void)
{
	const char *src = "Dear {{name or 'customer'}}{{if vip}} (VIP){{end}}:"
		"{{each orders}} #{{loop_var.id}}{{end}}";
	struct template *t = NULL;
	struct template_error err;
	json_t *g = parse("{\"orders\":[{\"id\":1}]}");
	char name[32], want[96];

	CHECK(template_compile(src, strlen(src), &t, &err) == 0);
	if (t == NULL)
		return;
	CHECK(!template_is_static(t));
	for (int i = 0; i < 1000; i++) {
		struct str out = STR_INIT;
		snprintf(name, sizeof name, "r%d", i);
		json_t *r = i % 3 == 2 ? json_object() :
			json_pack("{s:s, s:b}", "name", name, "vip", i % 2);
		if (i % 3 == 2)
			snprintf(want, sizeof want, "Dear customer: #1");
		else
			snprintf(want, sizeof want, "Dear %s%s: #1", name, i % 2 ? " (VIP)" : "");
		CHECK(template_render(t, r, g, TEMPLATE_TEXT, &out, &err) == 0);
		CHECK_STREQ(str_cstr(&out), want);
		json_decref(r);
		str_free(&out);
	}
	template_free(t);
	json_decref(g);

	/* the source need not be NUL-terminated; a static one renders as itself */
	char buf[8] = { 'a', 'b', 'c', 'X', 'X', 'X', 'X', 'X' };
	struct str out = STR_INIT;
	CHECK(template_compile(buf, 3, &t, &err) == 0);
	CHECK(template_is_static(t));
	CHECK(template_render(t, NULL, NULL, TEMPLATE_HTML, &out, &err) == 0);
	CHECK_STREQ(str_cstr(&out), "abc");
	/* render appends */
	CHECK(template_render(t, NULL, NULL, TEMPLATE_HTML, &out, &err) == 0);
	CHECK_STREQ(str_cstr(&out), "abcabc");
	template_free(t);
	str_free(&out);
	template_free(NULL);
}

/* ---- refused templates ---------------------------------------------------- */

static void error_case(int line, const char *src, unsigned eline, unsigned ecol,
		       const char *emsg)
{
	struct template *t = (struct template *)&t;	/* must stay untouched */
	struct template_error err;
	int rc = template_compile(src, strlen(src), &t, &err);

	if (rc != -EINVAL || t != (struct template *)&t || err.line != eline ||
	    err.col != ecol || strstr(err.msg, emsg) == NULL) {
		fprintf(stderr, "line %d: \"%s\": rc %d at %u:%u \"%s\", expected %u:%u \"%s\"\n",
			line, src, rc, err.line, err.col, err.msg, eline, ecol, emsg);
		check_failures++;
	}
}

#define REFUSE(src, l, c, msg) error_case(__LINE__, src, l, c, msg)

static void test_errors(void)
{
	/* block structure */
	REFUSE("Hi {{if a}}x", 1, 4, "unclosed {{if}}");
	REFUSE("{{if a}}{{each b}}{{end}}\n  {{if c}}{{end}}{{each d}}", 2, 18, "unclosed {{each}}");
	REFUSE("{{if a}}{{if b}}{{end}}", 1, 1, "unclosed {{if}}");
	REFUSE("ab{{end}}", 1, 3, "{{end}} without {{if}} or {{each}}");
	REFUSE("{{if a}}{{end}}\n{{ end }}", 2, 1, "{{end}} without");
	REFUSE("{{else}}", 1, 1, "{{else}} without {{if}}");
	REFUSE("{{elseif a}}", 1, 1, "{{elseif}} without {{if}}");
	REFUSE("{{if a}}{{else}}{{else}}{{end}}", 1, 17, "second {{else}}");
	REFUSE("{{if a}}{{else}}{{elseif b}}{{end}}", 1, 17, "{{elseif}} after {{else}}");
	REFUSE("{{each a}}{{else}}{{end}}", 1, 11, "{{else}} inside {{each}}");
	REFUSE("{{if}}{{end}}", 1, 5, "{{if}} needs a condition");
	REFUSE("{{each }}{{end}}", 1, 8, "{{each}} needs an array");
	REFUSE("{{end x}}", 1, 7, "unexpected 'x' after end");
	/* comparisons */
	REFUSE("{{if a ==}}x{{end}}", 1, 10, "expected a value after '==' instead of '}}'");
	REFUSE("{{if a = b}}x{{end}}", 1, 8, "'=' is not a comparison; use '=='");
	REFUSE("{{if a < b < c}}x{{end}}", 1, 12, "comparisons cannot be chained");
	REFUSE("{{if a <> b}}x{{end}}", 1, 9, "expected a value after '<' instead of '>'");
	REFUSE("{{if a == and b}}x{{end}}", 1, 11, "expected a value after '=='");
	REFUSE("{{if !a}}x{{end}}", 1, 6, "'!' is not an operator");
	REFUSE("{{if a b}}x{{end}}", 1, 8, "unexpected 'b' after the condition");
	REFUSE("{{if a and}}x{{end}}", 1, 11, "expected a value instead of '}}'");
	/* tags and tokens */
	REFUSE("x\n  {{name", 2, 3, "unterminated tag: '{{' without '}}'");
	REFUSE("{{{name", 1, 1, "unterminated tag: '{{{' without '}}}'");
	REFUSE("{{{name}}", 1, 8, "'{{{' closed by '}}'");
	REFUSE("{{{name}} and }}", 1, 8, "'{{{' closed by '}}' instead of '}}}'");
	REFUSE("{{name Hello {{x}}", 1, 8, "unexpected 'Hello' after the value");
	REFUSE("ok {{ a['}}' ", 1, 4, "unterminated tag");	/* the }} is in a string */
	REFUSE("{{}}", 1, 1, "empty tag");
	REFUSE("{{ 'abc }}", 1, 4, "unterminated string");
	REFUSE("{{ a.}}", 1, 6, "expected a name after '.'");
	REFUSE("{{ a[b }}", 1, 8, "expected ']'");
	REFUSE("{{ (a }}", 1, 7, "expected ')'");
	REFUSE("{{ a # }}", 1, 6, "unexpected '#'");
	REFUSE("{{ 12abc }}", 1, 4, "malformed number");
	REFUSE("{{ 1e999 }}", 1, 4, "number out of range");
	REFUSE("{{ 99999999999999999999 }}", 1, 4, "number out of range");
	REFUSE("{{ while }}", 1, 4, "'while' is a reserved word");
	REFUSE("{{ a or end }}", 1, 9, "'end' is a reserved word");
	REFUSE("{{ then }}", 1, 4, "'then' outside {{if}}");
	REFUSE("{{{if a}}}x{{end}}", 1, 4, "'{{{' takes a value");
	REFUSE("{{ \x01 }}", 1, 4, "unexpected byte 0x01");
	/* loops */
	REFUSE("{{loop_var}}", 1, 3, "loop_var outside {{each}}");
	REFUSE("{{each a}}{{end}}{{loop_var}}", 1, 20, "loop_var outside {{each}}");
	REFUSE("{{each a}}{{loop_vars.b}}{{end}}", 1, 23, "loop_vars.b: no enclosing {{each b}}");
	REFUSE("{{each a}}{{loop_vars}}{{end}}", 1, 13, "loop_vars must be followed by");
	/* positions count characters, not bytes */
	REFUSE("\xc3\xa9t\xc3\xa9 {{end}}", 1, 5, "{{end}} without");
	REFUSE("a\r\nb\n\xe2\x82\xac{{if x}}", 3, 2, "unclosed {{if}}");
}

/* The nesting and size limits of the source. */
static void test_source_limits(void)
{
	struct str s = STR_INIT;
	struct template *t = NULL;
	struct template_error err;

	for (int i = 0; i < TEMPLATE_NEST_MAX; i++)
		str_appends(&s, i % 2 ? "{{if a}}" : "{{each b}}");
	for (int i = 0; i < TEMPLATE_NEST_MAX; i++)
		str_appends(&s, "{{end}}");
	CHECK(template_compile(s.s, s.len, &t, &err) == 0);
	template_free(t);
	str_clear(&s);
	for (int i = 0; i <= TEMPLATE_NEST_MAX; i++)
		str_appends(&s, "{{if a}}");
	CHECK(template_compile(s.s, s.len, &t, &err) == -EINVAL);
	CHECK(err.col == 1 + 8 * TEMPLATE_NEST_MAX);
	CHECK(strstr(err.msg, "nested deeper") != NULL);

	str_clear(&s);
	str_appends(&s, "{{");
	for (int i = 0; i < TEMPLATE_EXPR_DEPTH_MAX; i++)
		str_appends(&s, "(");
	str_appends(&s, "a");
	for (int i = 0; i < TEMPLATE_EXPR_DEPTH_MAX; i++)
		str_appends(&s, ")");
	str_appends(&s, "}}");
	CHECK(template_compile(s.s, s.len, &t, &err) == 0);
	template_free(t);
	str_clear(&s);
	str_appends(&s, "{{");
	for (int i = 0; i <= TEMPLATE_EXPR_DEPTH_MAX; i++)
		str_appends(&s, "not ");
	str_appends(&s, "a}}");
	CHECK(template_compile(s.s, s.len, &t, &err) == -EINVAL);
	CHECK(strstr(err.msg, "expression nested deeper") != NULL);

	/* left-deep chains: no nesting, but eval would recurse once per level */
	for (int k = 0; k < 2; k++) {
		str_clear(&s);
		str_appends(&s, "{{a");
		for (int i = 1; i < TEMPLATE_EXPR_HEIGHT_MAX - 1; i++)
			str_appends(&s, k == 0 ? ".a" : " or a");
		str_appends(&s, "}}");
		CHECK(template_compile(s.s, s.len, &t, &err) == 0);
		template_free(t);
		str_truncate(&s, s.len - 2);
		for (int i = 0; i < 4; i++)
			str_appends(&s, k == 0 ? ".a" : " or a");
		str_appends(&s, "}}");
		CHECK(template_compile(s.s, s.len, &t, &err) == -EINVAL);
		CHECK(strstr(err.msg, "expression too complex") != NULL);
	}

	str_clear(&s);
	str_appends(&s, "{{ a ");
	for (int i = 0; i < TEMPLATE_TAG_MAX; i++)
		str_appends(&s, " ");
	str_appends(&s, "}}");
	CHECK(template_compile(s.s, s.len, &t, &err) == -EINVAL);
	CHECK(err.col == 1 && strstr(err.msg, "tag longer") != NULL);

	char *big = calloc(1, TEMPLATE_SRC_MAX + 1);
	CHECK(template_compile(big, TEMPLATE_SRC_MAX + 1, &t, &err) == -EINVAL);
	CHECK(strstr(err.msg, "larger than") != NULL);
	free(big);
	str_free(&s);
}

/* The render limits: each crossed at its tag, the output back as it was. */
static void test_render_limits(void)
{
	struct template *t = NULL;
	struct template_error err;
	struct str out = STR_INIT;
	struct template_limits lim = { .out_max = 20, .steps_max = 1000, .each_max = 5 };
	json_t *d = parse("{\"s\":\"0123456789\",\"amp\":\"&&&&\",\"a\":[1,2,3,4,5],"
			  "\"six\":[1,2,3,4,5,6]}");
	const char *src;

	str_appends(&out, "kept");
	src = "ab\n{{s}}{{s}}";
	CHECK(template_compile(src, strlen(src), &t, &err) == 0);
	CHECK(template_render_limited(t, d, NULL, TEMPLATE_TEXT, &lim, &out, &err) == -E2BIG);
	CHECK_STREQ(str_cstr(&out), "kept");
	CHECK(err.line == 2 && err.col == 6);
	CHECK(strstr(err.msg, "output larger than 20 bytes") != NULL);
	lim.out_max = 23;
	CHECK(template_render_limited(t, d, NULL, TEMPLATE_TEXT, &lim, &out, &err) == 0);
	CHECK_STREQ(str_cstr(&out), "keptab\n01234567890123456789");
	template_free(t);

	/* escaping counts: 4 bytes become 20 */
	str_clear(&out);
	lim.out_max = 19;
	src = "{{amp}}";
	CHECK(template_compile(src, strlen(src), &t, &err) == 0);
	CHECK(template_render_limited(t, d, NULL, TEMPLATE_HTML, &lim, &out, &err) == -E2BIG);
	CHECK(out.len == 0);
	CHECK(template_render_limited(t, d, NULL, TEMPLATE_TEXT, &lim, &out, &err) == 0);
	template_free(t);

	str_clear(&out);
	lim.out_max = 1000;
	src = "{{each a}}x{{end}}{{each six}}y{{end}}";
	CHECK(template_compile(src, strlen(src), &t, &err) == 0);
	CHECK(template_render_limited(t, d, NULL, TEMPLATE_TEXT, &lim, &out, &err) == -E2BIG);
	CHECK(out.len == 0 && err.col == 19);
	CHECK(strstr(err.msg, "more than 5 elements") != NULL);
	template_free(t);

	/* nested loops multiply: 5 x 5 x 5 x ... passes the steps */
	src = "{{each a}}{{each a}}{{each a}}{{each a}}{{loop_var}}{{end}}{{end}}{{end}}{{end}}";
	CHECK(template_compile(src, strlen(src), &t, &err) == 0);
	CHECK(template_render_limited(t, d, NULL, TEMPLATE_TEXT, &lim, &out, &err) == -E2BIG);
	CHECK(out.len == 0 && strstr(err.msg, "more than 1000 steps") != NULL);
	lim.steps_max = 100000;
	CHECK(template_render_limited(t, d, NULL, TEMPLATE_TEXT, &lim, &out, &err) == 0);
	CHECK(out.len == 625);
	template_free(t);

	/* the defaults stop a hostile loop nest long before memory runs out */
	str_clear(&out);
	json_t *many = json_array();
	for (int i = 0; i < 1000; i++)
		json_array_append_new(many, json_integer(i));
	json_t *h = json_pack("{s:o}", "m", many);
	src = "{{each m}}{{each m}}{{each m}}{{loop_var}}{{end}}{{end}}{{end}}";
	CHECK(template_compile(src, strlen(src), &t, &err) == 0);
	CHECK(template_render(t, h, NULL, TEMPLATE_TEXT, &out, &err) == -E2BIG);
	CHECK(out.len == 0);
	template_free(t);
	json_decref(h);

	/* the error text of a 422 */
	str_clear(&out);
	REFUSE("{{if a}}", 1, 1, "unclosed");
	CHECK(template_compile("x\n {{if a ==}}", 14, &t, &err) == -EINVAL);
	template_error_format(&err, "content.html", &out);
	CHECK_STREQ(str_cstr(&out),
		    "content.html:2:11: expected a value after '==' instead of '}}'");
	str_free(&out);
	json_decref(d);
}

int main(void)
{
	test_momentum_examples();
	test_values_and_escaping();
	test_paths();
	test_conditions();
	test_loops();
	test_doc_examples();
	test_compile_once();
	test_errors();
	test_source_limits();
	test_render_limits();
	return check_done();
}
