/* The integer LIF layer step of docs/fixed-point.md section 5, for one sequence.
 *
 * Per layer and step (x: the layer input; R: previous step's spike):
 *
 *   R  = U > theta                                  (spiking layers: the spike vector S)
 *   A  = W x                                        exact accumulator
 *   I' = sat( apply_decay(I, alpha) + shift(A, w_shift) + b + shift(V R, v_shift) )
 *   U' = sat( apply_decay(U, beta) + I' - theta R )          reset "subtract"
 *   U' = sat( (apply_decay(U, beta) + I') (1 - R) )          reset "zero"
 *   U' = sat( apply_decay(U, beta) (1 - R) + I' )            reset "zero_immediate"
 *   S' = U' > theta                 readout (non-spiking): no R, no reset, output U'
 *
 * Weights live input-major in RAM (wT[j * n_out + i] = W[i][j]). The step is event-driven and
 * fused: the input arrives as a list of its nonzero entries (indices, and values unless it
 * is 0/1 spikes), R as the list of last step's spikes (read from the spike vector S, which
 * always equals U > theta), and the neurons are visited in tiles (64, 32, 16 or 8 neurons on
 * a host build, 4 with EL_SWAR, then a partial tile): for each tile
 * the contiguous pieces of the listed weight columns are summed (W x and V R of the tile),
 * then the tile's neurons are updated and their new spikes appended to the output list (the
 * next layer's input list). No per-layer accumulator arrays: the only working memory is the
 * lists (el_step_lists, `kernel.scratch`).
 *
 * Tile sums: host builds sum 0/1 columns in int16 lanes (256 int8 columns at most, then
 * carried to int32), which compilers vectorise, and sum a layer's last, partial tile (fewer
 * than 8 neurons, in a layer at least 8 wide) as the last 8 columns of the rows; builds with
 * EL_SWAR (default on Cortex-M) sum 4 neurons per 32-bit word (two 16-bit lanes per register,
 * weights biased by 128). The lists of nonzero bytes (input events, spikes) are found a word
 * at a time, or 64 bytes at a time with AVX-512 VBMI2 compress on hosts built for it
 * (-march=native).
 * Every variant gives the exact integer sums. The neuron update has an int64 reference and an
 * int32 version used when the layer's bounds (valid for any int8 weights, so learning keeps
 * them) prove it exact (el_layer_prepare); tests run both.
 */
#ifndef EL_LIF_H
#define EL_LIF_H

#include <stddef.h>
#include <stdint.h>

enum { EL_MODE_AUTO = 0, EL_MODE_DENSE = 1, EL_MODE_EVENT = 2 };
enum { EL_RESET_SUBTRACT = 0, EL_RESET_ZERO = 1, EL_RESET_ZERO_IMMEDIATE = 2 };

/* what a layer input buffer holds: 0/1 spikes (uint8), or integers (int8 / int16) */
enum { EL_X_SPIKES = 0, EL_X_INT8 = 1, EL_X_INT16 = 2 };

#ifndef EL_SWAR
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__)
#define EL_SWAR 1
#else
#define EL_SWAR 0
#endif
#endif

typedef struct {
    uint32_t n_in, n_out;
    uint8_t spiking, recurrent, reset, state_bits;    /* reset: EL_RESET_* */
    int8_t w_shift, v_shift;
    uint8_t in_binary;        /* the input is 0/1 spikes (every layer but possibly the first) */
    uint8_t in_bits;          /* signed width of a non-binary input */
    int8_t *wT;               /* [n_in][n_out] */
    int8_t *vT;               /* [n_out][n_out] (vT[k * n_out + i] = V[i][k]) or NULL */
    int32_t *bias;            /* [n_out] or NULL */
    int32_t *threshold;       /* [n_out] */
    uint16_t *alpha, *beta;   /* [n_out], 0..4096 */
    /* derived by el_layer_prepare */
    int64_t state_lo, state_hi;
    uint8_t acc32;            /* W x fits int32 for every int8 W */
    uint8_t fast32;           /* the whole neuron update fits int32 for every int8 W, V */
} el_layer;

/* Compute the derived fields (bounds hold for ANY int8 weights, so learning keeps them). */
void el_layer_prepare(el_layer *L);

/* Force the int64 reference neuron update (tests compare both). */
extern int el_lif_force_reference;

/* Counters of saturated entries: currents, membranes. */
typedef struct {
    uint32_t cur, mem;
} el_clip;

/* The lists of one step (`kernel.scratch`: 4 m uint16 for m the widest layer input or
 * output, el_step_scratch_bytes): in (active inputs), val (their values; int16), out (the
 * layer's spikes, the next layer's `in`), fired (last step's spikes, R). */
typedef struct {
    uint16_t *in, *out, *fired;
    int16_t *val;
} el_step_lists;

/* bytes of the lists for layers whose inputs and outputs are at most m wide */
uint32_t el_step_scratch_bytes(uint32_t m);
void el_step_lists_bind(el_step_lists *s, void *scratch, uint32_t m);

/* The input events of x [n] of kind x_kind (EL_X_*): the indices of its nonzero entries in
 * in[], and, unless `binary` (every value is 0 or 1) and mode != EL_MODE_DENSE, their values
 * in val[]. Returns the count; *with_values says whether val[] is meant. */
uint32_t el_input_events(const void *x, int x_kind, uint32_t n, int binary, int mode,
                         uint16_t *in, int16_t *val, int *with_values);

/* What one layer step saw: active inputs, last step's spikes (R), new spikes; values: 1 when
 * the active inputs were summed with their values (not all 1), else 0. */
typedef struct {
    uint32_t active, fired, spikes, values;
} el_step_info;

/* One step of one layer for one sequence. The input: n_ev events in lists->in (values in
 * lists->val when with_values, else 0/1 spikes). cur, mem: [n_out] state (16- or 32-bit
 * values in int32), updated in place; spk: [n_out] the spike vector (NULL for a readout:
 * its output is the new membrane in mem), read as R and overwritten with S'. The new
 * spikes' indices go to lists->out. clip may be NULL. */
void el_layer_run(const el_layer *L, el_step_lists *lists, uint32_t n_ev, int with_values,
                  int32_t *cur, int32_t *mem, uint8_t *spk, el_clip *clip, el_step_info *info);

#endif
