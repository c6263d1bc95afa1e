/*
 * test_msgs.c - the typed cross-thread messages: the kind table and the owner check
 *
 * The table test walks every kind in src/msgs/msgs.def and checks it is
 * complete (name, senders, owner roles, handler) and that names are unique.
 * The owner test posts a kind to a loop of the wrong role in a forked child:
 * in debug and sanitizer builds the child must abort with a line naming the
 * kind; in Release builds the check is compiled out and the test says so.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/loop.h"
#include "msgs/msgs.h"

/* test_table_complete - every kind has a name, senders, a known owner role and a handler. */
static void test_table_complete(void)
{
	CHECK(MSGS_COUNT > 0);
	for (int k = 0; k < MSGS_COUNT; k++) {
		const struct loop_kind *kd = &msgs_kinds[k];

		CHECK(kd->name != NULL && kd->name[0] != '\0');
		CHECK(kd->from != NULL && kd->from[0] != '\0');
		CHECK(kd->owners != 0);
		CHECK((kd->owners & ~(unsigned)MSGS_ROLES_ALL) == 0);
		CHECK(kd->handler != NULL);
		if (kd->name == NULL)
			continue;
		for (int j = 0; j < k; j++)
			if (msgs_kinds[j].name && strcmp(msgs_kinds[j].name, kd->name) == 0) {
				fprintf(stderr, "duplicate message name %s\n", kd->name);
				CHECK(0);
			}
	}
}

/*
 * post_in_child - fork; the child posts kind to a fresh loop of role and
 * exits 0 if the post returned. Returns the wait status; the child's stderr
 * goes to errbuf.
 */
static int post_in_child(unsigned role, enum msgs_kind kind, char *errbuf, size_t errlen)
{
	int fds[2], status = 0;
	pid_t pid;
	ssize_t n;
	size_t got = 0;

	if (pipe(fds) != 0)
		exit(2);
	pid = fork();
	if (pid < 0)
		exit(2);
	if (pid == 0) {
		struct loop *lp;
		struct sigaction sa;

		/* A clean SIGABRT status, not a core file per test run. */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(SIGABRT, &sa, NULL);
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		lp = loop_new("victim", role);
		msgs_post(lp, kind, NULL);
		/* Never run: the handler would get NULL. loop_free drops the post. */
		loop_free(lp);
		_exit(0);
	}
	close(fds[1]);
	while (got + 1 < errlen && (n = read(fds[0], errbuf + got, errlen - 1 - got)) > 0)
		got += (size_t)n;
	errbuf[got] = '\0';
	close(fds[0]);
	waitpid(pid, &status, 0);
	return status;
}

/* test_wrong_owner_aborts - a scheduler message posted to an I/O loop trips the check. */
static void test_wrong_owner_aborts(void)
{
	char err[1024];
	int st;

	/* The right owner: the post goes through in every build. */
	st = post_in_child(MSGS_SCHEDULER, MSGS_SMTP_DELIVER, err, sizeof(err));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	st = post_in_child(MSGS_IO, MSGS_SMTP_DELIVER, err, sizeof(err));
	if (!loop_owner_checks()) {
		printf("owner check compiled out in this build (NDEBUG without IMPETUS_SANITIZE)\n");
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		return;
	}
	printf("wrong owner, child said: %s", err);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	CHECK(strstr(err, "smtp.deliver") != NULL);
	CHECK(strstr(err, "victim") != NULL);

	/* And the other direction: a spool-thread message to the scheduler. */
	st = post_in_child(MSGS_SCHEDULER, MSGS_SPOOL_ENQUEUE, err, sizeof(err));
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	CHECK(strstr(err, "spool.enqueue") != NULL);
}

int main(void)
{
	test_table_complete();
	test_wrong_owner_aborts();
	return check_done();
}
