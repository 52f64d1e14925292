/* The device engine (see el_engine.h; docs/protocol.md sections 8.4 and 14). */
#include "el_engine.h"

#include <stdio.h>
#include <string.h>

#include "el_head.h"

int el_feature_layer(const el_image_desc *d)
{
    int last = -1;
    for (uint32_t k = 0; k + 1 < d->n_layers; k++)
        if (d->layer[k].flags & EL_IMG_F_SPIKING) last = (int)k;
    if (last >= 0) return last;
    for (uint32_t k = 0; k < d->n_layers; k++)
        if (d->layer[k].flags & EL_IMG_F_SPIKING) last = (int)k;
    return last < 0 ? (int)d->n_layers - 1 : last;
}

static float rdf32(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#define TAKE(ptr, type, count, name, suffix)                                                 \
    do {                                                                                     \
        ptr = (type *)el_arena_alloc(a, name, suffix, (uint32_t)((count) * sizeof(type)));   \
        if (!ptr) return -1;                                                                 \
    } while (0)

/* everything after the network's buffers, in the order of section 14 */
static int layout_rest(el_engine *e, const el_image_desc *d, const uint8_t *img,
                       const el_config *cfg, const el_head_desc *hd, el_arena *a)
{
    el_net *net = &e->net;
    int f = el_feature_layer(d);
    e->feature_layer = f;
    TAKE(e->features, uint16_t, d->layer[f].n_out, "features", 0);
    TAKE(e->output, int32_t, net->n_out, "output", 0);
    e->has_head = hd != 0;
    e->hep_planned = hd && cfg->hep;
    el_head *h = &e->head;
    memset(h, 0, sizeof *h);
    if (hd) {
        h->d = *hd;
        h->N = 0;
        h->n_params = 0;
        for (uint32_t k = 1; k <= hd->K; k++) {
            h->N += hd->sizes[k];
            h->n_params += (uint32_t)hd->sizes[k] * hd->sizes[k - 1] + hd->sizes[k];
        }
        float *w;
        TAKE(w, float, h->n_params, "head.weights", 0);
        for (uint32_t k = 0; k < hd->K; k++) {
            h->W[k] = w;
            w += (uint32_t)hd->sizes[k + 1] * hd->sizes[k];
            h->b[k] = w;
            w += hd->sizes[k + 1];
        }
        TAKE(h->mean, float, 2u * hd->sizes[0], "head.norm", 0);
        h->std = h->mean + hd->sizes[0];
        uint32_t blocks = 0;                               /* the S_k of the Newton solve */
        for (uint32_t k = 2; k <= hd->K; k++) blocks += (uint32_t)hd->sizes[k] * hd->sizes[k];
        TAKE(h->work, el_f64, blocks + 6 * h->N, "head.work", 0);
    }
    char name[80];
    for (uint32_t q = 0; q < cfg->n_lpl; q++) {
        const el_image_layer *I = &d->layer[cfg->lpl_layer[q]];
        const el_lpl_params *p = &cfg->lpl[q];
        el_lpl_state *st = &e->lpl_st[q];
        uint32_t nl = I->name_len < sizeof name - 1 ? I->name_len : sizeof name - 1;
        memcpy(name, img + I->name_off, nl);
        name[nl] = 0;
        memset(st, 0, sizeof *st);
        TAKE(st->z_prev, int16_t, I->n_out, name, ".lpl.z_prev");
        TAKE(st->mean, int32_t, I->n_out, name, ".lpl.mean");
        TAKE(st->var, int32_t, I->n_out, name, ".lpl.var");
        TAKE(st->count, int32_t, 1, name, ".lpl.count");
        if (p->pre.k) TAKE(st->pre_trace, int32_t, I->n_in, name, ".lpl.pre_trace");
        if (p->post.k) TAKE(st->post_trace, int32_t, I->n_out, name, ".lpl.post_trace");
        if (p->decorr) TAKE(st->cov, int32_t, I->n_out * I->n_out, name, ".lpl.cov");
        if (p->stores_target) TAKE(st->target, int32_t, I->n_out, name, ".lpl.target");
        if (p->epoch_log2) {
            TAKE(st->epoch_pre, int32_t, I->n_in, name, ".lpl.epoch_pre");
            TAKE(st->epoch_post, int32_t, I->n_out, name, ".lpl.epoch_post");
            TAKE(st->epoch_steps, int32_t, 1, name, ".lpl.epoch_steps");
        }
    }
    if (e->hep_planned) {
        uint32_t n_acc = 0;
        for (uint32_t k = 1; k <= hd->K; k++) {
            n_acc += hd->sizes[k];
            if (k >= 2) n_acc += (uint32_t)hd->sizes[k] * hd->sizes[k - 1];
        }
        TAKE(h->acc, el_f64, n_acc, "head.accumulators", 0);
        TAKE(h->nudged, el_f64, h->N, "head.nudged_state", 0);
        uint32_t R = cfg->replay;
        if (R) {
            TAKE(h->r_counts, uint8_t, R * d->layer[f].n_out, "head.replay.counts", 0);
            TAKE(h->r_scores, uint16_t, R * net->n_out, "head.replay.scores", 0);
            TAKE(h->r_labels, uint8_t, R, "head.replay.labels", 0);
            TAKE(h->r_lengths, uint16_t, R, "head.replay.lengths", 0);
            TAKE(h->r_ring, int32_t, 2, "head.replay.ring", 0);
        }
    }
    if (el_net_take_scratch(net, a)) return -1;
    if (cfg->n_lpl) {
        uint32_t need = 0;
        for (uint32_t q = 0; q < cfg->n_lpl; q++) {
            const el_image_layer *I = &d->layer[cfg->lpl_layer[q]];
            uint32_t b = el_lpl_scratch_bytes(&cfg->lpl[q], I->n_in, I->n_out);
            if (b > need) need = b;
        }
        TAKE(e->lpl_scratch, uint8_t, need, "lpl.scratch", 0);
    }
    return 0;
}

static int layout(el_engine *e, const el_image_desc *d, const uint8_t *img, uint32_t len,
                  const el_config *cfg, const el_head_desc *hd, el_arena *a, int keep_net)
{
    a->keep = (uint8_t)keep_net;
    int r = el_net_load(&e->net, d, img, len, a, 1, a->base && !keep_net);
    a->keep = 0;
    if (r) return -1;
    return layout_rest(e, d, img, cfg, hd, a);
}

int64_t el_engine_measure(const el_image_desc *desc, const uint8_t *img, const el_config *cfg,
                          const el_head_desc *head, uint32_t free_bytes, char *err,
                          uint32_t err_len, uint32_t *need, uint32_t *avail)
{
    static el_engine probe;               /* large: not on the stack */
    el_arena a;
    el_arena_init(&a, 0, free_bytes, 4);
    if (layout(&probe, desc, img, 0, cfg, head, &a, 0)) {
        snprintf(err, err_len, "%s", a.error);
        *need = a.fail_need;
        *avail = a.fail_free;
        return -1;
    }
    return a.used;
}

static void fill_head(el_engine *e)
{
    el_head *h = &e->head;
    const uint8_t *f = h->d.floats;
    uint32_t n0 = h->d.sizes[0];
    for (uint32_t j = 0; j < n0; j++) h->mean[j] = rdf32(f + 4 * j);
    for (uint32_t j = 0; j < n0; j++) h->std[j] = rdf32(f + 4 * (n0 + j));
    f += 8 * n0;
    for (uint32_t i = 0; i < h->n_params; i++) h->W[0][i] = rdf32(f + 4 * i);   /* contiguous */
}

int el_engine_build(el_engine *e, const el_image_desc *desc, const uint8_t *img, uint32_t len,
                    const el_config *cfg, const el_head_desc *head, el_arena *arena,
                    int keep_net, el_counters *counters)
{
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    e->c = counters;
    if (layout(e, desc, img, len, cfg, head, arena, keep_net)) return -1;
    if (head) fill_head(e);
    for (uint32_t q = 0; q < cfg->n_lpl; q++) {
        const el_layer *L = &e->net.layer[cfg->lpl_layer[q]];
        el_lpl_state_init(&e->lpl_st[q], &cfg->lpl[q], L->n_in, L->n_out, cfg->lpl_var_init[q]);
    }
    e->rng = el_rng_init(cfg->seed);
    const el_image_layer *last = &desc->layer[desc->n_layers - 1];
    uint64_t bits = 0;
    for (int q = 7; q >= 0; q--) bits = bits << 8 | img[last->name_off - 32 + 12 + q];
    memcpy(&e->out_scale, &bits, 8);
    if (!keep_net) el_engine_reset_state(e);
    return 0;
}

void el_engine_reset_state(el_engine *e)
{
    el_net_reset_state(&e->net);
    e->open = 0;
}

void el_engine_begin_sample(el_engine *e)
{
    el_engine_reset_state(e);
    e->T = 0;
    memset(e->features, 0, 2 * (size_t)e->net.layer[e->feature_layer].n_out);
    for (uint32_t i = 0; i < e->net.n_out; i++)
        e->output[i] = e->cfg.readout == EL_READOUT_MEAN ? 0 : INT32_MIN;
    e->sample_spikes = 0;
    e->open = 1;
    e->classified = 0;
}

static int32_t input_value(const void *x, int kind, uint32_t j)
{
    return kind == EL_X_INT16 ? ((const int16_t *)x)[j]
                              : (kind == EL_X_INT8 ? ((const int8_t *)x)[j]
                                                   : ((const uint8_t *)x)[j]);
}

/* LPL of entry q on layer k (after the network step: the layer's input and spikes of this
 * step are still in their buffers, and W_k is not used again this step): pre = the layer
 * input << A, post = its spikes << A; with a learning epoch (epoch_log2 = e > 0) their sums
 * over 2^e steps << (A - e), every 2^e-th step (el_lpl_epoch_step) */
static void lpl_step(el_engine *e, uint32_t q, uint32_t k)
{
    el_net *net = &e->net;
    el_layer *L = &net->layer[k];
    el_act pre, post = {net->spk[k], EL_ACT_U8};
    if (k > 0) {
        pre.v = net->spk[k - 1];
        pre.kind = EL_ACT_U8;
    } else {
        pre.v = net->input;
        pre.kind = net->input_kind == EL_X_INT16 ? EL_ACT_I16 : EL_ACT_I8;
    }
    if (el_lpl_epoch_step(L->wT, L->n_in, L->n_out, pre, post, 0, &e->lpl_st[q],
                          &e->cfg.lpl[q], &e->rng, e->lpl_scratch, 1, 0))
        e->c->lpl_updates++;
}

/* counts[i] += v[i] for a 0/1 vector. Hosts: one plain loop, which vectorises (skipping zero
 * words costs a data-dependent branch a word there: about 0.05 us a step on the 256 hidden
 * neurons of bench_native's batch-1 run). Cortex-M (EL_SWAR): zero words skipped. */
static void add_counts(uint16_t *counts, const uint8_t *v, uint32_t n)
{
#if !EL_SWAR
    for (uint32_t i = 0; i < n; i++) counts[i] = (uint16_t)(counts[i] + v[i]);
#else
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t w;
        memcpy(&w, v + i, 4);
        if (!w) continue;
        for (uint32_t q = 0; q < 4; q++) counts[i + q] = (uint16_t)(counts[i + q] + v[i + q]);
    }
    for (; i < n; i++) counts[i] = (uint16_t)(counts[i] + v[i]);
#endif
}

