#include "el_cycles.h"

#include <string.h>

static const el_cost table[] = {
    /* core, c_mac, c_event, c_value, c_scan, c_neuron, c_lpl, c_lpl_neuron, c_lpl_input, c_lpl_acc, c_step, clock */
    {"cortex-m3", 3.89, 2.65, 3.89, 6.34, 33.3, 0, 515, 200, 4.76, 3990, 25e6},
    {"cortex-m4", 3.88, 2.65, 3.88, 6.36, 31.9, 0, 513, 202, 4.75, 4040, 120e6},
    {"cortex-m0plus", 5, 4, 4, 2, 40, 30, 120, 0, 4, 400, 48e6},
    {"cortex-m7", 1, 1.5, 1.5, 1, 10, 7, 40, 0, 1, 150, 480e6},
    {"linux", 0.5, 1, 1, 0.5, 6, 4, 20, 0, 0.5, 400, 1.2e9},
};

const el_cost *el_cost_of(const char *profile)
{
    const el_cost *best = &table[1];          /* cortex-m4 */
    size_t best_len = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t n = strlen(table[i].core);
        if (n > best_len && strncmp(profile, table[i].core, n) == 0) {
            best = &table[i];
            best_len = n;
        }
    }
    return best;
}

double el_layer_cycles(const el_cost *c, uint32_t n_in, uint32_t n_out, int64_t active,
                       int values, uint32_t recurrent_spikes, int learning, int epoch_log2)
{
    double dense = (double)n_in * n_out * c->c_mac;
    double syn = dense;
    if (active >= 0) {
        double ev = (double)active * n_out * (values ? c->c_value : c->c_event) + n_in * c->c_scan;
        syn = ev < dense ? ev : dense;
    }
    double out = syn + n_out * c->c_neuron + (double)recurrent_spikes * n_out * c->c_event;
    if (learning) {
        double rule = (double)n_in * n_out * c->c_lpl + n_out * c->c_lpl_neuron +
                      n_in * c->c_lpl_input;
        out += rule / (double)(1u << epoch_log2);
        if (epoch_log2) out += ((double)n_in + n_out) * c->c_lpl_acc;
    }
    return out;
}
