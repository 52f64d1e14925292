/* Integer LIF layer step, event-driven and fused by tiles of neurons (equations and design in
 * el_lif.h and docs/fixed-point.md section 5). */
#include "el_lif.h"

#include <string.h>

#include "el_fixed.h"

#if defined(__AVX512BW__) && defined(__AVX512VBMI2__) && !EL_SWAR
#include <immintrin.h>
#endif

#if EL_SWAR && defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "EL_SWAR assumes little-endian words"
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))

int el_lif_force_reference = 0;

/* 0/1 columns summed in 16-bit lanes: 256 int8 values at most (|sum| <= 2^15) per chunk */
#define CHUNK 256u

static int64_t shifted_bound(int64_t v, int s)
{
    return s >= 0 ? v << s : (v >> -s) + 1;
}

static int64_t half_of(int s) { return s < 0 ? (int64_t)1 << (-s - 1) : 0; }

void el_layer_prepare(el_layer *L)
{
    int64_t hi = (int64_t)(((uint64_t)1 << (L->state_bits - 1)) - 1);
    L->state_lo = -hi - 1;
    L->state_hi = hi;
    int64_t xmax = L->in_binary ? 1 : ((int64_t)1 << (L->in_bits - 1));
    int64_t max_acc = 128 * (int64_t)L->n_in * xmax;          /* any int8 W */
    L->acc32 = max_acc < ((int64_t)1 << 31);
    L->fast32 = 0;
    if (L->state_bits == 16 && L->acc32 && L->w_shift <= 31 && L->v_shift <= 31) {
        int64_t bound = ((int64_t)1 << 15) + 1;                  /* decay(I) */
        if (L->w_shift > 0 && max_acc >= ((int64_t)1 << (62 - L->w_shift))) return;
        if (max_acc + half_of(L->w_shift) >= ((int64_t)1 << 31)) return;   /* A + half */
        bound += shifted_bound(max_acc, L->w_shift);
        if (L->vT) {
            if (L->v_shift > 0 && (uint64_t)L->n_out >= ((uint64_t)1 << (40 - L->v_shift))) return;
            if (128 * (int64_t)L->n_out + half_of(L->v_shift) >= ((int64_t)1 << 31)) return;
            bound += shifted_bound(128 * (int64_t)L->n_out, L->v_shift);
        }
        if (L->bias) {
            int64_t bmax = 0;
            for (uint32_t i = 0; i < L->n_out; i++) {
                int64_t b = L->bias[i] < 0 ? -(int64_t)L->bias[i] : L->bias[i];
                if (b > bmax) bmax = b;
            }
            bound += bmax;
        }
        L->fast32 = bound < ((int64_t)1 << 31);
    }
}

uint32_t el_step_scratch_bytes(uint32_t m) { return 8u * m; }

void el_step_lists_bind(el_step_lists *s, void *scratch, uint32_t m)
{
    uint16_t *p = (uint16_t *)scratch;
    s->in = p;
    s->out = p + m;
    s->fired = p + 2 * (size_t)m;
    s->val = (int16_t *)(p + 3 * (size_t)m);
}

/* indices (plus offset) of the nonzero bytes of v[0..n): words without one are skipped */
#if defined(__AVX512BW__) && defined(__AVX512VBMI2__) && !EL_SWAR
/* hosts with AVX-512 VBMI2 (a -march=native build): 64 bytes per iteration, the indices of
 * the nonzero ones compressed (vpcompressw) and stored under a mask, nothing written past
 * out[count); the same list in the same order as the loops below, without a branch per byte */
