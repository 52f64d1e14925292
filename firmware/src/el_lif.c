/* Integer LIF layer step (equations in el_lif.h and docs/fixed-point.md section 5). */
#include "el_lif.h"

#include "el_fixed.h"

int el_lif_force_reference = 0;

static int64_t shifted_bound(int64_t v, int s)
{
    return s >= 0 ? v << s : (v >> -s) + 1;
}

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
        bound += shifted_bound(max_acc, L->w_shift);
        if (L->vT) {
            if (L->v_shift > 0 && L->n_out >= ((uint32_t)1 << (40 - L->v_shift))) return;
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

size_t el_lif_scratch_bytes(const el_layer *L)
{
    uint32_t n = L->n_in > L->n_out ? L->n_in : L->n_out;
    size_t b = 4 * (size_t)L->n_out + 2 * (size_t)n;            /* acc, index list */
    if (L->vT) b += 4 * (size_t)L->n_out;                          /* recurrent sums */
    return (b + 7) & ~(size_t)7;
}

/* acc[i] = sum over listed j of M[i][j], M input-major with n rows per column: the event
 * path (binary input: active inputs of W) and the recurrent sum (fired neurons of V) */
static void sum_columns(const int8_t *mT, uint32_t n, const uint16_t *list, uint32_t n_list,
                        int32_t *acc)
{
    for (uint32_t i = 0; i < n; i++) acc[i] = 0;
    for (uint32_t k = 0; k < n_list; k++) {
        const int8_t *col = mT + (size_t)list[k] * n;
        for (uint32_t i = 0; i < n; i++) acc[i] += col[i];
    }
}

static int32_t input_at(const void *x, int kind, uint32_t j)
{
    switch (kind) {
    case EL_X_INT8: return ((const int8_t *)x)[j];
    case EL_X_INT16: return ((const int16_t *)x)[j];
    default: return ((const uint8_t *)x)[j];
    }
}

/* dense: every nonzero input j (count or value) times its column; int32 when
 * el_layer_prepare proved |W x| < 2^31 */
static void acc_dense32(const el_layer *L, const void *x, int kind, int32_t *acc)
{
    uint32_t n = L->n_out;
    for (uint32_t i = 0; i < n; i++) acc[i] = 0;
    for (uint32_t j = 0; j < L->n_in; j++) {
        int32_t xj = input_at(x, kind, j);
        if (!xj) continue;
        const int8_t *col = L->wT + (size_t)j * n;
        for (uint32_t i = 0; i < n; i++) acc[i] += xj * col[i];
    }
}

/* dense int64 accumulator of neuron i (wide inputs on a wide layer: the rare case) */
static int64_t acc_dense64_row(const el_layer *L, const void *x, int kind, uint32_t i)
{
    int64_t a = 0;
    for (uint32_t j = 0; j < L->n_in; j++)
        a += (int64_t)input_at(x, kind, j) * L->wT[(size_t)j * L->n_out + i];
    return a;
}

/* the neurons that fired last step (U_k > theta_k): R of the recurrent term */
static uint32_t fired_list(const el_layer *L, const int32_t *mem, uint16_t *list)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < L->n_out; k++)
        if (mem[k] > L->threshold[k]) list[n++] = k;
    return n;
}

