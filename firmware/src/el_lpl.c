/* Fixed-point LPL rate step (equations and PRNG order in el_lpl.h). */
#include "el_lpl.h"

#include <string.h>

#include "el_lif.h"      /* EL_SWAR */

#define INV_FRAC 20
#define GAIN_FRAC 12
#define P_LIMIT_BITS 41

uint32_t el_lpl_path_count[3];
uint32_t el_lpl_window_rows[3];

static int has(el_code c) { return c.k != 0; }

#define WINDOW_CHECKS 4u  /* spare values after the window search's n_in (scratch layout) */
/* EL_LPL_BLOCKED: the window search marks the values' buckets in a bitmap and computes the
 * rows' windows in blocks, and rate filters run in int32 where that is exact (loops that
 * vectorise: hosts); else the window search sorts indices and visits row by row (fewer
 * instructions on a core without vector units: Cortex-M). Both give the same integers. */
#ifndef EL_LPL_BLOCKED
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_6M__)
#define EL_LPL_BLOCKED 0
#else
#define EL_LPL_BLOCKED 1
#endif
#endif
#if EL_LPL_BLOCKED
#define WORD_BLOCK 256u   /* PRNG words drawn into a buffer at a time (stack: 4 B a word) */
#else
#define WORD_BLOCK 64u
#endif
#define ROW_BLOCK 256u    /* rows per block of the blocked window search (stack: 20 B a row) */
#define MARK_BLOCK 256u   /* inputs per block of its bitmap marking (stack: 4 B an input) */

/* out[i] = word first + i of the stream (a plain loop a compiler can vectorise) */
static void words(el_rng r, uint32_t first, uint32_t n, uint32_t *out)
{
    for (uint32_t i = 0; i < n; i++) out[i] = el_hash32(r.key ^ el_hash32(r.counter + first + i));
}

/* lpl_rate._scale: v times k 2^-s with the one rounding rule (codes have 0 <= s <= 63); a
 * zero coefficient gives 0 */
static int64_t scale(int64_t v, el_code c)
{
    if (!c.k) return 0;
    int64_t prod = el_mul64(v, c.k);
    return c.s >= 0 ? el_round_shift(prod, c.s) : el_shl64(prod, -c.s);
}

/* qmath.ema_apply with the code's constants prepared once: x + sshift(fit_shift((target - x)
 * k, s), r), where fit_shift round_shifts by s - 32 first when s > 32 (codes: 11 <= s <= 48) */
typedef struct {
    int64_t k, pre_half;
    int pre, s;
    uint32_t mask;
} ema_code;

static ema_code ema_prepare(el_code c)
{
    ema_code e;
    e.k = c.k;
    e.pre = c.s > 32 ? c.s - 32 : 0;
    e.pre_half = e.pre ? (int64_t)1 << (e.pre - 1) : 0;
    e.s = c.s > 32 ? 32 : c.s;
    e.mask = e.s >= 32 ? 0xFFFFFFFFu : (e.s > 0 ? ((uint32_t)1 << e.s) - 1u : 0u);
    return e;
}

/* branch-free in the code's constants (the same operations for every element: loops over
 * it vectorise); shifts of 0 and masks of 0 leave values as they are */
static inline int64_t ema(int64_t x, int64_t target, ema_code c, uint32_t r)
{
    int64_t num = el_mul64(el_sub64(target, x), c.k);
    num = el_add64(num, c.pre_half) >> c.pre;
    return el_add64(x, el_add64(num, (int64_t)(r & c.mask)) >> c.s);
}

/* floor(2^k / v) for v >= 1 and k <= 62, exact */
#if defined(__x86_64__) || defined(__aarch64__) || defined(EL_LPL_FLOAT_DIVIDE)
/* a binary64 quotient (num and v exact; correctly rounded, so within 1/8 of num / v when
 * the quotient is below 2^50) truncated and corrected once in either direction. Branch-free:
 * a loop of these vectorises. ok = 0 outside that range (the caller divides) */
static inline int64_t inv_fast(int64_t num, int64_t v, int *ok)
{
    int64_t good = (int64_t)(v > 0) & (int64_t)((num >> 50) < v);
    int64_t vv = (v & -good) + !good;                    /* good ? v : 1, without a branch */
    int64_t q = (int64_t)((double)num / (double)vv);
    int64_t r = num - q * vv;
    *ok = (int)good;
    return q + (r >= vv) - (r < 0);
}
#else
/* floor((u1 2^32 + u0) / v) for u1 < v: two 16-bit quotient digits with 32-bit divisions
 * (Hacker's Delight, divlu), so a core without a 64-bit divide needs none */
static uint32_t divlu(uint32_t u1, uint32_t u0, uint32_t v)
{
    const uint32_t b = 65536;
    int s = 0;
    while (!(v & 0x80000000u)) {                   /* normalise (CLZ where the core has it) */
#if defined(__GNUC__)
        s = __builtin_clz(v);
        v <<= s;
        break;
#else
        v <<= 1;
        s++;
#endif
    }
    uint32_t vn1 = v >> 16, vn0 = v & 0xFFFFu;
    uint32_t un32 = (u1 << s) | (s ? u0 >> (32 - s) : 0), un10 = u0 << s;
    uint32_t un1 = un10 >> 16, un0 = un10 & 0xFFFFu;
    uint32_t q1 = un32 / vn1, rhat = un32 - q1 * vn1;
    while (q1 >= b || q1 * vn0 > b * rhat + un1) {
        q1--;
        rhat += vn1;
        if (rhat >= b) break;
    }
    uint32_t un21 = un32 * b + un1 - q1 * v;
    uint32_t q0 = un21 / vn1;
    rhat = un21 - q0 * vn1;
    while (q0 >= b || q0 * vn0 > b * rhat + un0) {
        q0--;
        rhat += vn1;
        if (rhat >= b) break;
    }
    return q1 * b + q0;
}

