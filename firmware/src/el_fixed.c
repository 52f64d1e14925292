/* Start-up check of the integer semantics el_fixed.h relies on. */
#include "el_fixed.h"

int el_fixed_selftest(void)
{
    volatile int64_t m5 = -5, m1 = -1;
    volatile int32_t m5_32 = -5;
    int bad = 0;
    bad |= (m5 >> 1) != -3;                 /* arithmetic shift (floor), 64 bit */
    bad |= (m5_32 >> 1) != -3;              /* and 32 bit */
    bad |= el_round_shift(m5, 1) != -2;     /* -2.5 -> -2 (half up) */
    bad |= el_round_shift(-3, 1) != -1;     /* -1.5 -> -1 */
    bad |= el_round_shift(5, 1) != 3;       /* 2.5 -> 3 */
    bad |= el_add64(INT64_MAX, 1) != INT64_MIN;
    bad |= el_floordiv64(-7, 2) != -4 || el_floordiv64(7, -2) != -4 || el_floordiv64(7, 0) != 0;
    bad |= (int8_t)(uint8_t)0xff != -1;
    bad |= m1 != -1;
    return bad;
}
