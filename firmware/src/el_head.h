/* The hEP head of the device engine (docs/protocol.md section 8.4; docs/hep.md), binary64:
 * free-phase relaxation for the logits, and TEACH's real-hEP updates with factored
 * accumulators and a replay ring. Weights are stored as f32 and used as binary64.
 *
 * Relaxation (relax(beta, z0, cold)): damped dynamics from rest until the residual is below
 * newton_switch (cold starts), then Newton on R(z) = z - Phi(z) with J = I - A D + beta P,
 * solved by Gaussian elimination with partial pivoting (an exactly zero pivot: a dynamics step
 * instead), 4 step halvings, and 10 dynamics steps when none of them lowers the residual.
 *
 * Memory: head.work holds z, R, delta, z_trial, R_trial, the rates s (6 N) and J (N x N);
 * with hEP learning head.nudged_state holds W_1 x + b_1 of the clamped sample (constant over
 * every phase), otherwise that product is recomputed in each Phi. The features x are never
 * stored: they are read from the sample's counts and readout (or a replay entry) when needed.
 */
#ifndef EL_HEAD_H
#define EL_HEAD_H

#include "el_engine.h"

/* Where a sample's features come from: the engine's current sample (counts16 = features,
 * scores from the readout accumulator), or a replay entry (counts8, f16 scores). */
typedef struct {
    const uint16_t *counts16;
    const uint8_t *counts8;
    const uint16_t *scores_f16;
    uint32_t T;
} el_head_sample;

void el_head_current(const el_engine *e, el_head_sample *s);

/* readout score of class c of the current sample, threshold units (binary64) */
double el_head_score(const el_engine *e, uint32_t c);

/* feature statistics update (track_features > 0 with LPL on), before normalising */
void el_head_track(el_engine *e);

/* free-phase logits of sample s: written as f32 (4 n_K bytes); returns the argmax */
int el_head_logits(el_engine *e, const el_head_sample *s, uint8_t *logits_f32);

/* TEACH (hEP on, a classified sample): replay store, replay draws, `repeats` updates */
void el_head_teach(el_engine *e, uint32_t label);

uint16_t el_f64_to_f16(double v);      /* round to nearest even, as numpy's float16 cast */
double el_f16_to_f64(uint16_t h);

#endif
