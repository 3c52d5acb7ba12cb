/* SPDX-License-Identifier: Apache-2.0 */
/* test_lru.c — kodiakd's intrusive LRU list (src/kodiakd/kd_lru.h), which
 * the column cache (kd_dscache.c) and the kept partial results
 * (kd_cmd_dsagg.c) share: random pushes, touches and removes agree with a
 * plain array kept in use order, and after every step the list is whole
 * both ways (newer/older links mirror each other, the ends are right). */
#include "kd_lru.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#define NITEMS 64

/* A cached item: a payload, the links somewhere in the middle (not first,
 * so KD_LRU_ENTRY's offset is exercised). */
typedef struct {
    int id;          /* its index in items[] */
    kd_lru_node lru; /* its place in the list */
    int in;          /* 1 while in the list */
} item;

/* The list from oldest to newest must be model[0..n), and the newest to
 * oldest walk its reverse. */
static void check(const kd_lru *l, item *items, const int *model, int n)
{
    const kd_lru_node *x = l->oldest;
    for (int i = 0; i < n; i++) {
        assert_non_null(x);
        assert_int_equal(KD_LRU_ENTRY(x, item, lru)->id, model[i]);
        assert_ptr_equal(x, &items[model[i]].lru);
        x = x->newer;
    }
    assert_null(x);
    x = l->newest;
    for (int i = n - 1; i >= 0; i--) {
        assert_non_null(x);
        assert_int_equal(KD_LRU_ENTRY(x, item, lru)->id, model[i]);
        x = x->older;
    }
    assert_null(x);
    if (n == 0) {
        assert_null(l->oldest);
        assert_null(l->newest);
    }
}

static int find(const int *model, int n, int id)
{
    for (int i = 0; i < n; i++)
        if (model[i] == id)
            return i;
    return -1;
}

static void test_random_operations_agree_with_a_model(void **state)
{
    (void)state;
    static item items[NITEMS];
    int model[NITEMS], n = 0; /* ids, least recently used first */
    kd_lru l = {NULL, NULL};
    for (int i = 0; i < NITEMS; i++)
        items[i] = (item){.id = i};
    assert_null(KD_LRU_ENTRY(l.oldest, item, lru));
    srand(14);
    for (int step = 0; step < 200000; step++) {
        int id = rand() % NITEMS, at = find(model, n, id), op = rand() % 3;
        if (!items[id].in) { /* push */
            kd_lru_push(&l, &items[id].lru);
            items[id].in = 1;
            model[n++] = id;
        } else if (op == 0) { /* remove */
            kd_lru_remove(&l, &items[id].lru);
            items[id].in = 0;
            assert_null(items[id].lru.newer);
            assert_null(items[id].lru.older);
            for (int i = at; i < n - 1; i++)
                model[i] = model[i + 1];
            n--;
        } else if (op == 1) { /* touch: to the newest end */
            kd_lru_touch(&l, &items[id].lru);
            for (int i = at; i < n - 1; i++)
                model[i] = model[i + 1];
            model[n - 1] = id;
        } else { /* evict the oldest, as the caches do */
            item *o = KD_LRU_ENTRY(l.oldest, item, lru);
            assert_non_null(o);
            assert_int_equal(o->id, model[0]);
            kd_lru_remove(&l, &o->lru);
            o->in = 0;
            for (int i = 0; i < n - 1; i++)
                model[i] = model[i + 1];
            n--;
        }
        check(&l, items, model, n);
    }
}

static void test_touching_the_newest_or_the_only_item_changes_nothing(void **state)
{
    (void)state;
    item a = {.id = 0}, b = {.id = 1};
    kd_lru l = {NULL, NULL};
    kd_lru_push(&l, &a.lru);
    kd_lru_touch(&l, &a.lru);
    assert_ptr_equal(l.oldest, &a.lru);
    assert_ptr_equal(l.newest, &a.lru);
    kd_lru_push(&l, &b.lru);
    kd_lru_touch(&l, &b.lru);
    assert_ptr_equal(l.oldest, &a.lru);
    assert_ptr_equal(l.newest, &b.lru);
    kd_lru_touch(&l, &a.lru);
    assert_ptr_equal(l.oldest, &b.lru);
    assert_ptr_equal(l.newest, &a.lru);
    kd_lru_remove(&l, &a.lru);
    kd_lru_remove(&l, &b.lru);
    assert_null(l.oldest);
    assert_null(l.newest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_operations_agree_with_a_model),
        cmocka_unit_test(test_touching_the_newest_or_the_only_item_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
