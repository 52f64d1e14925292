/* The firmware kernel as a host shared library (loaded by edgelearn/kernels/native.py).
 *
 * Same C as the firmware; the caller (Python) owns every byte of memory: it passes opaque
 * blocks of el_native_sizeof(...) bytes for the descriptors and an arena for the buffers.
 * Weights are exchanged row-major ([n_out][n_in], the image and numpy layout) and stored
 * input-major inside. ABI: bump EL_NATIVE_ABI on any signature change.
 *
 * Threads live here only (the firmware core is single-threaded): el_native_net_run splits a
 * batch into contiguous parts run on POSIX threads, each with its own descriptor copy and
 * lists; the sequences are independent, so no result depends on the thread count.
 */
#define _GNU_SOURCE               /* pthreads under -std=c99; thread placement on glibc */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "el_engine.h"
#include "el_fixed.h"
#include "el_lpl.h"
#include "el_lpl_codes.h"
#include "el_net.h"

#define EL_NATIVE_ABI 5
#define EL_NATIVE_MAX_THREADS 64

typedef struct {
    el_arena arena;
    el_counters counters;
    el_engine eng;
} native_engine;

int el_native_abi(void) { return EL_NATIVE_ABI; }

int el_native_selftest(void) { return el_fixed_selftest(); }

/* LPL weight updates so far per path: reference, sparse, window search */
void el_native_lpl_paths(uint32_t *out) { memcpy(out, el_lpl_path_count, sizeof el_lpl_path_count); }

/* rows of the blocked window search so far: scanned (marked bucket), scanned (wide window),
 * tested against the bitmap */
void el_native_lpl_window_rows(uint32_t *out)
{
    memcpy(out, el_lpl_window_rows, sizeof el_lpl_window_rows);
}

uint32_t el_native_sizeof(int what)
{
    switch (what) {
    case 0: return (uint32_t)sizeof(el_image_desc);
    case 1: return (uint32_t)sizeof(el_net);
    case 2: return (uint32_t)sizeof(native_engine);
    case 3: return (uint32_t)sizeof(el_arena);
    default: return 0;
    }
}

int el_native_check(const uint8_t *img, uint32_t len, el_image_desc *desc, char *err,
                    uint32_t err_len)
{
    return el_image_check(img, len, desc, err, err_len);
}

/* ---- batch network (the integer kernel's qrun) ------------------------------------------- */

int64_t el_native_net_load(el_net *net, const el_image_desc *desc, const uint8_t *img,
                           uint32_t len, uint8_t *mem, uint32_t size, int batch, char *err,
                           uint32_t err_len)
{
    el_arena a;
    el_arena_init(&a, mem, size, 8);
    if (el_net_load(net, desc, img, len, &a, batch, 1) || el_net_take_scratch(net, &a)) {
        snprintf(err, err_len, "%s", a.error);
        return -1;
    }
    net->output = 0;
    return a.used;
}

void el_native_net_reset(el_net *net) { el_net_reset_state(net); }

/* Working memory of el_native_net_run per thread: the step lists (el_step_scratch_bytes) */
uint32_t el_native_net_scratch_bytes(const el_net *net)
{
    return el_step_scratch_bytes(net->list_len);
}

/* What one thread of el_native_net_run does: sequences b0..b1-1, all T steps */
typedef struct {
    const el_net *net;
    const uint8_t *x;
    uint32_t T, b0, b1;
    int x_kind, binary, mode;
    int32_t *out, *cur_tr, *mem_tr;
    uint8_t *spk_tr, *scratch;
    int count;                          /* clip counts wanted */
    el_clip clip[EL_MAX_LAYERS];
    const void *cpus;                   /* glibc: the CPUs the thread may move to once started */
} run_part;

#if defined(__GLIBC__)
/* Linux places a new thread on its creator's CPU when every CPU looks equally idle (say after
 * the caller slept) and moves it only milliseconds later: the parts then ran one after the
 * other (measured: 2 threads as slow as 1). So a part starts on another CPU the process may
 * use, then may move anywhere. Placement only: the results do not depend on it. */
static void place(pthread_attr_t *at, const cpu_set_t *all, uint32_t i)
{
    int here = sched_getcpu(), seen = 0, want = -1;
    uint32_t others = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, all) && c != here) others++;
    if (others == 0) return;
    for (int c = 0; c < CPU_SETSIZE && want < 0; c++)
        if (CPU_ISSET(c, all) && c != here && (uint32_t)seen++ == (i - 1) % others) want = c;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(want, &one);
    pthread_attr_setaffinity_np(at, sizeof one, &one);
}

