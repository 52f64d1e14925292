/* Sample-mode blobs (see el_blob.h; docs/protocol.md sections 8.3, 8.6, 8.7). */
#include "el_blob.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "el_head.h"
#include "el_lpl_codes.h"

#define CONFIG_HEADER 48u
#define LPL_ENTRY 72u

static uint32_t u16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t u32(const uint8_t *p) { return u16(p) | u16(p + 2) << 16; }

/* BAD_PARAM arg1 of a magic or a run of n reserved bytes: its first 4 bytes little-endian
   (zero-filled when the run is shorter) */
static uint32_t run_u32(const uint8_t *p, uint32_t n)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < n && i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static double f64(const uint8_t *p)
{
    uint64_t v = (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32;
    double d;
    memcpy(&d, &v, 8);
    return d;
}
static float f32(const uint8_t *p)
{
    uint32_t v = u32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}
static uint32_t f32_bits(double v)
{
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static int finite(double v) { return v == v && v - v == 0.0; }

static int length_error(el_blob_error *e, const char *what, uint32_t got, uint32_t want)
{
    e->kind = EL_BLOB_LENGTH;
    e->arg0 = got;
    e->arg1 = want;
    snprintf(e->text, sizeof e->text, "%s blob of %lu B, its header implies %lu B", what,
             (unsigned long)got, (unsigned long)want);
    return -1;
}

static int param_error(el_blob_error *e, const char *what, uint32_t offset, uint32_t value,
                       const char *why)
{
    e->kind = EL_BLOB_PARAM;
    e->arg0 = offset;
    e->arg1 = value;
    snprintf(e->text, sizeof e->text, "%s blob: byte %lu: %s", what, (unsigned long)offset, why);
    return -1;
}

#define EXPECT(cond, off, val, why) \
    do { if (!(cond)) return param_error(err, WHAT, (off), (uint32_t)(val), (why)); } while (0)

/* ---- config (section 8.3) ------------------------------------------------------------------ */

#define WHAT "config"
int el_config_decode(const uint8_t *b, uint32_t len, el_config *cfg, el_blob_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (len < CONFIG_HEADER) return length_error(err, WHAT, len, CONFIG_HEADER);
    uint32_t readout = b[6], n_lpl = b[7], hep = b[12], J = b[13], R = u16(b + 14),
             repeats = u16(b + 16);
    double track = f64(b + 24), lr = f64(b + 32), amp = f64(b + 40);
    EXPECT(memcmp(b, "ELCF", 4) == 0, 0, u32(b), "is not the magic 'ELCF'");
    EXPECT(u16(b + 4) == 1, 4, u16(b + 4), "is not config format 1");
    EXPECT(readout <= 1, 6, readout, "is not a readout (0 max, 1 mean)");
    EXPECT(n_lpl <= EL_MAX_LPL, 7, n_lpl, "LPL layers exceed 16");
    EXPECT(hep <= 1, 12, hep, "is not 0 (no hEP) or 1 (hEP)");
    EXPECT(u16(b + 18) == 0, 18, u16(b + 18), "is a reserved field and must be 0");
    EXPECT(u32(b + 20) == 0, 20, u32(b + 20), "is a reserved field and must be 0");
    EXPECT(finite(track) && track >= 0.0 && track < 1.0, 24, f32_bits(track),
           "track_features must lie in [0, 1)");
    if (hep) {
        EXPECT(J >= 1 && J <= EL_MAX_NUDGES, 13, J, "nudges must be 1..16");
        EXPECT(R <= 1024, 14, R, "replay must be 0..1024");
        EXPECT(repeats >= 1 && repeats <= 256 && (repeats == 1 || R >= 1), 16, repeats,
               "repeats must be 1..256 (> 1 needs replay >= 1)");
        EXPECT(finite(lr) && lr > 0, 32, f32_bits(lr), "lr must be finite and > 0");
        EXPECT(finite(amp) && amp > 0, 40, f32_bits(amp), "amplitude must be finite and > 0");
    } else {
        EXPECT(J == 0, 13, J, "must be 0 when hEP is off");
        EXPECT(R == 0, 14, R, "must be 0 when hEP is off");
        EXPECT(repeats == 0, 16, repeats, "must be 0 when hEP is off");
        EXPECT(lr == 0.0, 32, f32_bits(lr), "must be 0 when hEP is off");
        EXPECT(amp == 0.0, 40, f32_bits(amp), "must be 0 when hEP is off");
    }
    uint32_t want = CONFIG_HEADER + LPL_ENTRY * n_lpl + 16 * J;
    if (len != want) return length_error(err, WHAT, len, want);
    for (uint32_t i = 0; i < n_lpl; i++) {
        const uint8_t *e = b + CONFIG_HEADER + LPL_ENTRY * i;
        uint32_t base = CONFIG_HEADER + LPL_ENTRY * i;
        int pad = 0;
        for (int q = 1; q < 8; q++) pad |= e[q];
        EXPECT(!pad, base + 1, run_u32(e + 1, 7), "reserved bytes must be 0");
        EXPECT(i == 0 || e[0] > cfg->lpl_layer[i - 1], base, e[0],
               "LPL layer indices must increase");
        uint32_t off, val;
        if (el_lpl_block_parse(e + 8, &cfg->lpl[i], &cfg->lpl_var_init[i], &off, &val))
            return param_error(err, WHAT, base + 8 + off, val, "LPL block field out of range");
        cfg->lpl_layer[i] = e[0];
    }
    const uint8_t *t = b + CONFIG_HEADER + LPL_ENTRY * n_lpl;
    for (uint32_t j = 0; j < J; j++) {
        double v = f64(t + 8 * j);
        EXPECT(finite(v) && v >= -1.0 && v <= 1.0, (uint32_t)(t - b) + 8 * j, f32_bits(v),
               "nudge node must lie in [-1, 1]");
        cfg->nodes[j] = v;
    }
    for (uint32_t j = 0; j < J; j++) {
        double v = f64(t + 8 * (J + j));
        EXPECT(finite(v), (uint32_t)(t - b) + 8 * (J + j), f32_bits(v),
               "nudge weight must be finite");
        cfg->weights[j] = v;
    }
    cfg->readout = (uint8_t)readout;
    cfg->seed = u32(b + 8);
    cfg->track_features = track;
    cfg->n_lpl = (uint8_t)n_lpl;
    cfg->hep = (uint8_t)hep;
    cfg->J = (uint8_t)J;
    cfg->replay = (uint16_t)R;
    cfg->repeats = (uint16_t)repeats;
    cfg->lr = lr;
    cfg->amplitude = amp;
    return 0;
}
#undef WHAT

/* ---- head (section 8.6) -------------------------------------------------------------------- */

static uint32_t head_prefix(uint32_t K) { return 8 + (2 * (K + 1) + 7) / 8 * 8; }

#define WHAT "head"
int el_head_decode(const uint8_t *b, uint32_t len, el_head_desc *h, el_blob_error *err)
{
    memset(h, 0, sizeof *h);
    if (len < 8) return length_error(err, WHAT, len, 8);
    uint32_t K = b[6], act = b[7];
    EXPECT(memcmp(b, "ELHD", 4) == 0, 0, u32(b), "is not the magic 'ELHD'");
    EXPECT(u16(b + 4) == 1, 4, u16(b + 4), "is not head format 1");
    EXPECT(K >= 2 && K <= EL_HEAD_MAX_K, 6, K, "weight layers must be 2..8");
    EXPECT(act <= 1, 7, act, "is not an activation (0 tanh, 1 sigmoid)");
    if (len < 8 + 2 * (K + 1)) return length_error(err, WHAT, len, 8 + 2 * (K + 1));
    uint32_t n_par = 0;
    for (uint32_t i = 0; i <= K; i++) {
        uint32_t n = u16(b + 8 + 2 * i);
        EXPECT(n >= 1 && n <= EL_HEAD_MAX_WIDTH, 8 + 2 * i, n, "layer width must be 1..1024");
        h->sizes[i] = (uint16_t)n;
        if (i) n_par += n * h->sizes[i - 1] + n;
    }
    uint32_t pre = head_prefix(K);
    int pad = 0;
    uint32_t pad_at = 8 + 2 * (K + 1);
    for (uint32_t q = pad_at; q < pre && q < len; q++) pad |= b[q];
    EXPECT(!pad, pad_at, run_u32(b + pad_at, (pre < len ? pre : len) - pad_at),
           "padding must be 0");
    uint32_t want = pre + 32 + 8 * h->sizes[0] + 4 * n_par;
    if (len != want) return length_error(err, WHAT, len, want);
    const uint8_t *r = b + pre;
    double tol = f64(r), sw = f64(r + 8), damp = f64(r + 16);
    uint32_t max_iter = u32(r + 24), max_steps = u32(r + 28);
    EXPECT(finite(tol) && tol > 0 && tol < 1, pre, f32_bits(tol), "tol must lie in (0, 1)");
    EXPECT(finite(sw) && sw > 0, pre + 8, f32_bits(sw), "newton_switch must be > 0");
    EXPECT(finite(damp) && damp > 0 && damp <= 1, pre + 16, f32_bits(damp),
           "damping must lie in (0, 1]");
    EXPECT(max_iter >= 1 && max_iter <= 1000, pre + 24, max_iter, "max_iter must be 1..1000");
    EXPECT(max_steps >= 1 && max_steps <= 100000, pre + 28, max_steps,
           "max_steps must be 1..100000");
    uint32_t at = pre + 32, n0 = h->sizes[0];
    for (uint32_t j = 0; j < 2 * n0 + n_par; j++) {
        float v = f32(b + at + 4 * j);
        int positive = j >= n0 && j < 2 * n0;
        EXPECT(finite(v) && (!positive || v > 0), at + 4 * j, u32(b + at + 4 * j),
               positive ? "feature std must be finite and > 0" : "values must be finite");
    }
    h->K = (uint8_t)K;
    h->activation = (uint8_t)act;
    h->tol = tol;
    h->newton_switch = sw;
    h->damping = damp;
    h->max_iter = max_iter;
    h->max_steps = max_steps;
    h->floats = b + at;
    return 0;
}
#undef WHAT

/* ---- weights (section 8.7) ----------------------------------------------------------------- */

static uint32_t pad4(uint32_t n) { return (n + 3u) & ~3u; }

static void put(uint8_t *out, uint32_t *pos, const void *src, uint32_t n)
{
    if (out) memcpy(out + *pos, src, n);
    *pos += n;
}

static void put16(uint8_t *out, uint32_t *pos, uint32_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(out, pos, b, 2);
}

static void put32(uint8_t *out, uint32_t *pos, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(out, pos, b, 4);
}

static void align(uint8_t *out, uint32_t *pos)
{
    while (*pos & 3u) {
        if (out) out[*pos] = 0;
        (*pos)++;
    }
}

static void put_i32s(uint8_t *out, uint32_t *pos, const int32_t *a, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) put32(out, pos, (uint32_t)a[i]);
}

static void put_f32s(uint8_t *out, uint32_t *pos, const float *a, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &a[i], 4);
        put32(out, pos, u);
    }
}

