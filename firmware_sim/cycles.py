"""A documented cycle-cost model: estimated CPU cycles per network step on a board profile.

The simulator does not emulate a CPU; it counts the work one step does (active inputs, neuron
updates, learning updates) and prices each kind with a per-core constant. The C firmware
(firmware/src/el_cycles.c) prices its steps with the same model and table.

Per step, per layer with n_in inputs, n_out neurons, k active (non-zero) inputs and r spikes
of the previous step (recurrent layers):

    synapses  = min(n_in * n_out * c_mac,                         dense
                    k * n_out * c_k + n_in * c_scan)              event path: active columns
                c_k = c_value when the step's active inputs carry values other than 1 (a
                non-spiking network input), else c_event
    neurons   = n_out * c_neuron                      decays, add, compare, reset, bookkeeping
    recurrent = r * n_out * c_event
    learning  = (n_in * n_out * c_lpl + n_out * c_lpl_neuron + n_in * c_lpl_input) / k
                + (n_in + n_out) * c_lpl_acc  [k > 1]                                 (LPL)
    step      = c_step + sum over layers

with LPL at a learning epoch of k steps (lpl_rate.Params.epoch; k = 1: every step): the rule
runs once an epoch, priced here as 1/k of it every step, and every step adds the layer's input
and spikes to the epoch sums (c_lpl_acc per element).

Constants (cycles):

    core        c_mac c_event c_value c_scan c_neuron c_lpl c_lpl_neuron c_lpl_input c_lpl_acc c_step clock
    cortex-m3   3.89  2.65    3.89    6.34   33.3     0     515          200         4.76      3990   25 MHz
    cortex-m4   3.88  2.65    3.88    6.36   31.9     0     513          202         4.75      4040   120 MHz
    cortex-m0+  5     4       4       2      40       30    120          0           4         400    48 MHz
    cortex-m7   1     1.5     1.5     1      10       7     40           0           1         150    480 MHz
    linux (A53) 0.5   1       1       0.5    6        4     20           0           0.5       400    1.2 GHz

**cortex-m3 and cortex-m4 are measured**: the constants are a non-negative least-squares fit
(relative error of each run's mean) to the instructions per step of this C firmware under QEMU
``-icount shift=0`` (``mps2-an385`` Cortex-M3, ``mps2-an386`` Cortex-M4F; builds icount-cm3,
icount-cm4f) on 8 workloads x inference / + LPL / + LPL at a learning epoch of 8
(tools/measure_icount.py, stored in tests/icount/cortex_m.json): every run's mean is within
9 % of the model (inference within 3 %, LPL within 9 %, LPL at epoch 8 within 6 %; the LPL
step's window search varies with the activity, which the model does not price). They count instructions: one cycle per instruction, a lower bound for a real
part (loads, taken branches and multiplies by 64-bit values take 2 or more). c_mac = c_value:
the C engine is event-driven only; its dense figure (HELLO's worst case) is every input active
with values. LPL costs per neuron and per input (filters, PRNG words, statistics, the window
search), not per synapse: c_lpl = 0; at a learning epoch the sums cost c_lpl_acc (4.76 on
the M3) per input and output element a step. The cortex-m3 clock is the MPS2 AN385 image's
25 MHz.

cortex-m0+, cortex-m7 and linux are **assumptions** for hand-written C (int8 weights, int32
state), not measurements: the M0+ has no DSP extension or unaligned access, so each int8 MAC is
a load, a sign-extend, a multiply and an add; the M7 packs two int8 MACs per SMLAD; their LPL
is priced per synapse (one multiply, one PRNG word and a stochastic shift), their epoch sums
(c_lpl_acc) as a load, an add and a store per element.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoreCost:
    core: str
    c_mac: float
    c_event: float
    c_value: float
    c_scan: float
    c_neuron: float
    c_lpl: float
    c_lpl_neuron: float
    c_lpl_input: float
    c_lpl_acc: float
    c_step: float
    clock_hz: float


COSTS = {c.core: c for c in (
    CoreCost("cortex-m3", 3.89, 2.65, 3.89, 6.34, 33.3, 0, 515, 200, 4.76, 3990, 25e6),
    CoreCost("cortex-m4", 3.88, 2.65, 3.88, 6.36, 31.9, 0, 513, 202, 4.75, 4040, 120e6),
    CoreCost("cortex-m0plus", 5, 4, 4, 2, 40, 30, 120, 0, 4, 400, 48e6),
    CoreCost("cortex-m7", 1, 1.5, 1.5, 1, 10, 7, 40, 0, 1, 150, 480e6),
    CoreCost("linux", 0.5, 1, 1, 0.5, 6, 4, 20, 0, 0.5, 400, 1.2e9),
)}


def core_of(profile_name: str) -> CoreCost:
    """The cost table of a profile name such as 'cortex-m4-256k' or 'linux-board'."""
    for core in sorted(COSTS, key=len, reverse=True):
        if profile_name.startswith(core):
            return COSTS[core]
    return COSTS["cortex-m4"]


def lpl_cycles(cost: CoreCost, n_in: int, n_out: int, epoch: int = 1) -> float:
    """Cycles of LPL per time step on an n_out x n_in layer at a learning epoch of ``epoch``
    steps: 1/epoch of the rule, plus the epoch sums when epoch > 1."""
    rule = n_in * n_out * cost.c_lpl + n_out * cost.c_lpl_neuron + n_in * cost.c_lpl_input
    return rule / epoch + ((n_in + n_out) * cost.c_lpl_acc if epoch > 1 else 0.0)


def layer_cycles(cost: CoreCost, n_in: int, n_out: int, active: int | None,
                 recurrent_spikes: int = 0, learning: int = 0, values: bool = False
                 ) -> float:
    """Cycles of one layer for one step; ``active=None`` prices the dense path; ``learning``:
    0 (or False) without LPL, else its learning epoch in steps (True = 1); ``values``: the
    active inputs carry values other than 1."""
    dense = n_in * n_out * cost.c_mac
    c_k = cost.c_value if values else cost.c_event
    syn = dense if active is None else min(dense, active * n_out * c_k + n_in * cost.c_scan)
    out = syn + n_out * cost.c_neuron + recurrent_spikes * n_out * cost.c_event
    if learning:
        out += lpl_cycles(cost, n_in, n_out, int(learning))
    return out


def worst_case_cycles(cost: CoreCost, shapes: list[tuple[int, int, bool]]) -> int:
    """Dense-path estimate of one step for layers (n_in, n_out, recurrent), no learning."""
    total = cost.c_step
    for n_in, n_out, rec in shapes:
        total += layer_cycles(cost, n_in, n_out, None, n_out if rec else 0)
    return int(round(total))


def run_cycles(cost: CoreCost, shapes: list[tuple[int, int]], activity, learning: list[int]
               ) -> float:
    """Cycles of the steps an engine ran: ``activity`` int [T, L, 3] holds per step and layer
    the active (nonzero) inputs, the recurrent spikes of the previous step and 1 when the
    active inputs carried values other than 1 (else 0); ``learning`` says which layers ran
    LPL and at which learning epoch (0 or False: none; k: epoch of k steps; True = 1). Each
    step is priced as :func:`layer_cycles` (event path where cheaper) plus
    ``c_step``."""
    import numpy as np
    act = np.asarray(activity, dtype=np.float64)
    T = act.shape[0]
    total = cost.c_step * T
    for k, (n_in, n_out) in enumerate(shapes):
        dense = n_in * n_out * cost.c_mac
        c_k = np.where(act[:, k, 2] > 0, cost.c_value, cost.c_event)
        event = act[:, k, 0] * n_out * c_k + n_in * cost.c_scan
        total += float(np.minimum(dense, event).sum()) + T * n_out * cost.c_neuron
        total += float(act[:, k, 1].sum()) * n_out * cost.c_event
        if learning[k]:
            total += T * lpl_cycles(cost, n_in, n_out, int(learning[k]))
    return total