static uint32_t nonzero_bytes(const uint8_t *v, uint32_t n, uint32_t offset, uint16_t *out)
{
    uint32_t c = 0;
    __m512i lo = _mm512_add_epi16(
        _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14,
                         13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi16((short)offset));
    const __m512i half = _mm512_set1_epi16(32), whole = _mm512_set1_epi16(64);
    for (uint32_t i = 0; i < n; i += 64) {
        __mmask64 in = n - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n - i)) - 1);
        __m512i x = _mm512_maskz_loadu_epi8(in, v + i);
        __mmask64 m = _mm512_test_epi8_mask(x, x);
        if (m) {
            __mmask32 m0 = (__mmask32)m, m1 = (__mmask32)(m >> 32);
            uint32_t k0 = (uint32_t)__builtin_popcount(m0), k1 = (uint32_t)__builtin_popcount(m1);
            _mm512_mask_storeu_epi16(out + c, (__mmask32)(((uint64_t)1 << k0) - 1),
                                     _mm512_maskz_compress_epi16(m0, lo));
            c += k0;
            _mm512_mask_storeu_epi16(out + c, (__mmask32)(((uint64_t)1 << k1) - 1),
                                     _mm512_maskz_compress_epi16(m1, _mm512_add_epi16(lo, half)));
            c += k1;
        }
        lo = _mm512_add_epi16(lo, whole);
    }
    return c;
}
#else
static uint32_t nonzero_bytes(const uint8_t *v, uint32_t n, uint32_t offset, uint16_t *out)
{
    uint32_t c = 0, i = 0;
#if defined(__GNUC__) && UINTPTR_MAX > 0xFFFFFFFFu
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, v + i, 8);
        while (w) {                                     /* little- or big-endian alike */
            int bit = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? __builtin_ctzll(w)
                                                                : 63 - __builtin_clzll(w);
            uint32_t q = (uint32_t)bit >> 3;
            uint32_t at = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? q : 7 - q;
            out[c++] = (uint16_t)(offset + i + at);
            w &= ~((uint64_t)0xFF << (8 * q));
        }
    }
#else
    for (; i + 4 <= n; i += 4) {
        uint32_t w;
        memcpy(&w, v + i, 4);
        if (!w) continue;
        for (uint32_t q = 0; q < 4; q++)
            if (v[i + q]) out[c++] = (uint16_t)(offset + i + q);
    }
#endif
    for (; i < n; i++)
        if (v[i]) out[c++] = (uint16_t)(offset + i);
    return c;
}
#endif

uint32_t el_input_events(const void *x, int x_kind, uint32_t n, int binary, int mode,
                         uint16_t *in, int16_t *val, int *with_values)
{
    uint32_t c = 0;
    if (binary == 1 && mode != EL_MODE_DENSE && x_kind != EL_X_INT16) {
        *with_values = 0;
        return nonzero_bytes((const uint8_t *)x, n, 0, in);
    }
    int all01 = 1;
    if (x_kind == EL_X_INT16) {
        const int16_t *v = (const int16_t *)x;
        for (uint32_t j = 0; j < n; j++)
            if (v[j]) {
                in[c] = (uint16_t)j;
                val[c++] = v[j];
                all01 &= v[j] == 1;
            }
    } else {                                   /* EL_X_SPIKES (0/1) or EL_X_INT8: bytes */
        const int8_t *v = (const int8_t *)x;
        c = nonzero_bytes((const uint8_t *)x, n, 0, in);
        for (uint32_t q = 0; q < c; q++) {
            val[q] = v[in[q]];
            all01 &= val[q] == 1;
        }
    }
    if (binary == -1) binary = all01;
    *with_values = !(binary && mode != EL_MODE_DENSE);
    return c;
}

/* ---- tile sums: acc[i] = sum over listed columns j of M[j][i0 + i], i < w ----------------- */

#if EL_SWAR
/* 4 neurons per word: each weight byte biased by 128 (w ^ 0x80 = w + 128 in 0..255), even
 * and odd bytes in two registers of two 16-bit lanes; a chunk of 256 columns cannot carry
 * out of a lane (256 * 255 < 2^16); the bias comes off when the lanes are read. */
#define SWAR_LANES(e, o, w)                                                                \
    do {                                                                                   \
        uint32_t b_ = (w) ^ 0x80808080u;                                                   \
        e += b_ & 0x00FF00FFu;                                                             \
        o += (b_ >> 8) & 0x00FF00FFu;                                                      \
    } while (0)
#define SWAR_READ(acc, e, o, b, first)                                                     \
    do {                                                                                   \
        int32_t l0_ = (int32_t)((e) & 0xFFFFu) - (b), l1_ = (int32_t)((o) & 0xFFFFu) - (b); \
        int32_t l2_ = (int32_t)((e) >> 16) - (b), l3_ = (int32_t)((o) >> 16) - (b);        \
        if (first) {                                                                       \
            (acc)[0] = l0_, (acc)[1] = l1_, (acc)[2] = l2_, (acc)[3] = l3_;                \
        } else {                                                                           \
            (acc)[0] += l0_, (acc)[1] += l1_, (acc)[2] += l2_, (acc)[3] += l3_;            \
        }                                                                                  \
    } while (0)