static inline int64_t inv_fast(int64_t num, int64_t v, int *ok)
{
    *ok = v >= 1 && v <= 0xFFFFFFFFLL && num > 0 && !(num & (num - 1));
    if (!*ok) return 0;
    uint32_t vv = (uint32_t)v;
    if (num <= 0xFFFFFFFFLL) return (uint32_t)num / vv;
    uint32_t hi = (uint32_t)((uint64_t)num >> 32);      /* num = hi 2^32 (a power of two) */
    uint32_t q1 = hi / vv, rem = hi - q1 * vv;
    return (int64_t)(((uint64_t)q1 << 32) | divlu(rem, 0, vv));
}
#endif

int64_t el_lpl_inv(int64_t num, int64_t v)
{
    int ok;
    int64_t q = inv_fast(num, v, &ok);
    return ok ? q : el_floordiv64(num, v);
}

static int64_t sat_count(int64_t v, int bits, uint32_t *n)
{
    int64_t s = el_sat_bits(v, bits);
    *n += s != v;
    return s;
}

uint32_t el_lpl_state_bytes(const el_lpl_params *p, uint32_t n_in, uint32_t n_out)
{
    uint32_t b = 2 * n_out + 4 * n_out + 4 * n_out + 4;
    if (has(p->pre)) b += 4 * n_in;
    if (has(p->post)) b += 4 * n_out;
    if (p->decorr) b += 4 * n_out * n_out;
    if (p->stores_target) b += 4 * n_out;
    if (p->epoch_log2) b += 4 * (n_in + n_out + 1);
    return b;
}

static uint32_t buckets_for(uint32_t n_in)
{
    uint32_t nb = 1;
    while (nb < n_in) nb <<= 1;
    return nb;
}

/* bytes of the window search's part of the scratch (el_lpl_scratch_bytes) */
static uint32_t window_bytes(uint32_t n_in)
{
    return 4 * (n_in + WINDOW_CHECKS) + 2 * n_in + 2 * (2 * buckets_for(n_in) + 1);
}

/* scratch: p (int64 [n_out]); d (int64 [n_out], only with decorrelation: the covariance update
 * needs every d_k after the means moved; otherwise d_i is recomputed where it is used);
 * x (int32 [n_in]); z (int32 [n_out]); the window search's area, window_bytes: sized for
 * B_j by j (uint32 [n_in + 4]), j in bucket order (uint16 [n_in]), bucket starts and cursors
 * (uint16 [2 buckets + 1]), as the Cortex-M form uses it; the blocked form keeps B_j by j
 * (uint32 [n_in]) and a bitmap in the rest */
static uint32_t d_words(const el_lpl_params *p, uint32_t n_out) { return p->decorr ? n_out : 0; }

/* bytes el_lpl_step uses (even) */
static uint32_t step_bytes(const el_lpl_params *p, uint32_t n_in, uint32_t n_out)
{
    return 8 * (n_out + d_words(p, n_out)) + 4 * n_in + 4 * n_out + window_bytes(n_in);
}

/* with a learning epoch the epoch means (int32 n_in + n_out, Q.A) follow el_lpl_step's bytes
 * at the next multiple of 4 (which the rounding to 8 of the sum always leaves room for) */
uint32_t el_lpl_scratch_bytes(const el_lpl_params *p, uint32_t n_in, uint32_t n_out)
{
    uint32_t b = step_bytes(p, n_in, n_out) + (p->epoch_log2 ? 4 * (n_in + n_out) : 0);
    return (b + 7u) & ~7u;
}

void el_lpl_state_bind(el_lpl_state *st, const el_lpl_params *p, uint32_t n_in, uint32_t n_out,
                       void *mem)
{
    uint8_t *m = (uint8_t *)mem;
    memset(st, 0, sizeof *st);
    /* int32 arrays first so each stays 4-byte aligned; z_prev (int16) last */
    st->mean = (int32_t *)m; m += 4 * n_out;
    st->var = (int32_t *)m; m += 4 * n_out;
    st->count = (int32_t *)m; m += 4;
    if (has(p->pre)) { st->pre_trace = (int32_t *)m; m += 4 * n_in; }
    if (has(p->post)) { st->post_trace = (int32_t *)m; m += 4 * n_out; }
    if (p->decorr) { st->cov = (int32_t *)m; m += 4 * n_out * n_out; }
    if (p->stores_target) { st->target = (int32_t *)m; m += 4 * n_out; }
    if (p->epoch_log2) {
        st->epoch_pre = (int32_t *)m; m += 4 * n_in;
        st->epoch_post = (int32_t *)m; m += 4 * n_out;
        st->epoch_steps = (int32_t *)m; m += 4;
    }
    st->z_prev = (int16_t *)m;
}

void el_lpl_state_init(el_lpl_state *st, const el_lpl_params *p, uint32_t n_in, uint32_t n_out,
                       int32_t var_init_q)
{
    memset(st->z_prev, 0, 2 * n_out);
    memset(st->mean, 0, 4 * n_out);
    st->count[0] = 0;
    for (uint32_t i = 0; i < n_out; i++) st->var[i] = var_init_q;
    if (st->pre_trace) memset(st->pre_trace, 0, 4 * n_in);
    if (st->post_trace) memset(st->post_trace, 0, 4 * n_out);
    if (st->cov) {
        memset(st->cov, 0, 4 * (size_t)n_out * n_out);
        for (uint32_t i = 0; i < n_out; i++) st->cov[(size_t)i * n_out + i] = var_init_q;
    }
    if (st->target) memset(st->target, 0, 4 * n_out);
    if (st->epoch_pre) memset(st->epoch_pre, 0, 4 * n_in);
    if (st->epoch_post) memset(st->epoch_post, 0, 4 * n_out);
    if (st->epoch_steps) st->epoch_steps[0] = 0;
    (void)p;
}

