/* Fixed-point LPL rate step (equations and PRNG order in el_lpl.h). */
#include "el_lpl.h"

#include <string.h>

#define INV_FRAC 20
#define GAIN_FRAC 12
#define P_LIMIT_BITS 41

uint32_t el_lpl_path_count[3];

static int has(el_code c) { return c.k != 0; }

#define WORD_BLOCK 64u

/* out[i] = word first + i of the stream (a plain loop a compiler can vectorise) */
static void words(el_rng r, uint32_t first, uint32_t n, uint32_t *out)
{
    for (uint32_t i = 0; i < n; i++) out[i] = el_hash32(r.key ^ el_hash32(r.counter + first + i));
}

/* lpl_rate._scale: v times k 2^-s with the one rounding rule; a zero coefficient gives 0 */
static int64_t scale(int64_t v, el_code c)
{
    if (!c.k) return 0;
    int64_t prod = el_mul64(v, c.k);
    return c.s >= 0 ? el_round_shift(prod, c.s) : el_shl64(prod, -c.s);
}

/* qmath.ema_apply for one element: x + sshift(fit_shift((target - x) k, s), r) */
static int64_t ema(int64_t x, int64_t target, el_code c, uint32_t r)
{
    int64_t num = el_mul64(el_sub64(target, x), c.k);
    int s = c.s;
    if (s > 32) {
        num = el_round_shift(num, s - 32);
        s = 32;
    }
    return el_add64(x, el_stochastic_shift(num, s, r));
}

/* floor(num / v) for num = 2^k (k <= 62) and v >= 1, as el_floordiv64, without a 64-bit
 * division when the quotient is below 2^50: a binary64 quotient (relative error < 2^-52, so
 * off by at most 1) corrected exactly with integer products. Other cases divide. */
static int64_t inv_q(int64_t num, int64_t v)
{
#if defined(__x86_64__) || defined(__aarch64__) || defined(EL_LPL_FLOAT_DIVIDE)
    if (v > 0 && (num >> 50) < v) {
        int64_t q = (int64_t)((double)num / (double)v);
        int64_t r = num - q * v;                           /* |q v| < 2^63 */
        while (r < 0) {
            q--;
            r += v;
        }
        while (r >= v) {
            q++;
            r -= v;
        }
        return q;
    }
#endif
    return el_floordiv64(num, v);
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
    return b;
}

static uint32_t buckets_for(uint32_t n_in)
{
    uint32_t nb = 1;
    while (nb < n_in) nb <<= 1;
    return nb;
}

/* scratch: p (int64 [n_out]); d (int64 [n_out], only with decorrelation: the covariance update
 * needs every d_k after the means moved; otherwise d_i is recomputed where it is used);
 * x (int32 [n_in]); z (int32 [n_out]); window search: B (uint32 [n_in]), order
 * (uint16 [n_in]), bucket starts and cursors (uint16 [2 buckets + 1]) */
static uint32_t d_words(const el_lpl_params *p, uint32_t n_out) { return p->decorr ? n_out : 0; }

uint32_t el_lpl_scratch_bytes(const el_lpl_params *p, uint32_t n_in, uint32_t n_out)
{
    uint32_t b = 8 * (n_out + d_words(p, n_out)) + 4 * n_in + 4 * n_out;
    b += 4 * n_in + 2 * n_in + 2 * (2 * buckets_for(n_in) + 1);
    return (b + 7u) & ~7u;
}

