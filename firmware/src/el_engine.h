/* The integer part of the device engine: network step, fixed-point LPL on chosen layers,
 * and the per-sample features and readout accumulator (edgelearn.device.engine):
 *
 *   per step t:  h = x[t];  for each layer k:  h, state_k = step(layer_k, h, state_k)
 *                  if LPL is on for k:  W_k <- lpl_step(W_k, pre = layer input << A,
 *                                                       post = layer spikes << A)
 *                features += spikes of the feature layer (uint16)
 *                readout: output = max(output, U_last)            ("max")
 *                         output += clip(U_last, +-2^31 / 4096)    ("mean", int32)
 *
 * One PRNG stream (el_rng, seeded per device) serves every LPL layer in layer order. The
 * caller owns the memory: el_engine_* take their buffers from an el_arena.
 */
#ifndef EL_ENGINE_H
#define EL_ENGINE_H

#include "el_lpl.h"
#include "el_net.h"

#define EL_SAMPLE_STEPS_MAX 4096

enum { EL_READOUT_MAX = 0, EL_READOUT_MEAN = 1 };

typedef struct {
    el_lpl_params p;
    el_lpl_state st;
    uint8_t planned;          /* state allocated */
} el_engine_lpl;

typedef struct {
    el_net net;
    el_engine_lpl lpl[EL_MAX_LAYERS];
    uint8_t lpl_on;           /* LPL runs on the planned layers */
    void *lpl_scratch;        /* the largest planned layer's el_lpl_scratch_bytes */
    int32_t *lpl_pre, *lpl_post;   /* activities in Q.A of the layer being adapted */
    el_rng rng;
    int feature_layer;        /* -1: none */
    uint8_t readout;
    uint16_t *features;       /* [n_out of the feature layer] */
    uint32_t sample_steps;    /* steps of the current sample */
    uint32_t sample_spikes;   /* spikes of all spiking layers in the current sample */
    /* counters since boot */
    uint32_t steps, spikes, input_spikes, output_spikes, lpl_updates;
    uint64_t work;            /* synaptic events + neuron updates (cost accounting) */
} el_engine;

/* Feature layer of edgelearn.device.engine: the last spiking layer before the output layer,
 * or the last spiking layer if there is none; -1 when no layer spikes. */
int el_engine_feature_layer(const el_net *net);

/* Lay out the network, features and readout (`with_features`: sample mode) in the arena. */
int el_engine_load(el_engine *e, const el_image_desc *desc, const uint8_t *img, uint32_t len,
                   el_arena *arena, int with_features, uint32_t seed);

/* Allocate and initialise LPL state for layer k with coefficients p (var_init in Q.(2A+E)).
 * Returns -1 with the arena's error when it does not fit. */
int el_engine_plan_lpl(el_engine *e, int k, const el_lpl_params *p, int32_t var_init_q,
                       el_arena *arena, const char *layer_name);

/* After the last el_engine_plan_lpl: the LPL scratch of the largest planned layer. */
int el_engine_finish_plan(el_engine *e, el_arena *arena);

void el_engine_begin_sample(el_engine *e);

/* One step with input x [n_in] (integers in the first layer's input range; binary_in: 0/1).
 * Returns 1 when some LPL weight rule ran. */
int el_engine_step(el_engine *e, const int16_t *x, int binary_in);

#endif