static void unpin(const run_part *p)
{
    if (p->cpus)
        pthread_setaffinity_np(pthread_self(), sizeof(cpu_set_t), (const cpu_set_t *)p->cpus);
}
#else
static void unpin(const run_part *p) { (void)p; }
#endif

/* The sequences are independent: a thread steps its own sequences with its own copy of the
 * network descriptor (the shared weights are read only; state rows b0..b1-1 are its own) and
 * its own lists, so no output depends on how the batch is split. */
static void *run_sequences(void *arg)
{
    run_part *p = (run_part *)arg;
    unpin(p);
    el_net net = *p->net;
    el_step_lists_bind(&net.lists, p->scratch, net.list_len);
    uint32_t B = (uint32_t)net.batch, total = 0, last = net.n_layers - 1, n_out = net.n_out;
    for (uint32_t k = 0; k < net.n_layers; k++) total += B * net.layer[k].n_out;
    el_clip *c = p->count ? p->clip : 0;
    size_t row_bytes = (size_t)net.n_in * (p->x_kind == EL_X_INT16 ? 2 : 1);
    for (uint32_t t = 0; t < p->T; t++) {
        const uint8_t *xt = p->x + (size_t)t * B * row_bytes;
        for (uint32_t b = p->b0; b < p->b1; b++) {
            el_net_step1(&net, (int)b, xt + b * row_bytes, p->x_kind, p->binary, p->mode, c, 0);
            uint32_t off = 0;
            for (uint32_t k = 0; k < net.n_layers; k++) {
                uint32_t n = net.layer[k].n_out;
                size_t at = (size_t)t * total + off + (size_t)b * n, row = (size_t)b * n;
                if (p->cur_tr) memcpy(p->cur_tr + at, net.cur[k] + row, 4 * (size_t)n);
                if (p->mem_tr) memcpy(p->mem_tr + at, net.mem[k] + row, 4 * (size_t)n);
                if (p->spk_tr) {
                    if (net.spk[k]) memcpy(p->spk_tr + at, net.spk[k] + row, n);
                    else memset(p->spk_tr + at, 0, n);
                }
                off += B * n;
            }
            int32_t *o = p->out + ((size_t)t * B + b) * n_out;
            if (net.output_spiking)
                for (uint32_t i = 0; i < n_out; i++) o[i] = net.spk[last][(size_t)b * n_out + i];
            else
                memcpy(o, net.mem[last] + (size_t)b * n_out, 4 * (size_t)n_out);
        }
    }
    return 0;
}

/* T steps of x [T][B][n_in] of kind x_kind (EL_X_INT8: int8, EL_X_INT16: int16); out
 * [T][B][n_out] (spikes 0/1 or readout membrane).
 * Optional traces, each [T][sum_k B n_k] with layer k at offset B * sum_{k'<k} n_k':
 * cur_tr, mem_tr (int32) and spk_tr (uint8; zeros for the readout). clips [L][2] (may be 0).
 * threads >= 1 (at most EL_NATIVE_MAX_THREADS and B): the batch is split into that many
 * contiguous parts run in parallel, each with its own el_native_net_scratch_bytes() of
 * `scratch` (threads * that many bytes); the results do not depend on `threads`. A thread
 * that cannot be started runs its part on the calling thread. */
