/* SPDX-License-Identifier: Apache-2.0 */
/* kd_lru.h — an intrusive least-recently-used list, for kodiakd's caches
 * (the column cache of kd_dscache.c, the kept partial results of
 * kd_cmd_dsagg.c).
 *
 * A cached item embeds a kd_lru_node; the list links the nodes from the
 * most recently used (newest) to the least (oldest), so eviction takes
 * the oldest and a use moves an item to the newest end, each in O(1)
 * with no allocation. KD_LRU_ENTRY turns a node back into its item. The
 * list only links: the caller owns the items, and takes an item out of
 * the list (kd_lru_remove) before it frees it. Not thread safe (kodiakd's
 * commands run one at a time on a rank). */
#ifndef KD_LRU_H
#define KD_LRU_H

#include <stddef.h>

/* The links of one item. */
typedef struct kd_lru_node {
    struct kd_lru_node *newer; /* the next more recently used, NULL at the newest */
    struct kd_lru_node *older; /* the next less recently used, NULL at the oldest */
} kd_lru_node;

/* A list; all NULL is the empty list. */
typedef struct {
    kd_lru_node *newest; /* the most recently used, NULL when empty */
    kd_lru_node *oldest; /* the least recently used (evicted first), NULL when empty */
} kd_lru;

/* The item of type `type` whose kd_lru_node member `member` is `node`, or
 * NULL for a NULL node (node is evaluated twice: pass a plain expression). */
#define KD_LRU_ENTRY(node, type, member) \
    ((node) ? (type *)(void *)((char *)(node) - offsetof(type, member)) : (type *)NULL)

/* Add n (not in any list) as the most recently used. */
static inline void kd_lru_push(kd_lru *l, kd_lru_node *n)
{
    n->newer = NULL;
    n->older = l->newest;
    if (l->newest)
        l->newest->newer = n;
    else
        l->oldest = n;
    l->newest = n;
}

/* Take n (in l) out of the list; its links are left NULL. */
static inline void kd_lru_remove(kd_lru *l, kd_lru_node *n)
{
    if (n->newer)
        n->newer->older = n->older;
    else
        l->newest = n->older;
    if (n->older)
        n->older->newer = n->newer;
    else
        l->oldest = n->newer;
    n->newer = n->older = NULL;
}

/* n (in l) was just used: make it the most recently used. */
static inline void kd_lru_touch(kd_lru *l, kd_lru_node *n)
{
    if (!n->newer)
        return; /* already the newest */
    kd_lru_remove(l, n);
    kd_lru_push(l, n);
}

#endif