/* the optional LPL state arrays of a weights blob section, in order, by part bit (bit i: array
 * i present): pre_trace, post_trace, cov, target, then the learning epoch's epoch_pre,
 * epoch_post, epoch_steps (bits 4..6, all three or none) */
#define LPL_PARTS 7
#define LPL_PART_BITS 0x7Fu

static void lpl_optional(const el_lpl_state *st, uint32_t n_in, uint32_t n_out,
                         int32_t **arr, uint32_t *cnt)
{
    int32_t *a[LPL_PARTS] = {st->pre_trace, st->post_trace, st->cov, st->target,
                             st->epoch_pre, st->epoch_post, st->epoch_steps};
    uint32_t c[LPL_PARTS] = {n_in, n_out, n_out * n_out, n_out, n_in, n_out, 1};
    memcpy(arr, a, sizeof a);
    memcpy(cnt, c, sizeof c);
}

static uint32_t lpl_parts(const el_lpl_state *st)
{
    int32_t *arr[LPL_PARTS];
    uint32_t cnt[LPL_PARTS], parts = 0;
    lpl_optional(st, 0, 0, arr, cnt);
    for (int f = 0; f < LPL_PARTS; f++) parts |= arr[f] ? 1u << f : 0u;
    return parts;
}

/* bytes of the optional arrays of a section with these part bits */
static uint32_t lpl_parts_bytes(uint32_t parts, uint32_t n_in, uint32_t n_out)
{
    el_lpl_state none;
    int32_t *arr[LPL_PARTS];
    uint32_t cnt[LPL_PARTS], b = 0;
    memset(&none, 0, sizeof none);
    lpl_optional(&none, n_in, n_out, arr, cnt);
    for (int f = 0; f < LPL_PARTS; f++) b += (parts >> f & 1u) ? 4 * cnt[f] : 0;
    return b;
}