void el_lpl_activity(const el_lpl_params *p, void *scratch, uint32_t n_in, uint32_t n_out,
                     int32_t **pre, int32_t **post)
{
    *pre = (int32_t *)((int64_t *)scratch + n_out + d_words(p, n_out));
    *post = *pre + n_in;
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
 * [L_i, L_i + 2 N_i) mod 2^S with L_i = -(a_i + N_i) mod 2^S. The B_j are bucket-sorted by
 * their top bits once per step; each row visits only the buckets its window touches and
 * computes those synapses exactly. Every other synapse has dw = 0. Returns 0 (nothing done)
 * when the precondition fails or the window is not cheaper than the sparse update. */
static int update_window(int8_t *wT, uint32_t n_in, uint32_t n_out, const int32_t *x,
                         const int64_t *pv, const el_lpl_params *p, el_rng r0, int S,
                         uint8_t *scratch, el_lpl_stats *stats)
{
    int64_t xmax = 0;
    uint32_t nz = 0;
    for (uint32_t j = 0; j < n_in; j++) {
        int64_t a = x[j] < 0 ? -(int64_t)x[j] : x[j];
        if (a > xmax) xmax = a;
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
    for (uint32_t i = 0; i < n_out; i++) {
        uint64_t ap = pv[i] < 0 ? (uint64_t)(-pv[i]) : (uint64_t)pv[i];
        if (ap > ap_max) return 0;                            /* N_i > 2^(S-1) */
        uint64_t N = ap * (uint64_t)xmax;
        if (N) visits += 1 + ((2 * N) >> bshift);
    }
    if (visits * 4 > (uint64_t)n_out * nz) return 0;     /* the sparse update is cheaper */
    uint32_t *B = (uint32_t *)scratch;                    /* [n_in] */
    uint16_t *order = (uint16_t *)(B + n_in);             /* [n_in] j by bucket */
    uint16_t *start = order + n_in;                       /* [nb + 1] */
    uint16_t *cursor = start + nb + 1;                    /* [nb] */
    memset(start, 0, 2 * ((size_t)nb + 1));
    words(r0, n_out, n_in, B);
    for (uint32_t j = 0; j < n_in; j++) {
        B[j] = (uint32_t)(B[j] & mask);
        start[(B[j] >> bshift) + 1]++;
    }
    for (uint32_t q = 0; q < nb; q++) {
        start[q + 1] = (uint16_t)(start[q + 1] + start[q]);
        cursor[q] = start[q];
    }
    for (uint32_t j = 0; j < n_in; j++) order[cursor[B[j] >> bshift]++] = (uint16_t)j;
    for (uint32_t i = 0; i < n_out; i++) {
        if (!pv[i]) continue;
        uint64_t ap = pv[i] < 0 ? (uint64_t)(-pv[i]) : (uint64_t)pv[i];
        uint64_t N = ap * (uint64_t)xmax;
        uint32_t a = el_rng_word(r0, i);
        uint64_t L = (uint64_t)(-(int64_t)(((uint64_t)a + N) & mask)) & mask;
        uint64_t W = 2 * N;                               /* <= 2^S */
        uint32_t q0 = (uint32_t)(L >> bshift);
        uint32_t nq = (uint32_t)(((L & (((uint64_t)1 << bshift) - 1)) + W - 1) >> bshift) + 1;
        if (nq > nb) nq = nb;
        for (uint32_t t = 0; t < nq; t++) {
            uint32_t q = (q0 + t) & (nb - 1);
            for (uint32_t e = start[q]; e < start[q + 1]; e++) {
                uint32_t j = order[e];
                if (!x[j]) continue;
                uint32_t r = a + el_rng_word(r0, n_out + j);
                int64_t dw = el_stochastic_shift(el_mul64(pv[i], x[j]), S, r);
                if (dw) bounded_add(&wT[(size_t)j * n_out + i], dw, p->w_lo, p->w_hi, stats);
            }
        }
    }
    return 1;
}

int el_lpl_step(int8_t *wT, uint32_t n_in, uint32_t n_out, const int32_t *pre,
                const int32_t *post, const int32_t *gain, el_lpl_state *st,
                const el_lpl_params *p, el_rng *rng, void *scratch, int fast,
                el_lpl_stats *stats)
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
    /* input / output rate filters */
    uint32_t wb[WORD_BLOCK];
    for (uint32_t j0 = 0; j0 < n_in; j0 += WORD_BLOCK) {
        uint32_t n = n_in - j0 < WORD_BLOCK ? n_in - j0 : WORD_BLOCK;
        if (!k_pre) {
            for (uint32_t j = j0; j < j0 + n; j++) x[j] = pre[j];
            continue;
        }
        words(r, j0, n, wb);
        for (uint32_t q = 0; q < n; q++) {
            uint32_t j = j0 + q;
            int64_t t = ema(st->pre_trace[j], el_shl64(pre[j], E), p->pre, wb[q]);
            x[j] = (int32_t)el_round_shift(t, E);
            st->pre_trace[j] = (int32_t)t;
        }
    }
    for (uint32_t i0 = 0; i0 < n_out; i0 += WORD_BLOCK) {
        uint32_t n = n_out - i0 < WORD_BLOCK ? n_out - i0 : WORD_BLOCK;
        if (!k_post) {
            for (uint32_t i = i0; i < i0 + n; i++) z[i] = post[i];
            continue;
        }
        words(r, k_pre + i0, n, wb);
        for (uint32_t q = 0; q < n; q++) {
            uint32_t i = i0 + q;
            int64_t t = ema(st->post_trace[i], el_shl64(post[i], E), p->post, wb[q]);
            z[i] = (int32_t)el_round_shift(t, E);
            st->post_trace[i] = (int32_t)t;
        }
    }
    /* the bracket and the per-neuron factor p_i (old statistics) */
    const int64_t inv_num = (int64_t)1 << (2 * A + E + INV_FRAC);
    if (d)
        for (uint32_t i = 0; i < n_out; i++) d[i] = el_sub64(el_shl64(z[i], E), st->mean[i]);
    for (uint32_t i = 0; i < n_out; i++) {
        int64_t di = el_sub64(el_shl64(z[i], E), st->mean[i]);
        int64_t inv = inv_q(inv_num, el_add64(st->var[i], p->xi_q));
        int64_t b = scale(el_round_shift(el_mul64(di, inv), INV_FRAC), p->lam);
        b = el_sub64(b, scale(el_shl64((int64_t)z[i] - st->z_prev[i], E), p->pred));
        if (p->decorr && n_out > 1) {
            int64_t acc = 0;
            for (uint32_t k = 0; k < n_out; k++)
                if (k != i)
                    acc = el_add64(acc, el_mul64(el_round_shift(st->cov[(size_t)i * n_out + k], E),
                                                 d[k]));
            b = el_sub64(b, scale(el_round_shift(acc, 2 * A), p->lam_decorr));
        }
        if (p->hom) {
            int64_t rho = p->stores_target ? st->target[i] : p->rate_target_q;
            int64_t dm = el_sub64(st->mean[i], rho);
            b = el_sub64(b, scale(el_round_shift(el_mul64(dm, inv), INV_FRAC), p->lam_hom));
        }
        b = el_round_shift(el_mul64(b, gain ? gain[i] : (1 << GAIN_FRAC)), GAIN_FRAC);
        int sh = A + E + p->eta.s - P;
        int64_t v = el_mul64(b, p->eta.k);
        v = sh >= 0 ? el_round_shift(v, sh) : el_shl64(v, -sh);
        pv[i] = sat_count(v, P_LIMIT_BITS, &stats->n_saturated);
    }
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
    /* statistics */
    uint32_t wv[WORD_BLOCK];
    for (uint32_t i0 = 0; i0 < n_out; i0 += WORD_BLOCK) {
        uint32_t n = n_out - i0 < WORD_BLOCK ? n_out - i0 : WORD_BLOCK;
        words(r, o_mean + i0, n, wb);
        words(r, o_mean + n_out + i0, n, wv);
        for (uint32_t q = 0; q < n; q++) {
            uint32_t i = i0 + q;
            int64_t di = el_sub64(el_shl64(z[i], E), st->mean[i]);    /* the old mean */
            int64_t m = ema(st->mean[i], el_shl64(z[i], E), p->mean, wb[q]);
            int64_t v = ema(st->var[i], el_round_shift(el_mul64(di, di), E), p->var, wv[q]);
            m = sat_count(m, 32, &stats->n_saturated);
            v = sat_count(v, 32, &stats->n_saturated);
            st->mean[i] = (int32_t)m;
            st->var[i] = (int32_t)(v < 0 ? 0 : v);
        }
    }
    if (p->decorr) {
        uint32_t o_c = o_mean + 2 * n_out;
        for (uint32_t i = 0; i < n_out; i++)
            for (uint32_t k = 0; k < n_out; k++) {
                size_t ik = (size_t)i * n_out + k;
                int64_t c = ema(st->cov[ik], el_round_shift(el_mul64(d[i], d[k]), E), p->var,
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
