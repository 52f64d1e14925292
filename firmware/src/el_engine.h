/* The device engine (docs/protocol.md section 8.4; edgelearn.device.engine): the integer
 * network, fixed-point LPL on configured layers, per-sample features and readout, and the hEP
 * head (binary64 relaxation, f32 weights) with its factored accumulators and replay ring.
 *
 * Every buffer lives in the arena in the order and sizes of section 14 (the planner's
 * edgelearn.memory.layout), followed by the two working buffers a C step needs and the plan
 * does not list: `kernel.scratch` (el_step_scratch_bytes: the lists of one step) and, with LPL,
 * `lpl.scratch` (el_lpl_scratch_bytes of the widest LPL layer).
 *
 *   per step:  h = x;  for each layer k:  y_k = layer_step_k(h);  h = y_k
 *              then for each LPL entry c, in layer order:
 *                step(W_k, pre = (layer k's input) << c.A, post = y_k << c.A)
 *              (the same as learning right after each layer: no later layer reads W_k, and
 *              the PRNG draws stay in entry order)
 *              (sample mode) counts += spikes of the feature layer;
 *              readout max: acc = max(acc, U_out)   mean: acc += clip(U_out, +-524288)
 */
#ifndef EL_ENGINE_H
#define EL_ENGINE_H

#include "el_arena.h"
#include "el_cycles.h"
#include "el_lpl.h"
#include "el_net.h"

#define EL_SAMPLE_STEPS_MAX 4096
#define EL_MAX_LPL 16
#define EL_MAX_NUDGES 16
#define EL_HEAD_MAX_K 8
#define EL_HEAD_MAX_WIDTH 1024

enum { EL_READOUT_MAX = 0, EL_READOUT_MEAN = 1 };

/* f64 buffers are 4-byte aligned in the arena (the plan rounds every buffer to 4 bytes) */
typedef double el_f64 __attribute__((aligned(4)));

/* The engine configuration: the config blob (sample mode), or seed + one LEARN entry
 * (streaming mode). */
typedef struct {
    uint8_t readout;
    uint32_t seed;
    double track_features;
    uint8_t n_lpl;
    uint8_t lpl_layer[EL_MAX_LPL];
    el_lpl_params lpl[EL_MAX_LPL];
    int32_t lpl_var_init[EL_MAX_LPL];
    uint8_t hep;                      /* hEP settings present */
    uint8_t J;
    uint16_t replay, repeats;
    double lr, amplitude;
    double nodes[EL_MAX_NUDGES], weights[EL_MAX_NUDGES];
} el_config;

/* The head blob's header (section 8.6); `floats` points at its f32 arrays. */
typedef struct {
    uint8_t K, activation;            /* activation 0 tanh, 1 sigmoid */
    uint16_t sizes[EL_HEAD_MAX_K + 1];
    double tol, newton_switch, damping;
    uint32_t max_iter, max_steps;
    const uint8_t *floats;            /* mean, std, then W_k, b_k (little-endian f32) */
} el_head_desc;

typedef struct {
    uint32_t steps, spikes, input_spikes, output_spikes, lpl_updates, samples, hep_updates,
        hep_nonconverged, hep_rejected;
    double cycles;            /* cost-model cycles of the steps run (el_cycles.h) */
    uint32_t priced_steps;
} el_counters;

typedef struct {
    el_head_desc d;
    uint32_t N, n_params;
    float *W[EL_HEAD_MAX_K], *b[EL_HEAD_MAX_K];   /* head.weights */
    float *mean, *std;                            /* head.norm */
    el_f64 *work;                                 /* head.work: N x N + 6 N */
    el_f64 *acc, *nudged;                         /* with hEP learning, else NULL */
    uint8_t *r_counts, *r_labels;                 /* replay ring (R > 0) */
    uint16_t *r_scores, *r_lengths;               /* scores as f16 bits */
    int32_t *r_ring;                              /* pos, fill */
} el_head;

typedef struct {
    int prediction;
    uint8_t kind;                     /* 0 readout scores, 1 head logits */
    uint16_t n_scores;
    uint32_t spikes, steps;
} el_result;

typedef struct {
    el_net net;
    el_config cfg;
    uint8_t has_head, hep_planned;
    el_head head;
    el_lpl_state lpl_st[EL_MAX_LPL];
    void *lpl_scratch;
    uint8_t lpl_on, hep_on;
    el_rng rng;
    int feature_layer;
    uint16_t *features;
    int32_t *output;
    double out_scale;                 /* the output layer's scale (f64 of the image) */
    uint8_t open, classified;         /* a sample is open; the last one is classified */
    uint32_t T, sample_spikes;
    el_counters *c;                   /* the device's counters (outlive an engine) */
    const el_cost *cost;              /* cycle-cost model (NULL: not priced) */
    void (*keepalive)(void *ctx);     /* called between steps and relaxation iterations */
    void *keepalive_ctx;
} el_engine;

/* Lay out and fill an engine for a checked image. With keep_net the network's buffers (which
 * come first and do not depend on config or head) are kept as they are: learned weights and
 * neuron state survive. head may be NULL. Returns 0, or -1 with the arena's error (nothing is
 * written when `measure_first` finds that it does not fit). */
int el_engine_build(el_engine *e, const el_image_desc *desc, const uint8_t *img, uint32_t len,
                    const el_config *cfg, const el_head_desc *head, el_arena *arena,
                    int keep_net, el_counters *counters);

/* Bytes the build would take from an arena (the same walk without writing), or -1 with the
 * first buffer that does not fit `free_bytes` in err (name, need, free). */
int64_t el_engine_measure(const el_image_desc *desc, const uint8_t *img, const el_config *cfg,
                          const el_head_desc *head, uint32_t free_bytes, char *err,
                          uint32_t err_len, uint32_t *need, uint32_t *avail);

/* Zero the neuron state and close an open sample (RESET mode 0, INFER's reset flag); T, the
 * features and the readout stay: they are the last classified sample TEACH learns from. */
void el_engine_reset_state(el_engine *e);
/* Start a sample: reset_state, T and the accumulators zeroed; the last classified sample is
 * gone (TEACH is BAD_STATE until this one is classified). */
void el_engine_begin_sample(el_engine *e);

/* One step with input x [n_in] of kind x_kind (EL_X_INT8 / EL_X_INT16 values, already within
 * input_bits); sample: accumulate features and readout. out (may be NULL) receives the output
 * of a streaming step: spikes (0/1) or the readout membrane. */
void el_engine_step(el_engine *e, const void *x, int x_kind, int sample, int32_t *out);

/* Classify the open sample (it has >= 1 step); the scores go to scores_f32 as little-endian
 * f32 (rounded to nearest from binary64), 4 n_scores bytes. */
void el_engine_end_sample(el_engine *e, el_result *r, uint8_t *scores_f32);

/* number of scores a result has (classes of the head, else the network's outputs) */
uint32_t el_engine_n_scores(const el_engine *e);

/* TEACH with hEP on: `repeats` updates (section 8.4). label < classes is the caller's check. */
void el_engine_teach(el_engine *e, uint32_t label);

/* the feature layer of section 8.4 */
int el_feature_layer(const el_image_desc *d);

#endif
