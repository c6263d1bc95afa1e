/*
 * control.h - the Control_Listener: the console's sockets in the daemon
 *
 * control_new binds every Listen of Control_Listener (Unix sockets with
 * File_Mode applied, or loopback TCP addresses) and serves them on the scheduler loop:
 * requests are parsed there (control_proto.h) and commands run there
 * (api_console_run, with the running configuration's generation), so a
 * command reads scheduler-owned state without a lock and never waits on
 * an I/O loop. Nothing here runs on another thread.
 *
 * A reload applies the new generation's sockets, File_Mode, Timeout and
 * Max_Connections (control_reload; docs/console.md, "Reloading
 * listeners").
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
/*
 * control_reload - follow a new generation (scheduler thread): bind the
 * Listen stanzas added, close the ones removed (their connections go
 * on), apply File_Mode, Timeout and Max_Connections. A socket that
 * cannot be bound is a paniclog error; the rest still applies.
 */
void control_reload(struct control *ctl, const struct conf *conf);
/* control_free - close every connection and socket, unlink the socket files (scheduler thread). */
void control_free(struct control *ctl);

#endif