/* 4 (words = 1) or 8 (words = 2) neurons */
ALWAYS_INLINE void sum_bin_swar(const int8_t *base, uint32_t stride, const uint16_t *idx,
                                uint32_t n, int32_t *acc, const int words)
{
    for (uint32_t k0 = 0;; k0 += CHUNK) {
        uint32_t k1 = n - k0 < CHUNK ? n : k0 + CHUNK, e0 = 0, o0 = 0, e1 = 0, o1 = 0;
        for (uint32_t k = k0; k < k1; k++) {
            const int8_t *c = base + (size_t)idx[k] * stride;
            uint32_t w;
            memcpy(&w, c, 4);
            SWAR_LANES(e0, o0, w);
            if (words == 2) {
                memcpy(&w, c + 4, 4);
                SWAR_LANES(e1, o1, w);
            }
        }
        int32_t b = 128 * (int32_t)(k1 - k0);
        SWAR_READ(acc, e0, o0, b, k0 == 0);
        if (words == 2) SWAR_READ(acc + 4, e1, o1, b, k0 == 0);
        if (k1 == n) break;
    }
}
static void sum_bin_4(const int8_t *b, uint32_t s, const uint16_t *x, uint32_t n, int32_t *a)
{
    sum_bin_swar(b, s, x, n, a, 1);
}
static void sum_bin_8(const int8_t *b, uint32_t s, const uint16_t *x, uint32_t n, int32_t *a)
{
    sum_bin_swar(b, s, x, n, a, 2);
}