/* bounded add of one nonzero dw to w (qmath._bounded_add) */
static void bounded_add(int8_t *w, int64_t dw, int32_t lo, int32_t hi, el_lpl_stats *stats)
{
    int64_t old = *w, raw = el_add64(old, dw);
    int64_t l = lo < old ? lo : old, h = hi > old ? hi : old;
    int64_t nw = raw < l ? l : (raw > h ? h : raw);
    stats->n_changed += nw != old;
    stats->n_clipped += nw != raw;
    *w = (int8_t)nw;
}

/* reference: every synapse, its own word ("full") or a_i + b_j ("dither") */
static void update_reference(int8_t *wT, uint32_t n_in, uint32_t n_out, const int32_t *x,
                             const int64_t *pv, const el_lpl_params *p, el_rng r0, int S,
                             el_lpl_stats *stats)
{
    for (uint32_t i = 0; i < n_out; i++) {
        for (uint32_t j = 0; j < n_in; j++) {
            uint32_t r = p->rounding == EL_ROUND_FULL
                             ? el_rng_word(r0, i * n_in + j)
                             : el_rng_word(r0, i) + el_rng_word(r0, n_out + j);
            int64_t dw = el_stochastic_shift(el_mul64(pv[i], x[j]), S, r);
            if (dw) bounded_add(&wT[(size_t)j * n_out + i], dw, p->w_lo, p->w_hi, stats);
        }
    }
}

/* optimised: a zero p_i or x_j never changes a weight (r & (2^S - 1) < 2^S), so only nonzero
 * rows and columns draw words (at their own offsets: the counter-based stream allows it) */
static void update_sparse(int8_t *wT, uint32_t n_in, uint32_t n_out, const int32_t *x,
                          const int64_t *pv, const el_lpl_params *p, el_rng r0, int S,
                          el_lpl_stats *stats)
{
    int full = p->rounding == EL_ROUND_FULL;
    for (uint32_t j = 0; j < n_in; j++) {
        int64_t xj = x[j];
        if (!xj) continue;
        int8_t *col = wT + (size_t)j * n_out;
        uint32_t bj = full ? 0 : el_rng_word(r0, n_out + j);
        for (uint32_t i = 0; i < n_out; i++) {
            if (!pv[i]) continue;
            uint32_t r = full ? el_rng_word(r0, i * n_in + j) : el_rng_word(r0, i) + bj;
            int64_t dw = el_stochastic_shift(el_mul64(pv[i], xj), S, r);
            if (dw) bounded_add(&col[i], dw, p->w_lo, p->w_hi, stats);
        }
    }
}

/* Dither window search. If every |p_i x_j| <= N_i <= 2^(S-1), then
 * dw_ij = floor((p_i x_j + u_ij) / 2^S), u_ij = (a_i + b_j) mod 2^S, is nonzero only when
 * (u_ij + N_i) mod 2^S < 2 N_i, i.e. when B_j = b_j mod 2^S lies in the window
 * [L_i, L_i + 2 N_i) mod 2^S with L_i = -(a_i + N_i) mod 2^S. Only those synapses are
 * computed (exactly); every other synapse has dw = 0. Two forms, the same integers:
 *
 * - EL_LPL_BLOCKED (hosts): the B_j are drawn once into an array by j, and a bitmap over
 *   buckets of 2^F values (bucket B >> F, F = S - log2(bits), bits the largest power of two
 *   the rest of the window area holds, less 4 bytes) marks the buckets holding the B_j of
 *   nonzero x_j (words, buckets and bits in a loop that vectorises, then the ORs). A
 *   window of width 2 N_i <= 2^F touches at most two buckets (those of L_i and of
 *   L_i + 2 N_i - 1 mod 2^S, the same or the next): if neither bit is set, no B_j of a
 *   nonzero x_j lies in it. Rows go in blocks (their windows computed in a loop that
 *   vectorises, then one 16-bit read of the bitmap a row); a row with a set bit or a wider
 *   window scans every B_j (a vectorised test of all of them, then, if one is in the
 *   window, a test per run of 64 values and that run's candidates).
 * - otherwise (Cortex-M): the B_j are bucket-sorted by their top bits (indices in bucket
 *   order) and each row visits the entries of the buckets its window touches. Its indices
 *   and bucket starts are uint16: n_in <= 65535 (EL_MAX_UNITS; an engine's LPL layer is one
 *   of its network's layers, el_blob.c). The blocked form takes any n_in (uint32 indices).
 *
 * Returns 0 (nothing done) when the precondition fails or the window is not cheaper than the
 * sparse update (the same test in both forms). */
#if EL_LPL_BLOCKED
static inline void window_synapse(int8_t *wT, uint32_t n_out, uint32_t i, uint32_t j,
                                  const int32_t *x, int64_t pi, uint32_t a, uint32_t b, int S,
                                  const el_lpl_params *p, el_lpl_stats *stats)
{
    /* r & mask = (a + b_j) & mask, and b_j & mask = B_j */
    int64_t dw = el_stochastic_shift(el_mul64(pi, x[j]), S, a + b);
    if (dw) bounded_add(&wT[(size_t)j * n_out + i], dw, p->w_lo, p->w_hi, stats);
}

#define SCAN_RUN 64u      /* values a row's scan tests before looking at candidates */

/* every j with B_j in row i's window [L, L + Wm] mod 2^S (m32 = 2^S - 1). A first pass over
 * all B_j (one reduction at its end) rules out most rows: on bench_native's 700-256 stream
 * 97 % of the rows scanned for a marked bucket have no B_j in their window (5,553 scans, 191
 * with a candidate, over 1,300 steps); 0.04 us a step less than testing run by run alone */
