"""The integer step as a float32-exact op graph, shared by the ONNX and TFLite exporters (L1).

Exchange runtimes (onnxruntime, LiteRT, TFLite Micro) have no common integer shift, so the step
is written with float32 ops whose every intermediate is an integer of magnitude < 2^24; such
float32 arithmetic is exact, whatever the summation order or FMA use. Tensors carry integers in
float32. Only seven op kinds occur:

    fc(x, W)      x W^T (W int8 values stored as float32)     exact while |partial sums| < 2^24
    add, sub, mul(by constants), floor, maximum, minimum

The one rounding rule, ``round_shift(x * d, 12)`` for a 12-bit decay d, is split so that no
product exceeds 2^24 (d = 64 d_hi + d_lo, 0 <= d_lo < 64, |x| < 2^15):

    q = floor((x * d_lo + 2048) / 64);   apply_decay(x, d) = floor((x * d_hi + q) / 64)

(exact: x d + 2048 = 64 (x d_hi + q) + r with 0 <= r < 64, and r/4096 never crosses an integer
step of (x d_hi + q)/64). A negative weight shift k uses floor((A + 2^(k-1)) / 2^k); a positive
one multiplies by 2^k. Saturation is ``minimum(maximum(v, lo), hi)``; a spike is
``minimum(maximum(U - theta, 0), 1)`` (integers: U > theta  <=>  U - theta >= 1).

:func:`build_step_graph` needs 16-bit state and exact matmuls (max row sum |W| * max|x| < 2^24).
The current sum D + C + b (+ R) may then still exceed 2^24 when a shift is large, but float
rounding is monotonic: a partial sum beyond 2^24 means the exact sum is far outside the int16
range (the remaining terms are below 2^15, or below 2^22 for the smaller of C and R in recurrent
layers, which is checked), so both saturate to the same bound. FixedPointError otherwise.
:func:`run_step_graph` is a numpy float32 interpreter used to test the
graph against :func:`edgelearn.kernels.lif_kernels.qlayer_step`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgelearn.errors import FixedPointError, InputError
from edgelearn.fixed import DECAY_BITS, int_range
from edgelearn.kernels.lif_fixed import QNetwork

OPS = ("fc", "add", "sub", "mul", "floor", "maximum", "minimum")
FLOAT_EXACT = 1 << 24        # integers below this are exact in float32
SUM_LIMIT = 1 << 22          # recurrent layers: the smaller of the two contributions stays below


@dataclass(frozen=True)
class Op:
    """One op: ``output = kind(*inputs)``; inputs name graph tensors or constants."""

    kind: str
    inputs: tuple
    output: str


@dataclass
class StepGraph:
    """A float32 step graph: input and state in; output, spikes and new state out.

    ``inputs``/``outputs`` are (name, shape) with shape [batch, n]; ``consts`` are float32 arrays
    (FC weights [n_out, n_in], per-neuron vectors [n], scalars [1]).
    """

    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    consts: dict = field(default_factory=dict)
    ops: list = field(default_factory=list)
    weights: dict = field(default_factory=dict)     # layer name -> its fc weight const
    _n: int = 0

    def const(self, value, hint: str) -> str:
        name = f"c{len(self.consts)}_{hint}"
        self.consts[name] = np.ascontiguousarray(np.asarray(value, dtype=np.float32)
                                                 .reshape(np.shape(value) or (1,)))
        return name

    def op(self, kind: str, *inputs: str, out: str | None = None) -> str:
        if out is None:
            self._n += 1
            out = f"t{self._n}_{kind}"
        self.ops.append(Op(kind, tuple(inputs), out))
        return out


def _decay(g: StepGraph, x: str, d: np.ndarray, hint: str) -> str:
    d = np.asarray(d, dtype=np.int64)
    if np.all(d == 0):
        return ""
    d_hi, d_lo = d >> 6, d & 63
    half = 1 << (DECAY_BITS - 1)
    a = g.op("add", g.op("mul", x, g.const(d_lo, f"{hint}_dlo")), g.const([half], "half"))
    q = g.op("floor", g.op("mul", a, g.const([1 / 64], "inv64")))
    b = g.op("add", g.op("mul", x, g.const(d_hi, f"{hint}_dhi")), q)
    return g.op("floor", g.op("mul", b, g.const([1 / 64], "inv64")))


def _shift(g: StepGraph, a: str, k: int) -> str:
    if k == 0:
        return a
    if k > 0:
        return g.op("mul", a, g.const([2.0 ** k], f"pow{k}"))
    half = g.op("add", a, g.const([2.0 ** (-k - 1)], f"half{-k}"))
    return g.op("floor", g.op("mul", half, g.const([2.0 ** k], f"pow{k}")))


def _sat(g: StepGraph, v: str, bits: int) -> str:
    lo, hi = int_range(bits)
    return g.op("minimum", g.op("maximum", v, g.const([lo], "lo")), g.const([hi], "hi"))


def build_step_graph(qnet: QNetwork, batch: int = 1, max_input: int | None = None) -> StepGraph:
    """The float32-exact step graph of ``qnet`` for a fixed ``batch``.

    ``max_input`` bounds |x| of the network input (default: the input_bits range).
    Tensor names follow the edgelearn ONNX profile: inputs "input", "<layer>.current_in",
    "<layer>.membrane_in"; outputs "output", "<layer>.spikes" (spiking layers), then
    "<layer>.current_out", "<layer>.membrane_out".
    """
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    g = StepGraph()
    xmax = int_range(qnet.input_bits)[1] if max_input is None else int(max_input)
    g.inputs.append(("input", [batch, qnet.n_in]))
    for la in qnet.layers:
        g.inputs += [(f"{la.name}.current_in", [batch, la.n_out]),
                     (f"{la.name}.membrane_in", [batch, la.n_out])]
    h = "input"
    state_out, spikes = [], []
    for k, la in enumerate(qnet.layers):
        if la.state_bits != 16:
            raise FixedPointError(f"layer '{la.name}': the exported step graph needs 16-bit "
                                  f"state, got {la.state_bits}-bit (quantize with state_bits=16)")
        in_max = xmax if k == 0 else 1
        acc_ff = int(np.abs(la.weight.astype(np.int64)).sum(axis=1).max()) * in_max
        acc_rec = 0 if la.recurrent is None else int(
            np.abs(la.recurrent.astype(np.int64)).sum(axis=1).max())
        for amax, what in ((acc_ff, "input"), (acc_rec, "recurrent")):
            if amax >= FLOAT_EXACT:
                raise FixedPointError(f"layer '{la.name}': worst-case {what} accumulator "
                                      f"{amax} is not exact in float32 (limit 2^24); fan-in "
                                      f"{la.n_in} x max input {in_max} is too large to export")
        if la.recurrent is not None and min(acc_ff * 2.0 ** la.w_shift,
                                            acc_rec * 2.0 ** la.v_shift) >= SUM_LIMIT:
            raise FixedPointError(f"layer '{la.name}': input and recurrent contributions can "
                                  f"both exceed {SUM_LIMIT} state LSB; the float32 step graph "
                                  f"would not be exact")
        I, U = f"{la.name}.current_in", f"{la.name}.membrane_in"
        g.weights[la.name] = g.const(la.weight.astype(np.float32), f"{la.name}_W")
        acc = g.op("fc", h, g.weights[la.name])
        cur = _shift(g, acc, la.w_shift)
        dec_i = _decay(g, I, la.alpha, f"{la.name}_alpha")
        if dec_i:
            cur = g.op("add", dec_i, cur)
        if la.bias is not None:
            cur = g.op("add", cur, g.const(la.bias, f"{la.name}_b"))
        thr = g.const(la.threshold, f"{la.name}_theta") if la.spiking else ""
        reset = ""
        if la.spiking:
            reset = g.op("minimum", g.op("maximum", g.op("sub", U, thr), g.const([0], "zero")),
                         g.const([1], "one"))
            if la.recurrent is not None:
                rec = g.op("fc", reset, g.const(la.recurrent.astype(np.float32), f"{la.name}_V"))
                cur = g.op("add", cur, _shift(g, rec, la.v_shift))
        cur = _sat(g, cur, la.state_bits)
        dec_u = _decay(g, U, la.beta, f"{la.name}_beta")
        u = g.op("add", dec_u, cur) if dec_u else cur
        if la.spiking and la.reset == "subtract":
            u = g.op("sub", u, g.op("mul", reset, thr))
        elif la.spiking and la.reset == "zero":
            u = g.op("mul", u, g.op("sub", g.const([1], "one"), reset))
        elif la.spiking:        # zero_immediate: the decayed membrane is cleared, I' kept
            keep = g.op("sub", g.const([1], "one"), reset)
            u = g.op("add", g.op("mul", dec_u, keep), cur) if dec_u else cur
        u = _sat(g, u, la.state_bits)
        if la.spiking:
            h = g.op("minimum", g.op("maximum", g.op("sub", u, thr), g.const([0], "zero")),
                     g.const([1], "one"))
            spikes.append((h, f"{la.name}.spikes", [batch, la.n_out]))
        else:
            h = u
        state_out += [(cur, f"{la.name}.current_out", [batch, la.n_out]),
                      (u, f"{la.name}.membrane_out", [batch, la.n_out])]
    outs = [(h, "output", [batch, qnet.n_out])] + spikes + state_out
    rename: dict = {}
    extra = []
    for src, name, _ in outs:      # one tensor may be two outputs: copy it with maximum(v, v)
        if src in rename or src in dict(g.inputs):
            extra.append(Op("maximum", (src, src), name))
        else:
            rename[src] = name
    g.ops = [Op(o.kind, tuple(rename.get(i, i) for i in o.inputs), rename.get(o.output, o.output))
             for o in g.ops]
    g.ops += [Op(o.kind, tuple(rename.get(i, i) for i in o.inputs), o.output) for o in extra]
    g.outputs = [(name, shape) for _, name, shape in outs]
    return g


def run_step_graph(g: StepGraph, feeds: dict) -> dict:
    """Evaluate the graph in numpy float32 (the reference interpreter of the op list)."""
    env = {k: np.asarray(v, dtype=np.float32) for k, v in feeds.items()}
    env.update(g.consts)
    for o in g.ops:
        a = [env[i] for i in o.inputs]
        if o.kind == "fc":
            r = a[0] @ a[1].T
        elif o.kind == "floor":
            r = np.floor(a[0])
        else:
            r = {"add": np.add, "sub": np.subtract, "mul": np.multiply,
                 "maximum": np.maximum, "minimum": np.minimum}[o.kind](a[0], a[1])
        env[o.output] = r.astype(np.float32)
    return {name: env[name] for name, _ in g.outputs}