/* values times 4 neurons' weights, in registers */
static void sum_val_4(const int8_t *base, uint32_t stride, const uint16_t *idx,
                      const int16_t *val, uint32_t n, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (uint32_t k = 0; k < n; k++) {
        const int8_t *c = base + (size_t)idx[k] * stride;
        int32_t v = val[k];
        a0 += v * c[0];
        a1 += v * c[1];
        a2 += v * c[2];
        a3 += v * c[3];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* tiles of 16 neurons (4 words) amortise the per-tile work, a multiple of 4 below that, or
 * a partial tile below 4 */
#define WIDEST 16u
static uint32_t tile_width(uint32_t r) { return r >= 16 ? 16 : (r >= 4 ? r & ~3u : r); }

#define SUM_BIN_TILE(w)                                                                    \
    (((w) & 3) == 0 ? (sum_bin_words(base, stride, idx, n, acc, w), 1) : 0)

static void sum_bin_words(const int8_t *base, uint32_t stride, const uint16_t *idx,
                          uint32_t n, int32_t *acc, uint32_t w)
{
    uint32_t q = 0;
    for (; q + 8 <= w; q += 8) sum_bin_8(base + q, stride, idx, n, acc + q);
    if (q < w) sum_bin_4(base + q, stride, idx, n, acc + q);
}
#else
/* W neurons (a constant): int16 lanes per chunk, carried to int32. The column piece is copied
 * into a local array first: compilers then keep the lanes in vector registers (without the
 * copy gcc 12 neither vectorises the loop nor keeps the lanes in registers). */
#define WIDEST 64u
ALWAYS_INLINE void sum_bin_w(const int8_t *restrict base, uint32_t stride,
                             const uint16_t *restrict idx, uint32_t n, int32_t *restrict acc,
                             const uint32_t W)
{
    int32_t out[64];
    for (uint32_t i = 0; i < W; i++) out[i] = 0;
    for (uint32_t k0 = 0; k0 < n; k0 += CHUNK) {
        uint32_t k1 = n - k0 < CHUNK ? n : k0 + CHUNK;
        int16_t t[64];
        for (uint32_t i = 0; i < W; i++) t[i] = 0;
        for (uint32_t k = k0; k < k1; k++) {
            int8_t c[64];
            memcpy(c, base + (size_t)idx[k] * stride, W);
            for (uint32_t i = 0; i < W; i++) t[i] = (int16_t)(t[i] + c[i]);
        }
        for (uint32_t i = 0; i < W; i++) out[i] += t[i];
    }
    for (uint32_t i = 0; i < W; i++) acc[i] = out[i];
}
static void sum_bin_64(const int8_t *b, uint32_t s, const uint16_t *x, uint32_t n, int32_t *a)
{
    sum_bin_w(b, s, x, n, a, 64);
}
static void sum_bin_32(const int8_t *b, uint32_t s, const uint16_t *x, uint32_t n, int32_t *a)
{
    sum_bin_w(b, s, x, n, a, 32);
}
static void sum_bin_16(const int8_t *b, uint32_t s, const uint16_t *x, uint32_t n, int32_t *a)
{
    sum_bin_w(b, s, x, n, a, 16);
}
static void sum_bin_8(const int8_t *b, uint32_t s, const uint16_t *x, uint32_t n, int32_t *a)
{
    sum_bin_w(b, s, x, n, a, 8);
}

/* the widest tile for the remaining r neurons: 64, 32, 16 or 8, else a partial tile of r */
static uint32_t tile_width(uint32_t r)
{
    return r >= 64 ? 64 : r >= 32 ? 32 : r >= 16 ? 16 : r >= 8 ? 8 : r;
}
#define SUM_BIN_TILE(w)                                                                    \
    ((w) == 64 ? (sum_bin_64(base, stride, idx, n, acc), 1)                                \
     : (w) == 32 ? (sum_bin_32(base, stride, idx, n, acc), 1)                              \
     : (w) == 16 ? (sum_bin_16(base, stride, idx, n, acc), 1)                              \
     : (w) == 8 ? (sum_bin_8(base, stride, idx, n, acc), 1) : 0)
#endif

/* acc[i] = sum over listed columns j of M[j][i], i < w (M from the tile's first neuron) */
static void sum_bin(const int8_t *base, uint32_t stride, const uint16_t *idx, uint32_t n,
                    int32_t *acc, uint32_t w)
{
    if (SUM_BIN_TILE(w)) return;
    for (uint32_t i = 0; i < w; i++) acc[i] = 0;          /* a partial tile */
    for (uint32_t k = 0; k < n; k++) {
        const int8_t *c = base + (size_t)idx[k] * stride;
        for (uint32_t i = 0; i < w; i++) acc[i] += c[i];
    }
}

#if EL_SWAR
#define SUM_BIN_COLS(M, n, i0, idx, k, acc, w) sum_bin((M) + (i0), n, idx, k, acc, w)
#else
/* sum_bin of the tile at neuron i0 of M [.][n]. The last tile of a layer at least 8 wide,
 * when partial (w < 8, so i0 + w = n), takes the last w of the 8-wide sums ending at the row's
 * end: vector code instead of a scalar loop (the 8 - w columns before it are summed again and
 * dropped; only weights are read). */
static void sum_bin_cols(const int8_t *M, uint32_t n, uint32_t i0, const uint16_t *idx,
                         uint32_t k, int32_t *acc, uint32_t w)
{
    if (w < 8 && n >= 8) {
        int32_t t[8];
        sum_bin_8(M + n - 8, n, idx, k, t);
        for (uint32_t q = 0; q < w; q++) acc[q] = t[8 - w + q];
        return;
    }
    sum_bin(M + i0, n, idx, k, acc, w);
}
#define SUM_BIN_COLS sum_bin_cols
#endif

/* values times columns, int32 (el_layer_prepare proved |W x| < 2^31) */
static void sum_val32(const int8_t *base, uint32_t stride, const uint16_t *idx,
                      const int16_t *val, uint32_t n, int32_t *acc, uint32_t w)
{
#if EL_SWAR
    if ((w & 3) == 0) {
        for (uint32_t q = 0; q < w; q += 4) sum_val_4(base + q, stride, idx, val, n, acc + q);
        return;
    }
#endif
    for (uint32_t i = 0; i < w; i++) acc[i] = 0;
    if (w == 64 && !EL_SWAR) {
        int32_t t[64];
        for (uint32_t i = 0; i < 64; i++) t[i] = 0;
        for (uint32_t k = 0; k < n; k++) {
            int8_t c[64];
            memcpy(c, base + (size_t)idx[k] * stride, 64);
            int32_t v = val[k];
            for (uint32_t i = 0; i < 64; i++) t[i] += v * c[i];
        }
        for (uint32_t i = 0; i < 64; i++) acc[i] = t[i];
        return;
    }
    for (uint32_t k = 0; k < n; k++) {
        const int8_t *c = base + (size_t)idx[k] * stride;
        int32_t v = val[k];
        for (uint32_t i = 0; i < w; i++) acc[i] += v * c[i];
    }
}

/* values times columns, int64 (wide inputs on a wide layer: the rare case) */
static void sum_val64(const int8_t *base, uint32_t stride, const uint16_t *idx,
                      const int16_t *val, uint32_t n, int64_t *acc, uint32_t w)
{
    for (uint32_t i = 0; i < w; i++) acc[i] = 0;
    for (uint32_t k = 0; k < n; k++) {
        const int8_t *c = base + (size_t)idx[k] * stride;
        int64_t v = val[k];
        for (uint32_t i = 0; i < w; i++) acc[i] += v * c[i];
    }
}

/* ---- neuron updates of a tile ---------------------------------------------------------------- */

/* int64 reference: the equations exactly as numpy's int64 (wrapping); R = U > theta */
static void neurons64(const el_layer *L, uint32_t i0, uint32_t w, const int32_t *acc32,
                      const int64_t *acc64, const int32_t *rec, int32_t *cur, int32_t *mem,
                      uint8_t *spk, el_clip *clip)
{
    for (uint32_t q = 0; q < w; q++) {
        uint32_t i = i0 + q;
        int64_t a = acc64 ? acc64[q] : acc32[q];
        int64_t c = el_add64(el_apply_decay(cur[i], L->alpha[i]), el_shift(a, L->w_shift));
        if (L->bias) c = el_add64(c, L->bias[i]);
        int64_t u = el_apply_decay(mem[i], L->beta[i]);
        int fired = 0;
        if (L->spiking) {
            fired = mem[i] > L->threshold[i];
            if (L->vT) c = el_add64(c, el_shift(rec[q], L->v_shift));
        }
        int64_t cs = el_sat(c, L->state_lo, L->state_hi);
        if (fired && L->reset == EL_RESET_ZERO_IMMEDIATE) u = 0;
        u = el_add64(u, cs);
        if (fired && L->reset == EL_RESET_ZERO) u = 0;
        if (fired && L->reset == EL_RESET_SUBTRACT) u = el_sub64(u, L->threshold[i]);
        int64_t us = el_sat(u, L->state_lo, L->state_hi);
        if (clip) {
            clip->cur += cs != c;
            clip->mem += us != u;
        }
        cur[i] = (int32_t)cs;
        mem[i] = (int32_t)us;
        if (spk) spk[i] = us > L->threshold[i];
    }
}

#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__)
/* gcc hoists the two constants out of a loop and then no longer forms SSAT */
static inline int32_t sat16(int32_t v)
{
    int32_t r;
    __asm__("ssat %0, #16, %1" : "=r"(r) : "r"(v));
    return r;
}
#else
static inline int32_t sat16(int32_t v) { return v < -32768 ? -32768 : (v > 32767 ? 32767 : v); }
#endif

/* int32 update of 16-bit state layers whose bounds el_layer_prepare proved; R = S (the spike
 * vector, = U > theta). Branch-free per neuron (a loop compilers vectorise); the constant
 * arguments select one of the compiled variants. shift(a, s) = ((a + half) >> r) << l with
 * r = max(-s, 0), l = max(s, 0), half = 2^(r-1) (0 when r = 0). */
ALWAYS_INLINE void neurons32_k(const el_layer *L, uint32_t i0, uint32_t w, const int32_t *acc,
                               const int32_t *rec, int32_t *cur, int32_t *mem, uint8_t *spk,
                               el_clip *clip, const int spiking, const int reset,
                               const int has_bias, const int count)
{
    const int ws = L->w_shift, vs = L->v_shift;
    const int wr = ws < 0 ? -ws : 0, wl = ws > 0 ? ws : 0;
    const int vr = vs < 0 ? -vs : 0, vl = vs > 0 ? vs : 0;
    const int32_t wh = wr ? (int32_t)1 << (wr - 1) : 0, vh = vr ? (int32_t)1 << (vr - 1) : 0;
    const uint16_t *al = L->alpha + i0, *be = L->beta + i0;
    const int32_t *th = L->threshold + i0, *bi = has_bias ? L->bias + i0 : 0;
    int32_t *cu = cur + i0, *me = mem + i0;
    uint8_t *sp = spiking ? spk + i0 : 0;
    uint32_t nc = 0, nm = 0;
    for (uint32_t q = 0; q < w; q++) {
        int32_t c = ((cu[q] * (int32_t)al[q] + 2048) >> 12)
                    + (int32_t)((uint32_t)((acc[q] + wh) >> wr) << wl);
        if (has_bias) c += bi[q];
        int32_t u = (me[q] * (int32_t)be[q] + 2048) >> 12;
        int32_t fired = 0;
        if (spiking) {
            fired = sp[q];
            c += (int32_t)((uint32_t)((rec[q] + vh) >> vr) << vl);
        }
        int32_t cs = sat16(c);
        if (spiking && reset == EL_RESET_ZERO_IMMEDIATE) u = fired ? 0 : u;
        u += cs;
        if (spiking && reset == EL_RESET_ZERO) u = fired ? 0 : u;
        if (spiking && reset == EL_RESET_SUBTRACT) u -= fired ? th[q] : 0;
        int32_t us = sat16(u);
        if (count) {
            nc += cs != c;
            nm += us != u;
        }
        cu[q] = cs;
        me[q] = us;
        if (spiking) sp[q] = (uint8_t)(us > th[q]);
    }
    if (count) {
        clip->cur += nc;
        clip->mem += nm;
    }
}

#define N32(SP, RS, B, C) neurons32_k(L, i0, w, acc, rec, cur, mem, spk, clip, SP, RS, B, C)

static void neurons32(const el_layer *L, uint32_t i0, uint32_t w, const int32_t *acc,
                      const int32_t *rec, int32_t *cur, int32_t *mem, uint8_t *spk,
                      el_clip *clip)
{
    int b = L->bias != 0, c = clip != 0;
    int kind = L->spiking ? L->reset : 3;
    switch (kind * 4 + b * 2 + c) {
    case 0: N32(1, EL_RESET_SUBTRACT, 0, 0); break;
    case 1: N32(1, EL_RESET_SUBTRACT, 0, 1); break;
    case 2: N32(1, EL_RESET_SUBTRACT, 1, 0); break;
    case 3: N32(1, EL_RESET_SUBTRACT, 1, 1); break;
    case 4: N32(1, EL_RESET_ZERO, 0, 0); break;
    case 5: N32(1, EL_RESET_ZERO, 0, 1); break;
    case 6: N32(1, EL_RESET_ZERO, 1, 0); break;
    case 7: N32(1, EL_RESET_ZERO, 1, 1); break;
    case 8: N32(1, EL_RESET_ZERO_IMMEDIATE, 0, 0); break;
    case 9: N32(1, EL_RESET_ZERO_IMMEDIATE, 0, 1); break;
    case 10: N32(1, EL_RESET_ZERO_IMMEDIATE, 1, 0); break;
    case 11: N32(1, EL_RESET_ZERO_IMMEDIATE, 1, 1); break;
    case 12: N32(0, 0, 0, 0); break;
    case 13: N32(0, 0, 0, 1); break;
    case 14: N32(0, 0, 1, 0); break;
    default: N32(0, 0, 1, 1); break;
    }
}

/* ---- the layer step ------------------------------------------------------------------------- */

void el_layer_run(const el_layer *L, el_step_lists *lists, uint32_t n_ev, int with_values,
                  int32_t *cur, int32_t *mem, uint8_t *spk, el_clip *clip, el_step_info *info)
{
    const uint32_t n = L->n_out;
    const int ref = el_lif_force_reference || !L->fast32;
    uint32_t n_f = 0, n_sp = 0;
    if (L->spiking && L->vT) {
        if (ref) {                                     /* R = U > theta, literally */
            for (uint32_t k = 0; k < n; k++)
                if (mem[k] > L->threshold[k]) lists->fired[n_f++] = (uint16_t)k;
        } else {
            n_f = nonzero_bytes(spk, n, 0, lists->fired);
        }
    }
    int32_t acc[WIDEST], rec[WIDEST];
    int64_t acc64[WIDEST];
    for (uint32_t i0 = 0, w; i0 < n; i0 += w) {
        w = tile_width(n - i0);
        int wide = with_values && !L->acc32;
        if (!with_values) SUM_BIN_COLS(L->wT, n, i0, lists->in, n_ev, acc, w);
        else if (!wide) sum_val32(L->wT + i0, n, lists->in, lists->val, n_ev, acc, w);
        else sum_val64(L->wT + i0, n, lists->in, lists->val, n_ev, acc64, w);
        if (n_f) SUM_BIN_COLS(L->vT, n, i0, lists->fired, n_f, rec, w);
        else for (uint32_t q = 0; q < w; q++) rec[q] = 0;
        if (ref) neurons64(L, i0, w, acc, wide ? acc64 : 0, rec, cur, mem, spk, clip);
        else neurons32(L, i0, w, acc, rec, cur, mem, spk, clip);
        if (spk) n_sp += nonzero_bytes(spk + i0, w, i0, lists->out + n_sp);
    }
    info->active = n_ev;
    info->fired = n_f;
    info->spikes = n_sp;
    info->values = (uint32_t)(with_values && n_ev);
}