static void scan_row(int8_t *wT, uint32_t n_in, uint32_t n_out, uint32_t i, const int32_t *x,
                     int64_t pi, uint32_t a, uint32_t L, uint32_t Wm, uint32_t m32, int S,
                     const uint32_t *Bv, const el_lpl_params *p, el_lpl_stats *stats)
{
    uint32_t in_window = 0;
    for (uint32_t j = 0; j < n_in; j++) in_window |= ((Bv[j] - L) & m32) <= Wm;
    if (!in_window) return;
    for (uint32_t j0 = 0; j0 < n_in; j0 += SCAN_RUN) {
        uint32_t m = n_in - j0 < SCAN_RUN ? n_in - j0 : SCAN_RUN, any = 0;
        const uint32_t *B = Bv + j0;
        for (uint32_t q = 0; q < m; q++) any |= ((B[q] - L) & m32) <= Wm;
        if (!any) continue;
        for (uint32_t q = 0; q < m; q++)
            if (((B[q] - L) & m32) <= Wm && x[j0 + q])
                window_synapse(wT, n_out, i, j0 + q, x, pi, a, B[q], S, p, stats);
    }
}

/* bits at .. at + 15 of a byte bitmap (bit f in byte f >> 3, bit f & 7), as one value */
static inline uint32_t bits16(const uint8_t *bits, uint32_t at)
{
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint16_t v;
    memcpy(&v, bits + at, 2);
    return v;
#else
    return (uint32_t)bits[at] | (uint32_t)bits[at + 1] << 8;
#endif
}
#else
static void visit_row(int8_t *wT, uint32_t n_out, uint32_t i, const int32_t *x, int64_t pi,
                      uint32_t a, uint64_t L, uint64_t W, uint64_t mask, int S, uint32_t nb,
                      int bshift, const uint32_t *Bs, const uint16_t *js,
                      const uint16_t *start, const el_lpl_params *p, el_lpl_stats *stats)
{
    uint32_t q0 = (uint32_t)(L >> bshift);
    uint64_t nq = (((L & (((uint64_t)1 << bshift) - 1)) + W - 1) >> bshift) + 1;
    if (nq > nb) nq = nb;
    uint32_t q1 = q0 + (uint32_t)nq;                      /* the buckets q0 .. q1 - 1 mod nb */
    for (uint32_t pass = 0; pass < 2; pass++) {
        uint32_t e = pass ? 0 : start[q0];
        uint32_t end = pass ? (q1 > nb ? start[q1 - nb] : 0) : start[q1 < nb ? q1 : nb];
        for (; e < end; e++) {
            uint32_t j = js[e], b = Bs[j];
            if (!x[j] || ((b - L) & mask) >= W) continue;
            /* r & mask = (a + b_j) & mask, and b_j & mask = B_j */
            int64_t dw = el_stochastic_shift(el_mul64(pi, x[j]), S, a + b);
            if (dw) bounded_add(&wT[(size_t)j * n_out + i], dw, p->w_lo, p->w_hi, stats);
        }
    }
}
#endif

