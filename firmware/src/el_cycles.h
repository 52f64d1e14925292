/* The documented cycle-cost model of docs/protocol.md section 14 (firmware_sim/cycles.py): an
 * estimate per board profile (cortex-m3 and cortex-m4: fitted to QEMU instruction counts of
 * this firmware). Per step and layer with k active inputs (carrying values other than 1 when
 * `values`) and r recurrent spikes of the previous step:
 *   min(n_in n_out c_mac, k n_out (values ? c_value : c_event) + n_in c_scan)
 *   + n_out c_neuron + r n_out c_event
 *   (+ (n_in n_out c_lpl + n_out c_lpl_neuron + n_in c_lpl_input) / 2^e
 *    + (n_in + n_out) c_lpl_acc [e > 0] with LPL at a learning epoch of 2^e steps: the rule
 *    once an epoch, the sums every step), plus c_step. */
#ifndef EL_CYCLES_H
#define EL_CYCLES_H

#include <stdint.h>

typedef struct {
    const char *core;
    double c_mac, c_event, c_value, c_scan, c_neuron, c_lpl, c_lpl_neuron, c_lpl_input,
        c_lpl_acc, c_step, clock_hz;
} el_cost;

/* the table of the profile name's core (longest matching prefix; default cortex-m4) */
const el_cost *el_cost_of(const char *profile);

/* active < 0: dense; learning: the layer runs LPL, at a learning epoch of 2^epoch_log2 steps */
double el_layer_cycles(const el_cost *c, uint32_t n_in, uint32_t n_out, int64_t active,
                       int values, uint32_t recurrent_spikes, int learning, int epoch_log2);

#endif