void el_native_net_run(el_net *net, const void *x, int x_kind, uint32_t T, int binary, int mode,
                       int32_t *out, int32_t *cur_tr, int32_t *mem_tr, uint8_t *spk_tr,
                       uint32_t *clips, uint8_t *scratch, int threads)
{
    uint32_t B = (uint32_t)net->batch;
    uint32_t n = threads < 1 ? 1 : (uint32_t)threads;
    if (n > EL_NATIVE_MAX_THREADS) n = EL_NATIVE_MAX_THREADS;
    if (n > B) n = B;
    if (n == 0) n = 1;
    run_part part[EL_NATIVE_MAX_THREADS];
    pthread_t tid[EL_NATIVE_MAX_THREADS];
    int started[EL_NATIVE_MAX_THREADS];
    uint32_t bytes = el_native_net_scratch_bytes(net);
#if defined(__GLIBC__)
    cpu_set_t all;
    int placed = n > 1 && pthread_getaffinity_np(pthread_self(), sizeof all, &all) == 0;
#endif
    for (uint32_t i = 0; i < n; i++) {
        run_part *p = &part[i];
        *p = (run_part){net, x, T, B * i / n, B * (i + 1) / n, x_kind, binary, mode, out, cur_tr,
                        mem_tr, spk_tr, scratch + (size_t)i * bytes, clips != 0, {{0, 0}}, 0};
        if (i == 0) {
            started[i] = 0;
            continue;
        }
        pthread_attr_t at;
        pthread_attr_init(&at);
#if defined(__GLIBC__)
        if (placed) {
            place(&at, &all, i);
            p->cpus = &all;
        }
#endif
        started[i] = pthread_create(&tid[i], &at, run_sequences, p) == 0;
        pthread_attr_destroy(&at);
    }
    for (uint32_t i = 0; i < n; i++)
        if (!started[i]) run_sequences(&part[i]);
    for (uint32_t i = 1; i < n; i++)
        if (started[i]) pthread_join(tid[i], 0);
    if (clips)
        for (uint32_t k = 0; k < net->n_layers; k++) {
            clips[2 * k] = clips[2 * k + 1] = 0;
            for (uint32_t i = 0; i < n; i++) {
                clips[2 * k] += part[i].clip[k].cur;
                clips[2 * k + 1] += part[i].clip[k].mem;
            }
        }
}

static void weights_io(el_layer *L, int8_t *w, int set)
{
    for (uint32_t i = 0; i < L->n_out; i++)
        for (uint32_t j = 0; j < L->n_in; j++) {
            int8_t *p = &L->wT[(size_t)j * L->n_out + i];
            if (set) *p = w[(size_t)i * L->n_in + j];
            else w[(size_t)i * L->n_in + j] = *p;
        }
}

/* layer k's weights row-major [n_out][n_in]: copied out (set = 0) or in (set = 1) */
void el_native_net_weights(el_net *net, uint32_t k, int8_t *w, int set)
{
    weights_io(&net->layer[k], w, set);
}

/* layer k's state [B][n_out] (int32): copied out (set = 0) or in (set = 1; the spike vector
 * follows: S = U > theta) */
void el_native_net_state(el_net *net, uint32_t k, int32_t *cur, int32_t *mem, int set)
{
    size_t n = 4 * (size_t)net->batch * net->layer[k].n_out;
    if (set) {
        memcpy(net->cur[k], cur, n);
        memcpy(net->mem[k], mem, n);
        const el_layer *L = &net->layer[k];
        if (net->spk[k])
            for (uint32_t b = 0; b < (uint32_t)net->batch; b++)
                for (uint32_t i = 0; i < L->n_out; i++)
                    net->spk[k][b * L->n_out + i] =
                        net->mem[k][b * L->n_out + i] > L->threshold[i];
    } else {
        memcpy(cur, net->cur[k], n);
        memcpy(mem, net->mem[k], n);
    }
}

/* ---- LPL ---------------------------------------------------------------------------------- */

uint32_t el_native_lpl_scratch_bytes(const uint8_t *codes, uint32_t n_in, uint32_t n_out)
{
    el_lpl_params p;
    int32_t var_init;
    uint32_t bad_off, bad_val;
    if (el_lpl_block_parse(codes, &p, &var_init, &bad_off, &bad_val)) return 0;
    return el_lpl_scratch_bytes(&p, n_in, n_out);
}

/* the PRNG position and the step's counters back to the caller (stats may be NULL) */
static void put_result(const el_rng *r, const el_lpl_stats *s, uint32_t *rng, uint32_t *stats)
{
    rng[0] = r->key;
    rng[1] = r->counter;
    if (stats) {
        stats[0] = s->n_changed;
        stats[1] = s->n_clipped;
        stats[2] = s->n_saturated;
        stats[3] = s->skipped;
    }
}

/* One step on input-major wT with the state arrays given one by one (NULL where absent);
 * rng = {key, counter} updated; stats[4] = changed, clipped, saturated, skipped. */
int el_native_lpl_step(int8_t *wT, uint32_t n_in, uint32_t n_out, const int32_t *pre,
                       const int32_t *post, const int32_t *gain, int16_t *z_prev, int32_t *mean,
                       int32_t *var, int32_t *count, int32_t *pre_trace, int32_t *post_trace,
                       int32_t *cov, int32_t *target, const uint8_t *codes, uint32_t *rng,
                       void *scratch, int fast, uint32_t *stats)
{
    el_lpl_params p;
    int32_t var_init;
    uint32_t bad_off, bad_val;
    if (el_lpl_block_parse(codes, &p, &var_init, &bad_off, &bad_val)) return -1;
    el_lpl_state st = {z_prev, mean, var, count, pre_trace, post_trace, cov, target, 0, 0, 0};
    el_rng r = {rng[0], rng[1]};
    el_lpl_stats s;
    el_act xa = {pre, EL_ACT_Q}, ya = {post, EL_ACT_Q};
    int ran = el_lpl_step(wT, n_in, n_out, xa, ya, gain, &st, &p, &r, scratch, fast, &s);
    put_result(&r, &s, rng, stats);
    return ran;
}