static int update_window(int8_t *wT, uint32_t n_in, uint32_t n_out, const int32_t *x,
                         const int64_t *pv, const el_lpl_params *p, el_rng r0, int S,
                         uint8_t *scratch, el_lpl_stats *stats)
{
    int64_t xmax = 0;
    uint32_t nz = 0;
    for (uint32_t j = 0; j < n_in; j++) {
        int64_t a = x[j] < 0 ? -(int64_t)x[j] : x[j];
        xmax = a > xmax ? a : xmax;
        nz += x[j] != 0;
    }
    if (!xmax) return 1;                                  /* nothing can change */
    uint64_t two_s = (uint64_t)1 << S, mask = two_s - 1, half = two_s >> 1;
    uint32_t nb = buckets_for(n_in);
    int bb = 0;
    while (((uint32_t)1 << bb) < nb) bb++;
    if (bb > S) { bb = S; nb = (uint32_t)1 << S; }
    int bshift = S - bb;                                  /* bucket = B >> bshift */
    uint64_t visits = 0, ap_max = half / (uint64_t)xmax;
#if EL_LPL_BLOCKED
    uint64_t ap_top = 0;                                  /* no early exit: it vectorises */
    for (uint32_t i = 0; i < n_out; i++) {
        uint64_t ap = pv[i] < 0 ? (uint64_t)(-pv[i]) : (uint64_t)pv[i];
        uint64_t N = ap * (uint64_t)xmax;                 /* wraps only if ap > ap_max */
        ap_top = ap > ap_top ? ap : ap_top;
        visits += N ? 1 + ((2 * N) >> bshift) : 0;
    }
    if (ap_top > ap_max) return 0;                        /* some N_i > 2^(S-1) */
#else
    for (uint32_t i = 0; i < n_out; i++) {
        uint64_t ap = pv[i] < 0 ? (uint64_t)(-pv[i]) : (uint64_t)pv[i];
        if (ap > ap_max) return 0;                            /* N_i > 2^(S-1) */
        uint64_t N = ap * (uint64_t)xmax;
        if (N) visits += 1 + ((2 * N) >> bshift);
    }
#endif
    if (visits * 4 > (uint64_t)n_out * nz) return 0;     /* the sparse update is cheaper */
    const uint32_t m32 = (uint32_t)mask;
#if EL_LPL_BLOCKED
    uint32_t *Bv = (uint32_t *)scratch;                   /* B_j by j [n_in] */
    /* the bitmap: bit f in byte f >> 3, bit f & 7 (n_bytes); then a byte that repeats bit 0
     * as bit 2^fb, so a window's two buckets f and f + 1 mod 2^fb are one 16-bit read; then
     * two bytes of ones (the read of every wide row); then a byte the inputs with x_j = 0
     * mark (so the marking loop needs no test) */
    uint8_t *bits = (uint8_t *)(Bv + n_in);
    uint32_t avail = window_bytes(n_in) - 4u * n_in - 4u, n_words = 1, fb = 5;  /* 2^fb bits */
    while (8u * n_words <= avail) { n_words <<= 1; fb++; }
    if (fb > (uint32_t)S) fb = (uint32_t)S;               /* never more buckets than values */
    const int F = S - (int)fb;                            /* <= 27 */
    const uint32_t width = (uint32_t)1 << F, n_bits = (uint32_t)1 << fb;
    const uint32_t n_bytes = n_bits >= 8 ? n_bits >> 3 : 1;
    memset(bits, 0, (size_t)n_bytes + 1);
    bits[n_bytes + 1] = bits[n_bytes + 2] = 0xFF;
    const uint32_t spare = 8u * (n_bytes + 3);            /* a bit no read sees: x_j = 0 */
    for (uint32_t j0 = 0; j0 < n_in; j0 += MARK_BLOCK) {
        uint32_t m = n_in - j0 < MARK_BLOCK ? n_in - j0 : MARK_BLOCK;
        uint32_t fq[MARK_BLOCK];
        const int32_t *xb = x + j0;
        uint32_t *B = Bv + j0;
        /* the words and the bits to set (a loop that vectorises), then the byte ORs, unrolled
         * by 8 (gcc >= 8 and clang read this pragma): 0.14-0.19 us a step less on the 700
         * inputs of bench_native's network than the loop as compiled with -O3 (gcc 12,
         * Zen 5; the same with the loop aligned to 32 or 64 bytes, so not an alignment
         * effect); unrolling by 4 or 16 gained less */
        for (uint32_t q = 0; q < m; q++) {
            uint32_t b = el_rng_word(r0, n_out + j0 + q) & m32, f = b >> F;
            B[q] = b;
            fq[q] = xb[q] ? f : spare;
        }
#pragma GCC unroll 8
        for (uint32_t q = 0; q < m; q++) bits[fq[q] >> 3] |= (uint8_t)(1u << (fq[q] & 7));
    }
    bits[n_bits >> 3] |= (uint8_t)((bits[0] & 1u) << (n_bits & 7));
    uint32_t tested = 0;
    for (uint32_t i0 = 0; i0 < n_out; i0 += ROW_BLOCK) {
        uint32_t m = n_out - i0 < ROW_BLOCK ? n_out - i0 : ROW_BLOCK;
        uint32_t ab[ROW_BLOCK], Lb[ROW_BLOCK], Wm[ROW_BLOCK], at[ROW_BLOCK], want[ROW_BLOCK];
        /* the windows in uint32: |p_i| <= ap_max, so N_i <= 2^(S-1) <= 2^31 and |p_i|,
         * x_max < 2^32; W_i - 1 = 2 N_i - 1 and sums wrap mod 2^32, a multiple of 2^S
         * (N_i = 2^31 gives W_i - 1 = 2^32 - 1, which is right). A narrow window
         * (W_i - 1 < 2^F) touches the buckets f0 = L_i >> F and f1, f0 or f0 + 1 mod 2^fb:
         * the row tests bits16 at f0 >> 3 against want (its bits f0 & 7, and the next if
         * f1 != f0); a wide row reads the ones (want: all), a row with N_i = 0 nothing */
        const uint32_t xm = (uint32_t)xmax;
        for (uint32_t q = 0; q < m; q++) {
            int64_t pi = pv[i0 + q];
            uint32_t a = el_rng_word(r0, i0 + q);
            uint32_t N = (uint32_t)(pi < 0 ? (uint64_t)0 - (uint64_t)pi : (uint64_t)pi) * xm;
            uint32_t L = (0u - (a + N)) & m32, wm = 2u * N - 1u, on = N != 0;
            uint32_t f0 = L >> F, f1 = ((L + wm) & m32) >> F, narrow = on & (wm < width);
            ab[q] = a;
            Lb[q] = L;
            Wm[q] = wm;
            at[q] = narrow ? f0 >> 3 : n_bytes + 1;
            want[q] = narrow ? (1u + 2u * (f1 != f0)) << (f0 & 7) : (on ? 0xFFFFu : 0u);
            tested += narrow;
        }
        /* the bit tests one row at a time (one scattered 16-bit read a row: cheaper than
         * vector gathers on the hosts measured) */
        for (uint32_t q = 0; q < m; q++) {
            if (!(bits16(bits, at[q]) & want[q])) continue;
            el_lpl_window_rows[Wm[q] >= width]++;
            scan_row(wT, n_in, n_out, i0 + q, x, pv[i0 + q], ab[q], Lb[q], Wm[q], m32, S, Bv,
                     p, stats);
        }
    }
    el_lpl_window_rows[2] += tested;
#else
    uint32_t *Bs = (uint32_t *)scratch;                   /* B_j by j [n_in] */
    uint16_t *js = (uint16_t *)(Bs + n_in + WINDOW_CHECKS);   /* j in bucket order [n_in] */
    uint16_t *start = js + n_in;                          /* [nb + 1] */
    uint16_t *cursor = start + nb + 1;                    /* [nb] */
    memset(cursor, 0, 2 * (size_t)nb);
    words(r0, n_out, n_in, Bs);
    for (uint32_t j = 0; j < n_in; j++) {
        Bs[j] &= m32;
        cursor[Bs[j] >> bshift]++;
    }
    uint32_t run = 0;
    for (uint32_t q = 0; q < nb; q++) {                   /* starts, by a running sum */
        uint32_t c = cursor[q];
        start[q] = (uint16_t)run;
        cursor[q] = (uint16_t)run;
        run += c;
    }
    start[nb] = (uint16_t)run;
    for (uint32_t j = 0; j < n_in; j++) js[cursor[Bs[j] >> bshift]++] = (uint16_t)j;
    uint32_t ab[WORD_BLOCK];
    for (uint32_t i0 = 0; i0 < n_out; i0 += WORD_BLOCK) {
        uint32_t m = n_out - i0 < WORD_BLOCK ? n_out - i0 : WORD_BLOCK;
        words(r0, i0, m, ab);
        for (uint32_t q = 0; q < m; q++) {
            int64_t pi = pv[i0 + q];
            if (!pi) continue;
            uint64_t N = (pi < 0 ? (uint64_t)(-pi) : (uint64_t)pi) * (uint64_t)xmax;
            uint64_t L = (uint64_t)(-(int64_t)(((uint64_t)ab[q] + N) & mask)) & mask;
            visit_row(wT, n_out, i0 + q, x, pi, ab[q], L, 2 * N, mask, S, nb, bshift, Bs, js,
                      start, p, stats);
        }
    }
#endif
    return 1;
}

