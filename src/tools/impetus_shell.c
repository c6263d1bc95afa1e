/*
 * impetus_shell.c - `impetus [-s SOCKET]` with no command: the console shell
 *
 * On a terminal: a prompt with line editing, history and tab completion
 * of command names through Debian's libedit (its readline interface).
 * The names are the daemon's own, read once at start from `help --json`,
 * so a module's commands complete like the built-ins. History is read
 * from and written to $IMPETUS_HISTORY, else ~/.impetus_history (no
 * history file without HOME), capped at HISTORY_MAX lines.
 *
 * When stdin is not a terminal, commands are read line by line without
 * libedit and without a prompt (a script: `printf 'pid\nversion\n' |
 * impetus`); the exit status is then 1 if any command failed.
 *
 * Each command opens a connection of its own (console_call), so an idle
 * shell never runs into the control socket's Timeout, and a daemon that
 * stopped or restarted between two commands is found by the next one:
 * the error says there is no daemon on the socket and the shell goes on.
 * A command's error is printed on stderr and the shell goes on too;
 * `quit`, `exit` or end of input (Ctrl-D) end it.
 *
 * Owner: the tool's only thread; the completion list and the history
 * path are this file's statics for libedit's callbacks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>
#include <jansson.h>

#include "core/mem.h"
#include "core/str.h"
#include "tools/impetus_tool.h"

#define SHELL_PROMPT "impetus> "
#define HISTORY_MAX 1000
#define SHELL_WORDS_MAX 64	/* more words than a request may carry (control_proto.h) */

/* The command names the daemon announced, and the shell's own. */
static char **names;
static size_t nnames;

/* names_add - one completion candidate. */
static void names_add(const char *name)
{
	names = xrealloc(names, (nnames + 1) * sizeof(*names));
	names[nnames++] = xstrdup(name);
}

/*
 * names_load - the daemon's command names from `help --json`; false
 * (after a message) when it does not answer.
 */
static bool names_load(const char *where)
{
	char *argv[] = { "help" };
	struct str body = STR_INIT;
	bool ok = false;

	if (console_call(where, 1, argv, true, &ok, &body) < 0) {
		str_free(&body);
		return false;
	}
	if (ok) {
		json_error_t jerr;
		json_t *root = json_loadb(body.s ? body.s : "", body.len, 0, &jerr);
		json_t *cmds = json_object_get(root, "commands");
		size_t i;
		json_t *c;

		json_array_foreach(cmds, i, c) {
			const char *n = json_string_value(json_object_get(c, "name"));
			if (n)
				names_add(n);
		}
		json_decref(root);
	}
	str_free(&body);
	names_add("quit");
	names_add("exit");
	return true;
}

/* complete_name - libedit's generator: the next command name starting with text. */
static char *complete_name(const char *text, int state)
{
	static size_t next;
	size_t len = strlen(text);

	if (state == 0)
		next = 0;
	while (next < nnames) {
		const char *n = names[next++];
		if (strncmp(n, text, len) == 0)
			return strdup(n);	/* libedit frees it */
	}
	return NULL;
}

/* complete - only the first word is a command name; nothing to offer after it. */
static char **complete(const char *text, int start, int end)
{
	(void)end;
	rl_attempted_completion_over = 1;	/* never file names */
	if (start != 0)
		return NULL;
	return rl_completion_matches(text, complete_name);
}

/* history_path - $IMPETUS_HISTORY, else ~/.impetus_history; NULL for none. */
static char *history_path(void)
{
	const char *env = getenv("IMPETUS_HISTORY");
	const char *home = getenv("HOME");
	struct str p = STR_INIT;

	if (env && *env)
		return xstrdup(env);
	if (home == NULL || *home == '\0')
		return NULL;
	str_appendf(&p, "%s/.impetus_history", home);
	return p.s;
}

/*
 * run_line - one line of input: split into words and sent; the shell's
 * own words handled here. 1 to end the shell, 0 when the command
 * succeeded (or the line was empty), -1 when it failed.
 */
static int run_line(const char *where, char *line)
{
	char *argv[SHELL_WORDS_MAX];
	int argc = 0;
	char *save = NULL;

	for (char *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (argc == SHELL_WORDS_MAX) {
			fprintf(stderr, "impetus: more than %d words on one line\n", SHELL_WORDS_MAX);
			return -1;
		}
		argv[argc++] = w;
	}
	if (argc == 0)
		return 0;
	if ((strcmp(argv[0], "quit") == 0 || strcmp(argv[0], "exit") == 0) && argc == 1)
		return 1;

	struct str body = STR_INIT;
	bool ok = false;
	int rc = console_call(where, argc, argv, false, &ok, &body);

	if (rc == 0 && ok) {
		fwrite(body.s ? body.s : "", 1, body.len, stdout);
		if (body.len && body.s[body.len - 1] != '\n')
			putchar('\n');
		if (strcmp(argv[0], "help") == 0 && argc == 1)
			printf("Shell:\n  %-20s leave the shell (or Ctrl-D)\n", "quit, exit");
	} else if (rc == 0) {
		fprintf(stderr, "impetus: %.*s\n", (int)body.len, body.s ? body.s : "");
	} else if (rc == -1) {
		fprintf(stderr, "impetus: no answer from the daemon at %s; "
			"the shell goes on (quit to leave)\n", where);
	}
	fflush(stdout);
	str_free(&body);
	return rc == 0 && ok ? 0 : -1;
}

/* shell_pipe - commands line by line from a stdin that is not a terminal. */
static int shell_pipe(const char *where)
{
	char *line = NULL;
	size_t cap = 0;
	int status = 0;

	while (getline(&line, &cap, stdin) >= 0) {
		int rc = run_line(where, line);

		if (rc == 1)
			break;
		if (rc < 0)
			status = 1;
	}
	free(line);
	return status;
}

/* shell_tty - the interactive loop. */
static int shell_tty(const char *where)
{
	char *hist = history_path();
	char *line;

	rl_readline_name = "impetus";
	rl_attempted_completion_function = complete;
	stifle_history(HISTORY_MAX);
	if (hist)
		read_history(hist);	/* none yet: fine */
	printf("impetus console on %s; help lists the commands, Tab completes them, "
	       "quit leaves\n", where);
	fflush(stdout);
	while ((line = readline(SHELL_PROMPT)) != NULL) {
		char *copy = xstrdup(line);
		int rc;

		if (line[strspn(line, " \t")] != '\0')
			add_history(line);
		rc = run_line(where, copy);
		free(copy);
		free(line);
		if (rc == 1)
			break;
	}
	if (line == NULL)
		putchar('\n');	/* Ctrl-D left the cursor after the prompt */
	if (hist) {
		if (write_history(hist) != 0)
			fprintf(stderr, "impetus: cannot write history %s: %s\n", hist, strerror(errno));
		else
			history_truncate_file(hist, HISTORY_MAX);
		free(hist);
	}
	return 0;
}

int impetus_shell(const char *where)
{
	int rc;

	if (!isatty(STDIN_FILENO))
		return shell_pipe(where);
	if (!names_load(where))
		return 1;
	rc = shell_tty(where);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	return rc;
}