/* The learning-epoch step (el_lpl_epoch_step) with the state arrays in the order of
 * lpl_rate.State (state[0..10]: z_prev .. target, epoch_pre, epoch_post, epoch_steps; NULL
 * where absent): pre [n_in] integers of kind EL_ACT_U8 / I8 / I16 (pre_kind), post [n_out]
 * 0/1 spikes; rng and stats as el_native_lpl_step. Returns 1 when the rule ran, 0 on a step
 * that only accumulated, -1 for a refused block or kind. */
int el_native_lpl_epoch_step(int8_t *wT, uint32_t n_in, uint32_t n_out, const void *pre,
                             int pre_kind, const uint8_t *post, void *const *state,
                             const uint8_t *codes, uint32_t *rng, void *scratch, int fast,
                             uint32_t *stats)
{
    el_lpl_params p;
    int32_t var_init;
    uint32_t bad_off, bad_val;
    if (el_lpl_block_parse(codes, &p, &var_init, &bad_off, &bad_val)) return -1;
    if (pre_kind != EL_ACT_U8 && pre_kind != EL_ACT_I8 && pre_kind != EL_ACT_I16) return -1;
    if (p.epoch_log2 && (!state[8] || !state[9] || !state[10])) return -1;
    el_lpl_state st = {(int16_t *)state[0], (int32_t *)state[1], (int32_t *)state[2],
                       (int32_t *)state[3], (int32_t *)state[4], (int32_t *)state[5],
                       (int32_t *)state[6], (int32_t *)state[7], (int32_t *)state[8],
                       (int32_t *)state[9], (int32_t *)state[10]};
    el_rng r = {rng[0], rng[1]};
    el_lpl_stats s;
    el_act xa = {pre, pre_kind}, ya = {post, EL_ACT_U8};
    int ran = el_lpl_epoch_step(wT, n_in, n_out, xa, ya, 0, &st, &p, &r, scratch, fast, &s);
    put_result(&r, &s, rng, stats);
    return ran;
}

/* ---- engine (the host target's fast path) ------------------------------------------------ */

/* An engine for a checked image with `n_lpl` LPL layers (indices, 64-byte blocks), readout
 * 0 max / 1 mean, seed; no head (the host computes the head in numpy). */
int el_native_engine_load(native_engine *ne, const el_image_desc *desc, const uint8_t *img,
                          uint32_t len, uint8_t *mem, uint32_t size, int readout, uint32_t seed,
                          uint32_t n_lpl, const uint8_t *layers, const uint8_t *blocks,
                          char *err, uint32_t err_len)
{
    el_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.readout = (uint8_t)readout;
    cfg.seed = seed;
    if (n_lpl > EL_MAX_LPL) {
        snprintf(err, err_len, "at most %d LPL layers", EL_MAX_LPL);
        return -1;
    }
    cfg.n_lpl = (uint8_t)n_lpl;
    for (uint32_t q = 0; q < n_lpl; q++) {
        uint32_t off, val;
        cfg.lpl_layer[q] = layers[q];
        if (layers[q] >= desc->n_layers ||
            el_lpl_block_parse(blocks + 64 * q, &cfg.lpl[q], &cfg.lpl_var_init[q], &off, &val)) {
            snprintf(err, err_len, "LPL entry %u: bad layer or block field at byte %u",
                     (unsigned)q, (unsigned)off);
            return -1;
        }
    }
    el_arena_init(&ne->arena, mem, size, 4);
    memset(&ne->counters, 0, sizeof ne->counters);
    if (el_engine_build(&ne->eng, desc, img, len, &cfg, 0, &ne->arena, 0, &ne->counters)) {
        snprintf(err, err_len, "%s", ne->arena.error);
        return -1;
    }
    return 0;
}

void el_native_engine_set(native_engine *ne, int lpl_on, uint32_t key, uint32_t counter)
{
    ne->eng.lpl_on = (uint8_t)lpl_on;
    ne->eng.rng.key = key;
    ne->eng.rng.counter = counter;
}