/* x[j] = activity j in Q.A */
static void activity(el_act a, uint32_t n, int A, int32_t *x)
{
    switch (a.kind) {
    case EL_ACT_U8:
        for (uint32_t j = 0; j < n; j++) x[j] = (int32_t)((const uint8_t *)a.v)[j] << A;
        break;
    case EL_ACT_I8:
        for (uint32_t j = 0; j < n; j++) x[j] = ((const int8_t *)a.v)[j] * (1 << A);
        break;
    case EL_ACT_I16:
        for (uint32_t j = 0; j < n; j++) x[j] = ((const int16_t *)a.v)[j] * (1 << A);
        break;
    default:
        memcpy(x, a.v, 4 * (size_t)n);
    }
}

#if EL_LPL_BLOCKED
/* Whether filter() may compute in int32 (loops twice as wide): it gives the int64 form's
 * integers when no intermediate leaves int32. With M = max_j max(|x_j| 2^E, |trace_j|),
 * 0 <= k <= 2^12, no pre-shift and 1 <= s <= 30: |target - trace| <= 2M, the product with k has
 * magnitude <= 2^13 M, and adding r & (2^s - 1) in [0, 2^s) stays within int32 when
 * 2^13 M + 2^s <= 2^31 - 1, i.e. M <= (2^31 - 1 - 2^s) / 2^13 (< 2^18); with s >= 1 the
 * shifted sum has magnitude <= 2^12 M + 1, so t = trace + it (<= 2^12 M + M + 1 < 2^31) and
 * t + 2^(E-1) (E <= 12) fit as well. (Rate codes have 11 <= s <= 48, el_lpl_block_parse; the
 * test s >= 1 keeps the proof's premise here, since s = 0 would let t overflow.) */
static int filter_fits32(const int32_t *x, const int32_t *trace, uint32_t n, int E, ema_code c)
{
    if (c.pre || c.s < 1 || c.s > 30 || c.k < 0 || c.k > 4096) return 0;
    int32_t x_lo = 0, x_hi = 0, t_lo = 0, t_hi = 0;
    for (uint32_t j = 0; j < n; j++) {
        x_lo = x[j] < x_lo ? x[j] : x_lo;
        x_hi = x[j] > x_hi ? x[j] : x_hi;
        t_lo = trace[j] < t_lo ? trace[j] : t_lo;
        t_hi = trace[j] > t_hi ? trace[j] : t_hi;
    }
    int64_t M = ((((int64_t)1 << 31) - 1 - ((int64_t)1 << c.s)) >> 13);
    int64_t x_top = -(int64_t)x_lo > x_hi ? -(int64_t)x_lo : x_hi;
    return x_top * ((int64_t)1 << E) <= M && -(int64_t)t_lo <= M && t_hi <= M;
}
#endif

/* a rate filter in place: trace += sshift((x << E - trace) k, s, word); x = round_shift(trace,
 * E) (from the int64 trace; the stored trace is its int32 truncation, as the reference's) */
static void filter(int32_t *x, int32_t *trace, uint32_t n, int E, ema_code c, el_rng r,
                   uint32_t first)
{
    uint32_t wb[WORD_BLOCK];
#if EL_LPL_BLOCKED
    const int narrow = filter_fits32(x, trace, n, E, c);
    const int32_t k32 = (int32_t)c.k, half = E ? 1 << (E - 1) : 0, s = c.s;
    const uint32_t mask = c.mask;
#endif
    for (uint32_t j0 = 0; j0 < n; j0 += WORD_BLOCK) {
        uint32_t m = n - j0 < WORD_BLOCK ? n - j0 : WORD_BLOCK;
        words(r, first + j0, m, wb);
        int32_t *xb = x + j0, *tb = trace + j0;
#if EL_LPL_BLOCKED
        if (narrow) {
            for (uint32_t q = 0; q < m; q++) {
                int32_t u = (xb[q] * (1 << E) - tb[q]) * k32 + (int32_t)(wb[q] & mask);
                int32_t t = tb[q] + (u >> s);
                xb[q] = (t + half) >> E;
                tb[q] = t;
            }
            continue;
        }
#endif
        for (uint32_t q = 0; q < m; q++) {
            int64_t t = ema(tb[q], el_shl64(xb[q], E), c, wb[q]);
            xb[q] = (int32_t)el_round_shift(t, E);
            tb[q] = (int32_t)t;
        }
    }
}

/* scale() with its constants prepared: round_shift(v k, s); k = 0 gives 0 (codes: s >= 0) */
typedef struct {
    int64_t k, half;
    int s;
} scale_code;

static scale_code scale_prepare(el_code c)
{
    scale_code r = {c.k, c.k && c.s > 0 ? (int64_t)1 << (c.s - 1) : 0, c.k ? c.s : 0};
    return r;
}

static inline int64_t scale_by(int64_t v, scale_code c)
{
    return el_add64(el_mul64(v, c.k), c.half) >> c.s;
}

/* p_i from inv_i (in pv, replaced): the bracket B_i times gain and eta, saturated to 41 bits
 * (equations in el_lpl.h). The flags select what the layer uses (constants after inlining:
 * without decorrelation, homeostasis and gain the loop vectorises). Returns saturations. */