/* int64 reference neuron update: the equations exactly as numpy's int64 (wrapping) */
static void neurons64(const el_layer *L, const int32_t *acc, const void *x_wide, int kind,
                      const int32_t *rec, int32_t *cur, int32_t *mem, uint8_t *spk,
                      el_clip *clip)
{
    for (uint32_t i = 0; i < L->n_out; i++) {
        int64_t a = x_wide ? acc_dense64_row(L, x_wide, kind, i) : acc[i];
        int64_t c = el_add64(el_apply_decay(cur[i], L->alpha[i]), el_shift(a, L->w_shift));
        if (L->bias) c = el_add64(c, L->bias[i]);
        int64_t u = el_apply_decay(mem[i], L->beta[i]);
        int fired = 0;
        if (L->spiking) {
            fired = mem[i] > L->threshold[i];
            if (L->vT) c = el_add64(c, el_shift(rec[i], L->v_shift));
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

/* int32 neuron update for 16-bit state layers whose bounds el_layer_prepare proved */
static void neurons32(const el_layer *L, const int32_t *acc, const int32_t *rec, int32_t *cur,
                      int32_t *mem, uint8_t *spk, el_clip *clip)
{
    const int ws = L->w_shift, vs = L->v_shift;
    const int32_t lo = (int32_t)L->state_lo, hi = (int32_t)L->state_hi;
    const int32_t whalf = ws < 0 ? (int32_t)1 << (-ws - 1) : 0;
    const int32_t vhalf = vs < 0 ? (int32_t)1 << (-vs - 1) : 0;
    for (uint32_t i = 0; i < L->n_out; i++) {
        int32_t a = acc[i];
        int32_t c = ((cur[i] * (int32_t)L->alpha[i] + 2048) >> 12)
                    + (ws >= 0 ? (int32_t)((uint32_t)a << ws) : (a + whalf) >> -ws);
        if (L->bias) c += L->bias[i];
        int32_t u = (mem[i] * (int32_t)L->beta[i] + 2048) >> 12;
        int fired = 0;
        if (L->spiking) {
            fired = mem[i] > L->threshold[i];
            if (rec) {
                int32_t r = rec[i];
                c += vs >= 0 ? (int32_t)((uint32_t)r << vs) : (r + vhalf) >> -vs;
            }
        }
        int32_t cs = c < lo ? lo : (c > hi ? hi : c);
        if (fired && L->reset == EL_RESET_ZERO_IMMEDIATE) u = 0;
        u += cs;
        if (fired && L->reset == EL_RESET_ZERO) u = 0;
        if (fired && L->reset == EL_RESET_SUBTRACT) u -= L->threshold[i];
        int32_t us = u < lo ? lo : (u > hi ? hi : u);
        if (clip) {
            clip->cur += cs != c;
            clip->mem += us != u;
        }
        cur[i] = cs;
        mem[i] = us;
        if (spk) spk[i] = us > L->threshold[i];
    }
}

uint32_t el_layer_step(const el_layer *L, int batch, const void *x, int x_kind, int binary,
                       int32_t *cur, int32_t *mem, uint8_t *spk_out, void *scratch, int mode,
                       el_clip *clip)
{
    uint32_t n_in = L->n_in, n_out = L->n_out, seen = 0;
    size_t width = x_kind == EL_X_INT16 ? 2 : 1;
    int32_t *acc = (int32_t *)scratch;                   /* [n_out] */
    int32_t *rec = acc + n_out;                          /* [n_out] if recurrent */
    uint16_t *list = (uint16_t *)(L->vT ? rec + n_out : rec);   /* [max(n_in, n_out)] */
    int use32 = L->fast32 && !el_lif_force_reference;
    int has_rec = L->spiking && L->vT;
    for (int b = 0; b < batch; b++) {
        const void *xb = (const uint8_t *)x + (size_t)b * n_in * width;
        int32_t *cu = cur + (size_t)b * n_out, *me = mem + (size_t)b * n_out;
        uint8_t *so = spk_out ? spk_out + (size_t)b * n_out : 0;
        const void *wide = 0;
        if (binary && mode != EL_MODE_DENSE) {
            uint32_t n_act = 0;
            if (x_kind == EL_X_INT16) {
                const int16_t *v = (const int16_t *)xb;
                for (uint32_t j = 0; j < n_in; j++)
                    if (v[j]) list[n_act++] = (uint16_t)j;
            } else {
                const uint8_t *v = (const uint8_t *)xb;
                for (uint32_t j = 0; j < n_in; j++)
                    if (v[j]) list[n_act++] = (uint16_t)j;
            }
            seen += n_act;
            sum_columns(L->wT, n_out, list, n_act, acc);
        } else if (L->acc32 || binary) {
            acc_dense32(L, xb, x_kind, acc);
            seen += n_in;
        } else {
            wide = xb;
            seen += n_in;
        }
        if (has_rec) sum_columns(L->vT, n_out, list, fired_list(L, me, list), rec);
        if (use32)
            neurons32(L, acc, has_rec ? rec : 0, cu, me, so, clip);
        else
            neurons64(L, acc, wide, x_kind, has_rec ? rec : 0, cu, me, so, clip);
    }
    return seen;
}
