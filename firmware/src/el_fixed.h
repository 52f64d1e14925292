/* Fixed-point primitives of docs/fixed-point.md (sections 2, 3, 4, 6): the one rounding rule,
 * saturation, 12-bit decays and the counter-based PRNG for stochastic rounding.
 *
 *   round_shift(x, s)      = (x + 2^(s-1)) >> s  for s > 0, x for s = 0   (round half up)
 *   sat_b(v)               = min(max(v, -2^(b-1)), 2^(b-1) - 1)
 *   apply_decay(x, d)      = round_shift(x * d, 12),  d in 0..4096 (d / 4096)
 *   hash32(x)              = lowbias32: x ^= x>>16; x *= 0x7feb352d; x ^= x>>15;
 *                            x *= 0x846ca68b; x ^= x>>16        (all mod 2^32)
 *   draw k of (key, ctr)   = hash32(key ^ hash32(ctr + k))
 *   stochastic_shift(x,s,r)= (x + (r & (2^s - 1))) >> s       (s = 32: (x + r) >> 32)
 *
 * Integer semantics: the reference (numpy) computes in int64 and wraps on overflow; these
 * helpers do the same (additions, multiplications and left shifts go through uint64, which C
 * defines modulo 2^64). Right shifts of negative values must be arithmetic (floor division);
 * C99 leaves that to the implementation, gcc and clang define it so, and el_fixed_selftest()
 * checks it at start-up. No floating point anywhere in this header.
 */
#ifndef EL_FIXED_H
#define EL_FIXED_H

#include <stdint.h>

#define EL_DECAY_BITS 12
#define EL_DECAY_ONE (1 << EL_DECAY_BITS)

/* wrapping int64 arithmetic (numpy int64 semantics) */
static inline int64_t el_add64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t el_sub64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t el_mul64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static inline int64_t el_shl64(int64_t a, int s) { return (int64_t)((uint64_t)a << s); }

/* round_shift(x, s), s in 0..62 */
static inline int64_t el_round_shift(int64_t x, int s)
{
    return s > 0 ? (el_add64(x, (int64_t)1 << (s - 1)) >> s) : x;
}

/* x * 2^s: left shift for s >= 0, else round_shift(x, -s) (per-layer weight scaling) */
static inline int64_t el_shift(int64_t x, int s)
{
    return s >= 0 ? el_shl64(x, s) : el_round_shift(x, -s);
}

static inline int64_t el_sat(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static inline int64_t el_sat_bits(int64_t v, int bits)
{
    int64_t hi = (int64_t)(((uint64_t)1 << (bits - 1)) - 1);
    return el_sat(v, -hi - 1, hi);
}

static inline int64_t el_apply_decay(int64_t x, int64_t d)
{
    return el_round_shift(el_mul64(x, d), EL_DECAY_BITS);
}

/* floor(a / b) as numpy's int64 floor_divide: floor division, 0 when b == 0 */
static inline int64_t el_floordiv64(int64_t a, int64_t b)
{
    if (b == 0) return 0;
    if (b == -1) return el_sub64(0, a);
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
    return q;
}

static inline uint32_t el_hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

typedef struct {
    uint32_t key;
    uint32_t counter;
} el_rng;

static inline el_rng el_rng_init(uint32_t seed)
{
    el_rng r;
    r.key = seed;
    r.counter = 0;
    return r;
}

/* word k (offset from the counter) of the stream, without advancing it */
static inline uint32_t el_rng_word(el_rng r, uint32_t k)
{
    return el_hash32(r.key ^ el_hash32(r.counter + k));
}

static inline void el_rng_advance(el_rng *r, uint32_t n) { r->counter += n; }

/* stochastic_shift(x, s, r) for 0 <= s <= 32 */
static inline int64_t el_stochastic_shift(int64_t x, int s, uint32_t r)
{
    if (s == 0) return x;
    if (s >= 32) return el_add64(x, (int64_t)r) >> 32;
    return el_add64(x, (int64_t)(r & ((1u << s) - 1u))) >> s;
}

/* Returns 0 when the compiler's integer semantics are the ones this code assumes. */
int el_fixed_selftest(void);

#endif