static inline __attribute__((always_inline)) uint32_t
factors(int64_t *pv, const int32_t *z, const int64_t *d, const int32_t *gain,
        const el_lpl_state *st, const el_lpl_params *p, uint32_t n_out, const int decorr,
        const int hom, const int has_gain)
{
    const int A = p->act_frac, E = p->ema_frac, P = p->factor_frac;
    const int sh = A + E + p->eta.s - P;
    const int sr = sh > 0 ? sh : 0, sl = sh < 0 ? -sh : 0;
    const int64_t sh_half = sr ? (int64_t)1 << (sr - 1) : 0;
    const scale_code lam = scale_prepare(p->lam), pred = scale_prepare(p->pred);
    const int64_t half20 = (int64_t)1 << (INV_FRAC - 1), half12 = (int64_t)1 << (GAIN_FRAC - 1);
    const int64_t eta_k = p->eta.k, lim = ((int64_t)1 << (P_LIMIT_BITS - 1)) - 1;
    const int32_t *mean = st->mean;
    const int16_t *zp = st->z_prev;
    uint32_t n_sat = 0;
    for (uint32_t i = 0; i < n_out; i++) {
        int64_t inv = pv[i];
        int64_t di = el_sub64(el_shl64(z[i], E), mean[i]);
        int64_t b = scale_by(el_add64(el_mul64(di, inv), half20) >> INV_FRAC, lam);
        b = el_sub64(b, scale_by(el_shl64((int64_t)z[i] - zp[i], E), pred));
        if (decorr && p->decorr && n_out > 1) {
            int64_t acc = 0;
            for (uint32_t k = 0; k < n_out; k++)
                if (k != i)
                    acc = el_add64(acc, el_mul64(el_round_shift(st->cov[(size_t)i * n_out + k], E),
                                                 d[k]));
            b = el_sub64(b, scale(el_round_shift(acc, 2 * A), p->lam_decorr));
        }
        if (hom && p->hom) {
            int64_t rho = p->stores_target ? st->target[i] : p->rate_target_q;
            int64_t dm = el_sub64(mean[i], rho);
            b = el_sub64(b, scale(el_round_shift(el_mul64(dm, inv), INV_FRAC), p->lam_hom));
        }
        b = el_add64(el_mul64(b, has_gain && gain ? gain[i] : (1 << GAIN_FRAC)), half12) >> GAIN_FRAC;
        int64_t v = el_shl64(el_add64(el_mul64(b, eta_k), sh_half) >> sr, sl);
        int64_t vs = v < -lim - 1 ? -lim - 1 : (v > lim ? lim : v);
        n_sat += vs != v;
        pv[i] = vs;
    }
    return n_sat;
}

int el_lpl_step(int8_t *wT, uint32_t n_in, uint32_t n_out, el_act pre, el_act post,
                const int32_t *gain, el_lpl_state *st, const el_lpl_params *p, el_rng *rng,
                void *scratch, int fast, el_lpl_stats *stats)
{
    const int A = p->act_frac, E = p->ema_frac, P = p->factor_frac;
    el_lpl_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    int64_t *pv = (int64_t *)scratch;
    int64_t *d = p->decorr ? pv + n_out : 0;               /* else d_i computed in place */
    int32_t *x = (int32_t *)(pv + n_out + d_words(p, n_out));
    int32_t *z = x + n_in;
    uint8_t *win = (uint8_t *)(z + n_out);
    int32_t count = st->count[0];
    int skipped = (int64_t)count < (int64_t)p->warmup;
    uint32_t k_pre = has(p->pre) ? n_in : 0, k_post = has(p->post) ? n_out : 0;
    uint32_t o_w = k_pre + k_post;
    uint32_t k_w = skipped ? 0 : (p->rounding == EL_ROUND_FULL ? n_out * n_in : n_out + n_in);
    uint32_t o_mean = o_w + k_w;
    uint32_t total = o_mean + 2 * n_out + (p->decorr ? n_out * n_out : 0);
    el_rng r = *rng;
    /* activities and the input / output rate filters */
    activity(pre, n_in, A, x);
    activity(post, n_out, A, z);
    if (k_pre) filter(x, st->pre_trace, n_in, E, ema_prepare(p->pre), r, 0);
    if (k_post) filter(z, st->post_trace, n_out, E, ema_prepare(p->post), r, k_pre);
    /* the bracket and the per-neuron factor p_i (old statistics); first inv_i into pv */
    const int64_t inv_num = (int64_t)1 << (2 * A + E + INV_FRAC);
    int all_ok = 1;
    for (uint32_t i = 0; i < n_out; i++) {
        int ok;
        pv[i] = inv_fast(inv_num, el_add64(st->var[i], (int64_t)p->xi_q), &ok);
        all_ok &= ok;
    }
    if (!all_ok)
        for (uint32_t i = 0; i < n_out; i++)
            pv[i] = el_lpl_inv(inv_num, el_add64(st->var[i], (int64_t)p->xi_q));
    if (d)
        for (uint32_t i = 0; i < n_out; i++) d[i] = el_sub64(el_shl64(z[i], E), st->mean[i]);
    if (!p->decorr && !p->hom && !gain)
        stats->n_saturated += factors(pv, z, d, gain, st, p, n_out, 0, 0, 0);
    else
        stats->n_saturated += factors(pv, z, d, gain, st, p, n_out, 1, 1, 1);
    /* weights */
    if (!skipped) {
        el_rng rw = r;
        el_rng_advance(&rw, o_w);
        int S = P + A;                                     /* 1..32 (Params checks) */
        if (!fast) {
            update_reference(wT, n_in, n_out, x, pv, p, rw, S, stats);
            el_lpl_path_count[0]++;
        } else if (p->rounding == EL_ROUND_FULL ||
                   !update_window(wT, n_in, n_out, x, pv, p, rw, S, win, stats)) {
            update_sparse(wT, n_in, n_out, x, pv, p, rw, S, stats);
            el_lpl_path_count[1]++;
        } else {
            el_lpl_path_count[2]++;
        }
    }
    /* statistics: mean += sshift((z << E - mean) k_m, s_m); var += sshift((round_shift(d^2,
     * E) - var) k_v, s_v), d with the old mean; both saturated to int32, var >= 0 */
    uint32_t wb[WORD_BLOCK], wv[WORD_BLOCK];
    const ema_code cm = ema_prepare(p->mean), cv = ema_prepare(p->var);
    uint32_t n_sat = 0;
    for (uint32_t i0 = 0; i0 < n_out; i0 += WORD_BLOCK) {
        uint32_t n = n_out - i0 < WORD_BLOCK ? n_out - i0 : WORD_BLOCK;
        words(r, o_mean + i0, n, wb);
        words(r, o_mean + n_out + i0, n, wv);
        int32_t *mb = st->mean + i0, *vb = st->var + i0;
        const int32_t *zb = z + i0;
        for (uint32_t q = 0; q < n; q++) {
            int64_t zt = el_shl64(zb[q], E);
            int64_t di = el_sub64(zt, mb[q]);                       /* the old mean */
            int64_t m = ema(mb[q], zt, cm, wb[q]);
            int64_t v = ema(vb[q], el_round_shift(el_mul64(di, di), E), cv, wv[q]);
            int64_t ms = el_sat_bits(m, 32), vsat = el_sat_bits(v, 32);
            n_sat += (ms != m) + (vsat != v);
            mb[q] = (int32_t)ms;
            vb[q] = (int32_t)(vsat < 0 ? 0 : vsat);
        }
    }
    stats->n_saturated += n_sat;
    if (p->decorr) {
        uint32_t o_c = o_mean + 2 * n_out;
        for (uint32_t i = 0; i < n_out; i++)
            for (uint32_t k = 0; k < n_out; k++) {
                size_t ik = (size_t)i * n_out + k;
                int64_t c = ema(st->cov[ik], el_round_shift(el_mul64(d[i], d[k]), E), cv,
                                el_rng_word(r, o_c + (uint32_t)ik));
                st->cov[ik] = (int32_t)sat_count(c, 32, &stats->n_saturated);
            }
    }
    for (uint32_t i = 0; i < n_out; i++) st->z_prev[i] = (int16_t)el_sat_bits(z[i], 16);
    if (p->stores_target && (int64_t)count + 1 == (int64_t)p->warmup)
        memcpy(st->target, st->mean, 4 * (size_t)n_out);
    if ((int64_t)count + 1 < (int64_t)p->warmup) st->count[0] = count + 1;
    else st->count[0] = (int32_t)p->warmup;
    el_rng_advance(rng, total);
    stats->skipped = (uint32_t)skipped;
    return !skipped;
}

