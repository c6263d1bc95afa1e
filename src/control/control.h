/*
 * control.h - the Control_Listener: the console's sockets in the daemon
 *
 * control_new binds every Listen "path" of Control_Listener (Unix
 * sockets, File_Mode applied) and serves them on the scheduler loop:
 * requests are parsed there (control_proto.h) and commands run there
 * (api_console_run, with the running configuration's generation), so a
 * command reads scheduler-owned state without a lock and never waits on
 * an I/O loop. Nothing here runs on another thread.
 *
 * Listeners are bound at start-up; Timeout and Max_Connections are read
 * then too. A reload does not change them (docs/console.md).
 */
#ifndef IMPETUS_CONTROL_CONTROL_H
#define IMPETUS_CONTROL_CONTROL_H

#include "core/str.h"

struct conf;
struct loop;
struct control;

/*
 * control_new - bind conf's control sockets and serve them on sched
 * (scheduler thread, before its loop runs). A stale socket file (nobody
 * answers on it) is replaced; a live one, or a path that is not a socket,
 * is an error. Returns NULL with err set; a conf without Control_Listener
 * gives a control with no socket.
 */
struct control *control_new(struct loop *sched, const struct conf *conf, struct str *err);
/* control_free - close every connection and socket, unlink the socket files (scheduler thread). */
void control_free(struct control *ctl);

#endif