static int has_replay(const el_engine *e) { return e->hep_planned && e->cfg.replay > 0; }

uint32_t el_weights_encode(const el_engine *e, uint8_t *out)
{
    uint32_t pos = 0;
    const el_head *h = &e->head;
    put(out, &pos, "ELWT", 4);
    put16(out, &pos, 1);
    /* every section: LPL layers, head weights (bit 0), replay (1), PRNG (2), feature
     * statistics (3) */
    uint8_t hdr[2] = {e->cfg.n_lpl, (uint8_t)((e->has_head ? 1 | 8 : 0) | (has_replay(e) ? 2 : 0)
                                             | 4)};
    put(out, &pos, hdr, 2);
    put32(out, &pos, e->rng.key);
    put32(out, &pos, e->rng.counter);
    for (uint32_t q = 0; q < e->cfg.n_lpl; q++) {
        uint32_t k = e->cfg.lpl_layer[q];
        const el_layer *L = &e->net.layer[k];
        const el_lpl_state *st = &e->lpl_st[q];
        uint8_t head[4] = {(uint8_t)k, (uint8_t)lpl_parts(st), 0, 0};
        put(out, &pos, head, 4);
        put32(out, &pos, L->n_in);
        put32(out, &pos, L->n_out);
        for (uint32_t i = 0; i < L->n_out; i++)
            for (uint32_t j = 0; j < L->n_in; j++)
                put(out, &pos, &L->wT[(size_t)j * L->n_out + i], 1);
        align(out, &pos);
        for (uint32_t i = 0; i < L->n_out; i++) put16(out, &pos, (uint16_t)st->z_prev[i]);
        align(out, &pos);
        put_i32s(out, &pos, st->mean, L->n_out);
        put_i32s(out, &pos, st->var, L->n_out);
        put_i32s(out, &pos, st->count, 1);
        int32_t *arr[LPL_PARTS];
        uint32_t cnt[LPL_PARTS];
        lpl_optional(st, L->n_in, L->n_out, arr, cnt);
        for (int f = 0; f < LPL_PARTS; f++)
            if (arr[f]) put_i32s(out, &pos, arr[f], cnt[f]);
    }
    if (e->has_head) {
        uint8_t k4[4] = {h->d.K, 0, 0, 0};
        put(out, &pos, k4, 4);
        for (uint32_t i = 0; i <= h->d.K; i++) put16(out, &pos, h->d.sizes[i]);
        align(out, &pos);
        put_f32s(out, &pos, h->W[0], h->n_params);
        put_f32s(out, &pos, h->mean, 2u * h->d.sizes[0]);
    }
    if (has_replay(e)) {
        uint32_t R = e->cfg.replay, nh = e->net.layer[e->feature_layer].n_out, no = e->net.n_out;
        put16(out, &pos, R);
        put16(out, &pos, nh);
        put16(out, &pos, no);
        put16(out, &pos, 0);
        put32(out, &pos, (uint32_t)h->r_ring[0]);
        put32(out, &pos, (uint32_t)h->r_ring[1]);
        put(out, &pos, h->r_counts, R * nh);
        align(out, &pos);
        for (uint32_t i = 0; i < R * no; i++) put16(out, &pos, h->r_scores[i]);
        align(out, &pos);
        put(out, &pos, h->r_labels, R);
        align(out, &pos);
        for (uint32_t i = 0; i < R; i++) put16(out, &pos, h->r_lengths[i]);
        align(out, &pos);
    }
    return pos;
}