void el_engine_step(el_engine *e, const void *x, int x_kind, int sample, int32_t *out)
{
    el_net *net = &e->net;
    uint32_t n_in = net->n_in, spikes = 0;
    /* the `input` buffer holds the step's input; on hosts a caller may have written it there
     * already (el_native_engine_run narrows wider inputs into it) */
#if !EL_SWAR
    const int in_place = x == net->input;
#else
    const int in_place = 0;
#endif
    if (net->input_kind == x_kind) {
        if (!in_place) memcpy(net->input, x, (size_t)n_in * (x_kind == EL_X_INT16 ? 2 : 1));
    } else if (net->input_kind == EL_X_INT16) {
        for (uint32_t j = 0; j < n_in; j++) ((int16_t *)net->input)[j] = (int16_t)input_value(x, x_kind, j);
    } else {
        for (uint32_t j = 0; j < n_in; j++) ((int8_t *)net->input)[j] = (int8_t)input_value(x, x_kind, j);
    }
    el_step_info info[EL_MAX_LAYERS];
    el_net_step1(net, 0, net->input, net->input_kind, -1, EL_MODE_AUTO, 0, info);
    double cycles = e->cost ? e->cost->c_step : 0.0;
    uint32_t q = 0;
    for (uint32_t k = 0; k < net->n_layers; k++) {
        el_layer *L = &net->layer[k];
        if (L->spiking) spikes += info[k].spikes;
        while (q < e->cfg.n_lpl && e->cfg.lpl_layer[q] < k) q++;
        int learn = e->lpl_on && q < e->cfg.n_lpl && e->cfg.lpl_layer[q] == k;
        if (learn) lpl_step(e, q, k);
        if (e->cost)
            cycles += el_layer_cycles(e->cost, L->n_in, L->n_out, info[k].active,
                                      (int)info[k].values, info[k].fired, learn,
                                      learn ? e->cfg.lpl[q].epoch_log2 : 0);
    }
    uint32_t last = net->n_layers - 1;
    const uint8_t *os = net->output_spiking ? net->spk[last] : 0;
    const int32_t *om = net->mem[last];
    if (sample) {
        const uint8_t *fs = net->spk[e->feature_layer];
        if (fs) add_counts(e->features, fs, net->layer[e->feature_layer].n_out);
        for (uint32_t i = 0; i < net->n_out; i++) {
            int32_t u = os ? os[i] : om[i];
            if (e->cfg.readout == EL_READOUT_MEAN) {
                const int32_t lim = 524288;                 /* 2^31 / 4096 */
                u = u < -lim ? -lim : (u > lim ? lim : u);
                e->output[i] = (int32_t)((uint32_t)e->output[i] + (uint32_t)u);
            } else if (u > e->output[i]) {
                e->output[i] = u;
            }
        }
        e->T++;
        e->sample_spikes += spikes;
    } else if (out) {
        for (uint32_t i = 0; i < net->n_out; i++) out[i] = os ? os[i] : om[i];
    }
    e->c->steps++;
    if (e->cost) {
        e->c->cycles += cycles;
        e->c->priced_steps++;
    }
    e->c->spikes += spikes;
    e->c->input_spikes += info[0].active;
    if (os) e->c->output_spikes += info[last].spikes;
    if (e->keepalive) e->keepalive(e->keepalive_ctx);
}

uint32_t el_engine_n_scores(const el_engine *e)
{
    return e->has_head ? e->head.d.sizes[e->head.d.K] : e->net.n_out;
}

void el_engine_end_sample(el_engine *e, el_result *r, uint8_t *scores_f32)
{
    el_head_sample s;
    el_head_current(e, &s);
    r->steps = e->T;
    r->spikes = e->sample_spikes;
    e->open = 0;
    e->c->samples++;
    r->n_scores = (uint16_t)el_engine_n_scores(e);
    if (!e->has_head) {
        r->kind = 0;
        double best = 0;
        r->prediction = 0;
        for (uint32_t c = 0; c < e->net.n_out; c++) {
            double v = el_head_score(e, c);
            if (c == 0 || v > best) {
                best = v;
                r->prediction = (int)c;
            }
            float f = (float)v;
            memcpy(scores_f32 + 4 * c, &f, 4);
        }
        return;
    }
    if (e->cfg.track_features > 0 && e->lpl_on) el_head_track(e);
    r->kind = 1;
    r->prediction = el_head_logits(e, &s, scores_f32);
    e->classified = 1;
}

void el_engine_teach(el_engine *e, uint32_t label) { el_head_teach(e, label); }
