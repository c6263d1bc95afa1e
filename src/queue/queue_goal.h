/*
 * queue_goal.h - running the connection_goal hook (private to src/queue/)
 */
#ifndef IMPETUS_QUEUE_QUEUE_GOAL_H
#define IMPETUS_QUEUE_QUEUE_GOAL_H

#include <stdint.h>
#include <stdlib.h>

#include <impetus/hooks.h>

struct api_hook;
struct api_gen;

/*
 * queue_goal - the goal of one queue: the subscribers of h in order
 * (h NULL: the built-in goal alone), capped at in->max_connections.
 */
uint32_t queue_goal(const struct api_hook *h, const struct imp_goal_input *in);

/* queue_binding_builtins_register - the round-robin binding choice (queue_binding.c). */
int queue_binding_builtins_register(struct api_gen *g);

#endif