#define WHAT "weights"
/* a part of the engine's own state, or BAD_PARAM at byte 6 with the blob's n_lpl (what the
 * reference device answers) */
#define SAME(cond) EXPECT(cond, 6, b[6], "weights blob does not match this engine's learning " \
                                          "state (layers, parts or sizes differ)")
#define VALUE(cond, why) EXPECT(cond, 16, 0, why)

enum { S_HEAD = 1, S_REPLAY = 2, S_RNG = 4, S_NORM = 8 };

static int lpl_entry(const el_engine *e, uint32_t k)
{
    for (uint32_t q = 0; q < e->cfg.n_lpl; q++)
        if (e->cfg.lpl_layer[q] == k) return (int)q;
    return -1;
}

/* A whole or partial weights blob (section 8.7): pass 0 checks its structure (the decoder's
 * checks), 1 that every section is a part of the engine's own state, 2 the values, 3 writes.
 * Nothing is written unless every check passed; what the blob does not carry stays. */
int el_weights_apply(el_engine *e, const uint8_t *b, uint32_t len, el_blob_error *err)
{
    const el_head *h = &e->head;
    if (len < 16) return length_error(err, WHAT, len, 16);
    uint32_t sections = b[7];
    EXPECT(memcmp(b, "ELWT", 4) == 0, 0, u32(b), "is not the magic 'ELWT'");
    EXPECT(u16(b + 4) == 1, 4, u16(b + 4), "is not weights format 1");
    EXPECT(b[6] <= EL_MAX_LPL && b[6] <= e->net.n_layers, 6, b[6], "more LPL sections than layers");
    EXPECT(!(sections & ~0xFu), 7, sections, "sets undefined section bits");
    EXPECT((sections & S_RNG) || (u32(b + 8) == 0 && u32(b + 12) == 0), 8, u32(b + 8),
           "PRNG fields must be 0 without the PRNG section");
    for (int pass = 0; pass < 4; pass++) {
        uint32_t pos = 16;
#define NEED(n) do { if ((uint64_t)pos + (n) > len) return length_error(err, WHAT, len, pos + (n)); } while (0)
        int last = -1;
        for (uint32_t s = 0; s < b[6]; s++) {
            NEED(12);
            uint32_t k = b[pos], parts = b[pos + 1], n_in = u32(b + pos + 4), n_out = u32(b + pos + 8);
            if (pass == 0) {
                EXPECT((int)k > last && k < e->net.n_layers, pos, k, "is not an increasing layer index");
                EXPECT(!(parts & ~LPL_PART_BITS), pos + 1, parts, "sets undefined part bits");
                EXPECT(u16(b + pos + 2) == 0, pos + 2, u16(b + pos + 2), "is a reserved field and must be 0");
                EXPECT(n_in >= 1 && n_in <= (1u << 20), pos + 4, n_in, "n_in must be 1..2^20");
                EXPECT(n_out >= 1 && n_out <= (1u << 20), pos + 8, n_out, "n_out must be 1..2^20");
            }
            last = (int)k;
            pos += 12;
            uint32_t sz = pad4(n_in * n_out) + pad4(2 * n_out) + 8 * n_out + 4 +
                          lpl_parts_bytes(parts, n_in, n_out);
            NEED(sz);
            int q = lpl_entry(e, k);
            el_lpl_state *st = q >= 0 ? &e->lpl_st[q] : 0;
            const el_layer *L = &e->net.layer[k];
            if (pass == 1)
                SAME(st && L->n_in == n_in && L->n_out == n_out && lpl_parts(st) == parts);
            const uint8_t *w = b + pos;
            const uint8_t *zp = w + pad4(n_in * n_out);
            const uint8_t *mv = zp + pad4(2 * n_out);
            const uint8_t *rest = mv + 8 * n_out + 4;
            if (pass == 2) {
                for (uint32_t i = 0; i < n_out; i++)
                    VALUE((int32_t)u32(mv + 4 * (n_out + i)) >= 0, "negative variance");
                int32_t count = (int32_t)u32(mv + 8 * n_out);
                VALUE(count >= 0 && (uint32_t)count <= e->cfg.lpl[q].warmup,
                      "step count outside [0, warmup]");
                if (st->epoch_steps) {
                    /* the sums n = epoch_steps steps can add up: spikes in [0, n], the layer
                     * input in n times its range (the network input's for layer 0) */
                    const uint8_t *ep = rest + lpl_parts_bytes(parts & 0xFu, n_in, n_out);
                    const uint8_t *es = ep + 4 * n_in + 4 * n_out;
                    int64_t n = (int32_t)u32(es);
                    VALUE(n >= 0 && n < (int64_t)1 << e->cfg.lpl[q].epoch_log2,
                          "epoch step count outside [0, 2^epoch_log2 - 1]");
                    int64_t lo = 0, hi = 1;
                    if (k == 0) {
                        hi = ((int64_t)1 << (e->net.input_bits - 1)) - 1;
                        lo = -hi - 1;
                    }
                    for (uint32_t i = 0; i < n_out; i++) {
                        int64_t v = (int32_t)u32(ep + 4 * (n_in + i));
                        VALUE(v >= 0 && v <= n, "epoch spike sum outside [0, epoch steps]");
                    }
                    for (uint32_t j = 0; j < n_in; j++) {
                        int64_t v = (int32_t)u32(ep + 4 * j);
                        VALUE(v >= n * lo && v <= n * hi,
                              "epoch input sum outside epoch steps x the input range");
                    }
                }
            }
            if (pass == 3) {
                int8_t *wT = e->net.layer[k].wT;
                for (uint32_t i = 0; i < n_out; i++)
                    for (uint32_t j = 0; j < n_in; j++) wT[(size_t)j * n_out + i] = (int8_t)w[(size_t)i * n_in + j];
                for (uint32_t i = 0; i < n_out; i++) st->z_prev[i] = (int16_t)u16(zp + 2 * i);
                for (uint32_t i = 0; i < n_out; i++) st->mean[i] = (int32_t)u32(mv + 4 * i);
                for (uint32_t i = 0; i < n_out; i++) st->var[i] = (int32_t)u32(mv + 4 * (n_out + i));
                st->count[0] = (int32_t)u32(mv + 8 * n_out);
                int32_t *arr[LPL_PARTS];
                uint32_t cnt[LPL_PARTS];
                lpl_optional(st, n_in, n_out, arr, cnt);
                for (int f = 0; f < LPL_PARTS; f++) {
                    if (!arr[f]) continue;
                    for (uint32_t i = 0; i < cnt[f]; i++) arr[f][i] = (int32_t)u32(rest + 4 * i);
                    rest += 4 * cnt[f];
                }
            }
            pos += sz;
        }
        if (sections & (S_HEAD | S_NORM)) {
            NEED(4);
            uint32_t K = b[pos], at = pos;
            if (pass == 0) {
                if (sections & S_HEAD) EXPECT(K >= 2 && K <= EL_HEAD_MAX_K, at, K, "head layers must be 2..8");
                else EXPECT(K == 0, at, K, "must be 0 without the head section");
                EXPECT(!b[at + 1] && !b[at + 2] && !b[at + 3], at + 1, run_u32(b + at + 1, 3),
                       "reserved bytes must be 0");
            }
            NEED(4 + 2 * (K + 1));
            uint32_t n_par = 0, n0 = u16(b + at + 4);
            for (uint32_t i = 0; i <= K; i++) {
                uint32_t n = u16(b + at + 4 + 2 * i);
                if (pass == 0) EXPECT(n >= 1 && n <= EL_HEAD_MAX_WIDTH, at + 4 + 2 * i, n, "head width must be 1..1024");
                if (i) n_par += n * u16(b + at + 4 + 2 * (i - 1)) + n;
            }
            pos = pad4(pos + 4 + 2 * (K + 1));
            uint32_t n_norm = (sections & S_NORM) ? 2 * n0 : 0;
            NEED(4 * n_par + 4 * n_norm);
            if (pass == 1) {
                int same = e->has_head && n0 == h->d.sizes[0];
                if (sections & S_HEAD) {
                    same = same && K == h->d.K;
                    for (uint32_t i = 0; same && i <= K; i++) same = u16(b + at + 4 + 2 * i) == h->d.sizes[i];
                }
                SAME(same);
            }
            for (uint32_t i = 0; i < n_par + n_norm; i++) {
                float v = f32(b + pos + 4 * i);
                if (pass == 2) {
                    VALUE(finite(v), "head values must be finite");
                    if (i >= n_par + n0) VALUE(v > 0, "feature std must be > 0");
                }
                if (pass == 3) {
                    if (i < n_par) h->W[0][i] = v;
                    else h->mean[i - n_par] = v;      /* mean, then std (contiguous) */
                }
            }
            pos += 4 * (n_par + n_norm);
        }
        if (sections & S_REPLAY) {
            NEED(16);
            uint32_t R = u16(b + pos), nh = u16(b + pos + 2), no = u16(b + pos + 4);
            int32_t rpos = (int32_t)u32(b + pos + 8), fill = (int32_t)u32(b + pos + 12);
            if (pass == 0) {
                EXPECT(R >= 1 && R <= 1024, pos, R, "replay entries must be 1..1024");
                EXPECT(u16(b + pos + 6) == 0, pos + 6, u16(b + pos + 6), "is a reserved field and must be 0");
            }
            pos += 16;
            const uint8_t *counts = b + pos;
            uint32_t sz = pad4(R * nh);
            const uint8_t *scores = b + pos + sz;
            sz += pad4(2 * R * no);
            const uint8_t *labels = b + pos + sz;
            sz += pad4(R);
            const uint8_t *lengths = b + pos + sz;
            sz += pad4(2 * R);
            NEED(sz);
            if (pass == 1)
                SAME(has_replay(e) && R == e->cfg.replay &&
                     nh == e->net.layer[e->feature_layer].n_out && no == e->net.n_out);
            if (pass == 2) {
                VALUE(rpos >= 0 && (uint32_t)rpos < R && fill >= 0 && (uint32_t)fill <= R,
                      "replay ring position or fill out of range");
                for (uint32_t i = 0; i < R * no; i++)
                    VALUE(finite(el_f16_to_f64((uint16_t)u16(scores + 2 * i))), "replay scores must be finite");
                for (int32_t i = 0; i < fill; i++) {
                    VALUE(labels[i] < h->d.sizes[h->d.K], "replay label out of range");
                    VALUE(u16(lengths + 2 * i) >= 1 && u16(lengths + 2 * i) <= 255, "replay length out of range");
                }
            }
            if (pass == 3) {
                el_head *hw = &e->head;
                memcpy(hw->r_counts, counts, R * nh);
                for (uint32_t i = 0; i < R * no; i++) hw->r_scores[i] = (uint16_t)u16(scores + 2 * i);
                memcpy(hw->r_labels, labels, R);
                for (uint32_t i = 0; i < R; i++) hw->r_lengths[i] = (uint16_t)u16(lengths + 2 * i);
                hw->r_ring[0] = rpos;
                hw->r_ring[1] = fill;
            }
            pos += sz;
        }
        if (pos != len) return length_error(err, WHAT, len, pos);
#undef NEED
    }
    if (sections & S_RNG) {
        e->rng.key = u32(b + 8);
        e->rng.counter = u32(b + 12);
    }
    return 0;
}
#undef WHAT
