"""A documented cycle-cost model: estimated CPU cycles per network step on a board profile.

The simulator does not emulate a CPU; it counts the work one step does (synaptic operations,
neuron updates, learning updates) and prices each kind with a per-core constant. The constants
are *assumptions* for hand-written C on each core class (int8 weights, int32 state), not
measurements of a specific part; they say what dominates, not the exact figure.

Per step, per layer with n_in inputs, n_out neurons and k active (non-zero) inputs:

    synapses  = min(n_in * n_out * c_mac,            dense int8 multiply-accumulate
                    k * n_out * c_event + n_in * c_scan)   event path: add the active columns
    neurons   = n_out * c_neuron                     two 12-bit decays, add, compare, reset
    recurrent = (spikes of the previous step) * n_out * c_event
    learning  = n_in * n_out * c_lpl + n_out * c_lpl_neuron   (fixed-point LPL on the layer)
    step      = c_step + sum over layers                     (loop, I/O, bookkeeping)

Constants (cycles):

    core        c_mac  c_event  c_scan  c_neuron  c_lpl  c_lpl_neuron  c_step  clock
    cortex-m0+   5      4        2       40        30     120           400     48 MHz
    cortex-m4    1.5    2        1       14        10      50           200     120 MHz
    cortex-m7    1      1.5      1       10         7      40           150     480 MHz
    linux (A53)  0.5    1        0.5      6         4      20           400     1.2 GHz

Rationale: the M0+ has no DSP extension or unaligned access, so each int8 MAC is a load, a
sign-extend, a multiply and an add; the M4/M7 pack two int8 MACs per SMLAD after SXTB16
unpacking. The LPL synapse cost covers one multiply, one PRNG word (lowbias32: 2 multiplies,
3 shift-xors) and the stochastic shift with clipping.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoreCost:
    core: str
    c_mac: float
    c_event: float
    c_scan: float
    c_neuron: float
    c_lpl: float
    c_lpl_neuron: float
    c_step: float
    clock_hz: float


COSTS = {c.core: c for c in (
    CoreCost("cortex-m0plus", 5, 4, 2, 40, 30, 120, 400, 48e6),
    CoreCost("cortex-m4", 1.5, 2, 1, 14, 10, 50, 200, 120e6),
    CoreCost("cortex-m7", 1, 1.5, 1, 10, 7, 40, 150, 480e6),
    CoreCost("linux", 0.5, 1, 0.5, 6, 4, 20, 400, 1.2e9),
)}


def core_of(profile_name: str) -> CoreCost:
    """The cost table of a profile name such as 'cortex-m4-256k' or 'linux-board'."""
    for core in sorted(COSTS, key=len, reverse=True):
        if profile_name.startswith(core):
            return COSTS[core]
    return COSTS["cortex-m4"]


def layer_cycles(cost: CoreCost, n_in: int, n_out: int, active: int | None,
                 recurrent_spikes: int = 0, learning: bool = False) -> float:
    """Cycles of one layer for one step; ``active=None`` prices the dense path."""
    dense = n_in * n_out * cost.c_mac
    syn = dense if active is None else min(dense, active * n_out * cost.c_event
                                           + n_in * cost.c_scan)
    out = syn + n_out * cost.c_neuron + recurrent_spikes * n_out * cost.c_event
    if learning:
        out += n_in * n_out * cost.c_lpl + n_out * cost.c_lpl_neuron
    return out


def worst_case_cycles(cost: CoreCost, shapes: list[tuple[int, int, bool]]) -> int:
    """Dense-path estimate of one step for layers (n_in, n_out, recurrent), no learning."""
    total = cost.c_step
    for n_in, n_out, rec in shapes:
        total += layer_cycles(cost, n_in, n_out, None, n_out if rec else 0)
    return int(round(total))


def run_cycles(cost: CoreCost, shapes: list[tuple[int, int]], activity, learning: list[bool]
               ) -> float:
    """Cycles of the steps an engine ran: ``activity`` int [T, L, 2] holds per step and layer
    the active (nonzero) inputs and the recurrent spikes of the previous step; ``learning``
    says which layers ran LPL. Each step is priced as :func:`layer_cycles` (event path where
    cheaper) plus ``c_step``."""
    import numpy as np
    act = np.asarray(activity, dtype=np.float64)
    T = act.shape[0]
    total = cost.c_step * T
    for k, (n_in, n_out) in enumerate(shapes):
        dense = n_in * n_out * cost.c_mac
        event = act[:, k, 0] * n_out * cost.c_event + n_in * cost.c_scan
        total += float(np.minimum(dense, event).sum()) + T * n_out * cost.c_neuron
        total += float(act[:, k, 1].sum()) * n_out * cost.c_event
        if learning[k]:
            total += T * (n_in * n_out * cost.c_lpl + n_out * cost.c_lpl_neuron)
    return total
