/* Integer engine core (see el_engine.h). */
#include "el_engine.h"

#include <string.h>

int el_engine_feature_layer(const el_net *net)
{
    int last = -1;
    for (uint32_t k = 0; k + 1 < net->n_layers; k++)
        if (net->layer[k].spiking) last = (int)k;
    if (last >= 0) return last;
    for (uint32_t k = 0; k < net->n_layers; k++)
        if (net->layer[k].spiking) last = (int)k;
    return last;
}

int el_engine_load(el_engine *e, const el_image_desc *desc, const uint8_t *img, uint32_t len,
                   el_arena *arena, int with_features, uint32_t seed)
{
    memset(e, 0, sizeof *e);
    if (el_net_load(&e->net, desc, img, len, arena, 1)) return -1;
    e->feature_layer = el_engine_feature_layer(&e->net);
    if (e->feature_layer >= 0) {
        uint32_t n = e->net.layer[e->feature_layer].n_out;
        e->features = (uint16_t *)el_arena_alloc(arena, "features", 0, 2 * n);
        if (!e->features) return -1;
    }
    e->net.output = (int32_t *)el_arena_alloc(arena, "output", 0, 4 * e->net.n_out);
    if (!e->net.output) return -1;
    (void)with_features;
    e->rng = el_rng_init(seed);
    return 0;
}

int el_engine_plan_lpl(el_engine *e, int k, const el_lpl_params *p, int32_t var_init_q,
                       el_arena *arena, const char *name)
{
    el_layer *L = &e->net.layer[k];
    uint32_t ni = L->n_in, no = L->n_out;
    el_engine_lpl *q = &e->lpl[k];
    el_lpl_state *st = &q->st;
    memset(q, 0, sizeof *q);
    q->p = *p;
    /* the fields of lpl_rate.State, one buffer each, in field order */
#define FIELD(ptr, type, count, suffix)                                                  \
    do {                                                                                 \
        ptr = (type *)el_arena_alloc(arena, name, suffix, (uint32_t)((count) * sizeof(type))); \
        if (!ptr) return -1;                                                             \
    } while (0)
    FIELD(st->z_prev, int16_t, no, ".lpl.z_prev");
    FIELD(st->mean, int32_t, no, ".lpl.mean");
    FIELD(st->var, int32_t, no, ".lpl.var");
    FIELD(st->count, int32_t, 1, ".lpl.count");
    if (p->pre.k) FIELD(st->pre_trace, int32_t, ni, ".lpl.pre_trace");
    if (p->post.k) FIELD(st->post_trace, int32_t, no, ".lpl.post_trace");
    if (p->decorr) FIELD(st->cov, int32_t, no * no, ".lpl.cov");
    if (p->stores_target) FIELD(st->target, int32_t, no, ".lpl.target");
#undef FIELD
    el_lpl_state_init(st, p, ni, no, var_init_q);
    q->planned = 1;
    return 0;
}

/* scratch of the planned LPL layers: taken once, after every layer is planned */
static int lpl_scratch(el_engine *e, el_arena *arena)
{
    uint32_t need = 0, n = 0;
    for (uint32_t k = 0; k < e->net.n_layers; k++) {
        if (!e->lpl[k].planned) continue;
        const el_layer *L = &e->net.layer[k];
        uint32_t b = el_lpl_scratch_bytes(&e->lpl[k].p, L->n_in, L->n_out);
        if (b > need) need = b;
        if (L->n_in > n) n = L->n_in;
        if (L->n_out > n) n = L->n_out;
    }
    e->lpl_scratch = el_arena_alloc(arena, "lpl.scratch", 0, need);
    e->lpl_pre = (int32_t *)el_arena_alloc(arena, "lpl.activity", 0, 8 * n);
    if (!e->lpl_scratch || !e->lpl_pre) return -1;
    e->lpl_post = e->lpl_pre + n;
    return 0;
}

int el_engine_finish_plan(el_engine *e, el_arena *arena) { return lpl_scratch(e, arena); }

void el_engine_begin_sample(el_engine *e)
{
    el_net_reset_state(&e->net);
    if (e->features) memset(e->features, 0, 2 * (size_t)e->net.layer[e->feature_layer].n_out);
    for (uint32_t i = 0; i < e->net.n_out; i++)
        e->net.output[i] = e->readout == EL_READOUT_MEAN ? 0 : INT32_MIN;
    e->sample_steps = 0;
    e->sample_spikes = 0;
}

int el_engine_step(el_engine *e, const int16_t *x, int binary_in)
{
    el_net *net = &e->net;
    const uint8_t *s = 0;
    const int16_t *v = x;
    int ran = 0;
    uint32_t n_in0 = net->n_in, in_spk = 0;
    for (uint32_t j = 0; j < n_in0; j++) {
        int16_t xj = x[j];
        net->input[j] = (uint8_t)(xj < 0 ? 0 : (xj > 255 ? 255 : xj));
        in_spk += xj != 0;
    }
    if (binary_in) {
        s = net->input;
        v = 0;
    }
    for (uint32_t k = 0; k < net->n_layers; k++) {
        el_layer *L = &net->layer[k];
        e->work += el_layer_step(L, 1, v, s, net->cur[k], net->mem[k], net->spk[k],
                                 net->scratch, EL_MODE_AUTO, 0);
        e->work += L->n_out;
        uint32_t fired = 0;
        if (L->spiking)
            for (uint32_t i = 0; i < L->n_out; i++) fired += net->spk[k][i];
        if (L->spiking) e->sample_spikes += fired, e->spikes += fired;
        el_engine_lpl *q = &e->lpl[k];
        if (e->lpl_on && q->planned) {
            int A = q->p.act_frac;
            for (uint32_t j = 0; j < L->n_in; j++)
                e->lpl_pre[j] = (s ? (int32_t)s[j] : (int32_t)v[j]) << A;
            for (uint32_t i = 0; i < L->n_out; i++) e->lpl_post[i] = (int32_t)net->spk[k][i] << A;
            if (el_lpl_step(L->wT, L->n_in, L->n_out, e->lpl_pre, e->lpl_post, 0, &q->st, &q->p,
                            &e->rng, e->lpl_scratch, 1, 0)) {
                e->lpl_updates++;
                ran = 1;
            }
            e->work += (uint64_t)L->n_in * L->n_out;
        }
        s = net->spk[k];
        v = 0;
    }
    uint32_t last = net->n_layers - 1;
    if (e->features) {
        const uint8_t *f = net->spk[e->feature_layer];
        for (uint32_t i = 0; i < net->layer[e->feature_layer].n_out; i++)
            e->features[i] = (uint16_t)(e->features[i] + f[i]);
    }
    const uint8_t *os = net->output_spiking ? net->spk[last] : 0;
    const int32_t *om = net->mem[last];
    if (os)
        for (uint32_t i = 0; i < net->n_out; i++) e->output_spikes += os[i];
    if (e->readout == EL_READOUT_MEAN) {
        const int32_t lim = (int32_t)(((int64_t)1 << 31) / EL_SAMPLE_STEPS_MAX);
        for (uint32_t i = 0; i < net->n_out; i++) {
            int32_t u = os ? os[i] : om[i];
            u = u < -lim ? -lim : (u > lim ? lim : u);
            net->output[i] = (int32_t)((uint32_t)net->output[i] + (uint32_t)u);
        }
    } else {
        for (uint32_t i = 0; i < net->n_out; i++) {
            int32_t u = os ? os[i] : om[i];
            if (u > net->output[i]) net->output[i] = u;
        }
    }
    e->input_spikes += in_spk;
    e->steps++;
    e->sample_steps++;
    return ran;
}