void el_native_engine_rng(const native_engine *ne, uint32_t *rng)
{
    rng[0] = ne->eng.rng.key;
    rng[1] = ne->eng.rng.counter;
}

void el_native_engine_begin(native_engine *ne) { el_engine_begin_sample(&ne->eng); }

/* T steps of x [T][n_in] of the open sample, `width` bytes a value: 1 (int8), 2 (int16) or 8
 * (int64), integers within input_bits. A step whose values are wider than the network's
 * input (int8 when input_bits <= 8, else int16) is narrowed, in a loop that vectorises,
 * straight into the engine's input buffer (el_engine_step then copies nothing): the values
 * the engine's own conversion, value by value, gives. So a caller holding int64 arrays
 * (numpy's integer kernel's type) needs no converted copy of the whole sequence. buf is not
 * used (kept for the ABI; it was the narrowed step's buffer). Returns 0, or -1 (nothing run)
 * for another width. */
int el_native_engine_run(native_engine *ne, const void *x, uint32_t width, uint32_t T,
                         void *buf)
{
    uint32_t n_in = ne->eng.net.n_in;
    int kind = ne->eng.net.input_kind;
    void *in = ne->eng.net.input;                /* narrowed steps go straight to the input */
    (void)buf;
    if (width != 1 && width != 2 && width != 8) return -1;
    for (uint32_t t = 0; t < T; t++) {
        const uint8_t *xt = (const uint8_t *)x + (size_t)t * n_in * width;
        if (width == 1) {
            el_engine_step(&ne->eng, xt, EL_X_INT8, 1, 0);
        } else if (width == 2 && kind == EL_X_INT16) {
            el_engine_step(&ne->eng, xt, EL_X_INT16, 1, 0);
        } else if (width == 2) {
            const int16_t *v = (const int16_t *)xt;
            for (uint32_t j = 0; j < n_in; j++) ((int8_t *)in)[j] = (int8_t)v[j];
            el_engine_step(&ne->eng, in, EL_X_INT8, 1, 0);
        } else if (kind == EL_X_INT16) {
            const int64_t *v = (const int64_t *)xt;
            for (uint32_t j = 0; j < n_in; j++) ((int16_t *)in)[j] = (int16_t)v[j];
            el_engine_step(&ne->eng, in, EL_X_INT16, 1, 0);
        } else {
            const int64_t *v = (const int64_t *)xt;
            for (uint32_t j = 0; j < n_in; j++) ((int8_t *)in)[j] = (int8_t)v[j];
            el_engine_step(&ne->eng, in, EL_X_INT8, 1, 0);
        }
    }
    return 0;
}

/* counters: steps, spikes, input_spikes, output_spikes, lpl_updates, sample steps, sample
 * spikes, arena used, arena high water */
void el_native_engine_counters(const native_engine *ne, uint32_t *c)
{
    const el_engine *e = &ne->eng;
    c[0] = ne->counters.steps; c[1] = ne->counters.spikes; c[2] = ne->counters.input_spikes;
    c[3] = ne->counters.output_spikes; c[4] = ne->counters.lpl_updates; c[5] = e->T;
    c[6] = e->sample_spikes; c[7] = ne->arena.used; c[8] = ne->arena.high_water;
}

/* addresses inside the arena (Python wraps them without copying): what 0 features, 1 output,
 * 2 layer k's field: 0 wT, 9 current, 10 membrane, 11 spikes; 3 LPL entry k's state field
 * 1 z_prev .. 8 target, 9 epoch_pre, 10 epoch_post, 11 epoch_steps (the order of
 * lpl_rate.State) */
void *el_native_engine_ptr(native_engine *ne, int what, uint32_t k, int field)
{
    el_engine *e = &ne->eng;
    if (what == 0) return e->features;
    if (what == 1) return e->output;
    if (what == 2 && k < e->net.n_layers) {
        switch (field) {
        case 0: return e->net.layer[k].wT;
        case 9: return e->net.cur[k];
        case 10: return e->net.mem[k];
        case 11: return e->net.spk[k];
        default: return 0;
        }
    }
    if (what == 3 && k < e->cfg.n_lpl) {
        el_lpl_state *st = &e->lpl_st[k];
        void *f[12] = {0, st->z_prev, st->mean, st->var, st->count, st->pre_trace,
                       st->post_trace, st->cov, st->target, st->epoch_pre, st->epoch_post,
                       st->epoch_steps};
        return field >= 1 && field <= 11 ? f[field] : 0;
    }
    return 0;
}
