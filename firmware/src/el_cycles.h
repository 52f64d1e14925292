/* The documented cycle-cost model of docs/protocol.md section 14 (firmware_sim/cycles.py): an
 * estimate per board profile, not a measurement. Per step and layer with k active inputs and
 * r recurrent spikes of the previous step:
 *   min(n_in n_out c_mac, k n_out c_event + n_in c_scan) + n_out c_neuron + r n_out c_event
 *   (+ n_in n_out c_lpl + n_out c_lpl_neuron with LPL), plus c_step per step. */
#ifndef EL_CYCLES_H
#define EL_CYCLES_H

#include <stdint.h>

typedef struct {
    const char *core;
    double c_mac, c_event, c_scan, c_neuron, c_lpl, c_lpl_neuron, c_step, clock_hz;
} el_cost;

/* the table of the profile name's core (longest matching prefix; default cortex-m4) */
const el_cost *el_cost_of(const char *profile);

double el_layer_cycles(const el_cost *c, uint32_t n_in, uint32_t n_out, int64_t active,
                       uint32_t recurrent_spikes, int learning);  /* active < 0: dense */

#endif
