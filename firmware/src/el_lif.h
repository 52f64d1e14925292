/* The integer LIF layer step of docs/fixed-point.md section 5, for a batch of sequences.
 *
 * Per layer and step (x: the layer input; R: previous step's spike, recomputed from U):
 *
 *   R  = U > theta                                  (spiking layers)
 *   A  = W x                                        exact accumulator
 *   I' = sat( apply_decay(I, alpha) + shift(A, w_shift) + b + shift(V R, v_shift) )
 *   U' = sat( apply_decay(U, beta) + I' - theta R )          reset "subtract"
 *   U' = sat( (apply_decay(U, beta) + I') (1 - R) )          reset "zero"
 *   U' = sat( apply_decay(U, beta) (1 - R) + I' )            reset "zero_immediate"
 *   S' = U' > theta                 readout (non-spiking): no R, no reset, output U'
 *
 * Weights live input-major in RAM (wT[j * n_out + i] = W[i][j]), so the event-driven path
 * (binary input: add the weight columns of the active inputs) and the dense path (every input,
 * x_j times its column) both read contiguous memory, and so does an LPL update of a column.
 * Both paths give the same integers; so do the int64 reference neuron update and the int32
 * one used when the layer's bounds prove it exact (el_layer_prepare).
 */
#ifndef EL_LIF_H
#define EL_LIF_H

#include <stddef.h>
#include <stdint.h>

enum { EL_MODE_AUTO = 0, EL_MODE_DENSE = 1, EL_MODE_EVENT = 2 };
enum { EL_RESET_SUBTRACT = 0, EL_RESET_ZERO = 1, EL_RESET_ZERO_IMMEDIATE = 2 };

/* what a layer input buffer holds: 0/1 spikes (uint8), or integers (int8 / int16) */
enum { EL_X_SPIKES = 0, EL_X_INT8 = 1, EL_X_INT16 = 2 };

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

/* Counters of saturated entries: clip[0] currents, clip[1] membranes (may be NULL). */
typedef struct {
    uint32_t cur, mem;
} el_clip;

/* One step of one layer for `batch` sequences.
 * x: [batch][n_in] input of kind x_kind (EL_X_*); binary: the values are all 0 or 1 (then the
 *   event path may run: the weight columns of the nonzero inputs are added);
 * cur, mem: [batch][n_out] state (16- or 32-bit values in int32), updated in place;
 * spk_out: [batch][n_out] 0/1 output of a spiking layer (NULL for a readout; its output is
 *   the new membrane in mem);
 * scratch: at least el_lif_scratch_bytes(L) bytes, 8-byte aligned;
 * mode: EL_MODE_AUTO / DENSE / EVENT (event needs x_spk); returns the number of active
 *   inputs seen (for cost accounting). */
uint32_t el_layer_step(const el_layer *L, int batch, const void *x, int x_kind, int binary,
                       int32_t *cur, int32_t *mem, uint8_t *spk_out, void *scratch, int mode,
                       el_clip *clip);

size_t el_lif_scratch_bytes(const el_layer *L);

#endif