/* acc[j] += v[j] for the integers of an activity (kind EL_ACT_U8, I8 or I16). Hosts: plain
 * loops, which vectorise. Cortex-M (EL_SWAR): a 32-bit word of values at a time (four 8-bit or
 * two 16-bit), zero words skipped (sparse spikes: most words are). */
#if EL_SWAR
#define EL_ACCUMULATE(T)                                                                      \
    do {                                                                                      \
        const T *v = (const T *)a.v;                                                          \
        const uint32_t per = 4u / sizeof(T);                                                  \
        for (; j + per <= n; j += per) {                                                      \
            uint32_t w;                                                                       \
            memcpy(&w, v + j, 4);                                                             \
            if (!w) continue;                                                                 \
            for (uint32_t q = 0; q < per; q++) acc[j + q] += v[j + q];                        \
        }                                                                                     \
        for (; j < n; j++) acc[j] += v[j];                                                    \
    } while (0)
#else
#define EL_ACCUMULATE(T)                                                                      \
    do {                                                                                      \
        const T *v = (const T *)a.v;                                                          \
        for (; j < n; j++) acc[j] += v[j];                                                    \
    } while (0)
#endif

static void accumulate(int32_t *acc, el_act a, uint32_t n)
{
    uint32_t j = 0;
    switch (a.kind) {
    case EL_ACT_U8: EL_ACCUMULATE(uint8_t); break;
    case EL_ACT_I8: EL_ACCUMULATE(int8_t); break;
    default: EL_ACCUMULATE(int16_t); break;
    }
}
#undef EL_ACCUMULATE

/* the epoch means in Q.A: q = acc 2^A / 2^e = acc << (A - e) (e <= A; |acc| <= 2^e 2^15, so
 * |q| < 2^(15 + A) <= 2^29); the sums restart at 0 */
static void to_q(int32_t *acc, uint32_t n, int sh, int32_t *q)
{
    for (uint32_t j = 0; j < n; j++) {
        q[j] = (int32_t)((uint32_t)acc[j] << sh);
        acc[j] = 0;
    }
}

int el_lpl_epoch_step(int8_t *wT, uint32_t n_in, uint32_t n_out, el_act pre, el_act post,
                      const int32_t *gain, el_lpl_state *st, const el_lpl_params *p,
                      el_rng *rng, void *scratch, int fast, el_lpl_stats *stats)
{
    const int e = p->epoch_log2;
    if (!e)
        return el_lpl_step(wT, n_in, n_out, pre, post, gain, st, p, rng, scratch, fast, stats);
    accumulate(st->epoch_pre, pre, n_in);
    accumulate(st->epoch_post, post, n_out);
    if (++st->epoch_steps[0] < (int32_t)1 << e) {
        if (stats) memset(stats, 0, sizeof *stats);
        return 0;
    }
    const int sh = p->act_frac - e;
    int32_t *xq = (int32_t *)((uint8_t *)scratch + ((step_bytes(p, n_in, n_out) + 3u) & ~3u));
    int32_t *zq = xq + n_in;
    to_q(st->epoch_pre, n_in, sh, xq);
    to_q(st->epoch_post, n_out, sh, zq);
    st->epoch_steps[0] = 0;
    el_act x = {xq, EL_ACT_Q}, z = {zq, EL_ACT_Q};
    return el_lpl_step(wT, n_in, n_out, x, z, gain, st, p, rng, scratch, fast, stats);
}
