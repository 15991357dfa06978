/* being written (issue 4) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mysync/strategy.h"

static void registry_valid(void **state)
{
    struct ms_error err = {0};
    (void)state;
    assert_true(ms_strategy_registry_valid(&err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(registry_valid)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
