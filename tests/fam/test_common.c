/* SPDX-License-Identifier: Apache-2.0 */
/* test_common.c — src/common/'s size parsing and clock, which famd
 * (--pool-size, --conn-buffer, --quota-bytes) and kodiakd (--memory-limit)
 * now share: every form either program took before is taken, with the
 * same value, and every form either refused is refused. No famd needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fam_common.h"

static uint64_t size_of(const char *s)
{
    uint64_t v = 12345;
    assert_int_equal(fam_parse_size(s, &v), 0);
    return v;
}

static void sizes_take_binary_suffixes_in_either_case(void **state)
{
    (void)state;
    assert_true(size_of("4096") == 4096);
    assert_true(size_of("0") == 0);
    assert_true(size_of("4k") == 4096 && size_of("4K") == 4096);
    assert_true(size_of("256M") == 256ull << 20);
    assert_true(size_of("256MiB") == 256ull << 20);
    assert_true(size_of("256MB") == 256ull << 20);
    assert_true(size_of("1g") == 1ull << 30 && size_of("1G") == 1ull << 30);
    assert_true(size_of("2T") == 2ull << 40);
    assert_true(size_of("16B") == 16);
    assert_true(size_of("16777215T") == 16777215ull << 40); /* just fits */
}

static void bad_sizes_are_refused_and_leave_the_value(void **state)
{
    (void)state;
    const char *bad[] = {"", "M", "x", "1X", "1MM", "1 M", "1MiBB",
                         "16777216T", "99999999999999999999", "-"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint64_t v = 7;
        if (fam_parse_size(bad[i], &v) != -1 || v != 7)
            fail_msg("fam_parse_size took '%s' (gave %llu)", bad[i],
                     (unsigned long long)v);
    }
}

static void the_clock_does_not_go_back(void **state)
{
    (void)state;
    uint64_t a = fam_now_us();
    assert_true(a > 0);
    for (int i = 0; i < 1000; i++) {
        uint64_t b = fam_now_us();
        assert_true(b >= a);
        a = b;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes_take_binary_suffixes_in_either_case),
        cmocka_unit_test(bad_sizes_are_refused_and_leave_the_value),
        cmocka_unit_test(the_clock_does_not_go_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
