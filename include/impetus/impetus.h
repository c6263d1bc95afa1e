/*
 * impetus/impetus.h - the whole module API in one include
 *
 * Build a module with
 *     cc -shared -fPIC $(pkg-config --cflags impetus) -o mymod.so mymod.c
 * and see docs/api.md ("Your first module").
 */
#ifndef IMPETUS_IMPETUS_H
#define IMPETUS_IMPETUS_H

#include <impetus/module.h>
#include <impetus/hooks.h>
#include <impetus/session.h>
#include <impetus/message.h>
#include <impetus/event.h>
#include <impetus/inject.h>
#include <impetus/queue.h>
#include <impetus/macro.h>
#include <impetus/util.h>
#include <impetus/log.h>
#include <impetus/console.h>

#endif
