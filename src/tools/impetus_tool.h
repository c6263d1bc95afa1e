/*
 * impetus_tool.h - what the parts of the `impetus` tool share
 *
 * impetus.c is the command line (offline commands, one console command);
 * impetus_shell.c is the interactive shell over the same requests.
 * Single-threaded: the tool has no other threads.
 */
#ifndef IMPETUS_TOOLS_IMPETUS_TOOL_H
#define IMPETUS_TOOLS_IMPETUS_TOOL_H

#include <stdbool.h>

#include "core/str.h"

/*
 * console_call - send argv as one request to the control socket at
 * where (a Unix socket path, or a TCP "ip:port" / "[ipv6]:port") on a
 * connection of its own, and read the reply: 0 with *ok (OK or ERR) and
 * the reply's body appended to body; -1 when there was no reply (no
 * daemon, a connection closed or cut short), -2 when the request cannot
 * be sent (a word with a blank, too long); both after a message on
 * stderr.
 */
int console_call(const char *where, int argc, char **argv, bool json, bool *ok, struct str *body);

/*
 * impetus_shell - the interactive shell on a terminal (libedit: line
 * editing, history, completion of command names), or commands read line
 * by line from stdin when it is not one. The exit status of the tool.
 */
int impetus_shell(const char *where);

#endif
