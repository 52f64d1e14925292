"""The RAM arena layout of a device, stated once (docs/protocol.md section 14).

:func:`arena_layout` lists every buffer a device keeps, in allocation order, with its shape,
dtype and category. The memory planner turns it into bytes (``edgelearn.memory.planner``), the
device engine allocates exactly these arrays from its arena (``edgelearn.device.engine``), and
the simulated board allocates its link buffers from it (``firmware_sim``), so planned bytes and
the measured high-water mark are the same number by construction (and tested).

Categories: weights, state, io, link (inference) and learning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgelearn.errors import ParameterError
from edgelearn.memory.arena import aligned
from edgelearn.model import feature_layer_index

StateShapes = Sequence[tuple[str, tuple[int, ...], type]]


@dataclass(frozen=True)
class LinkShape:
    """The serial link's buffers on a board: what the board announces in its HELLO reply to a
    HELLO asking for the most (its own limits).

    Attributes:
        window: requests the host may have in flight (the board keeps a reply cache and a
            reorder buffer of ``window`` frames each), 1..64.
        max_payload: largest request payload in bytes, 16..4096.
        source: where the figures come from ('defaults' or 'board'), for the plan's notes.
    """

    window: int = 8
    max_payload: int = 1024
    source: str = "defaults"

    def __post_init__(self) -> None:
        if not (1 <= self.window <= 64 and 16 <= self.max_payload <= 4096):
            raise ParameterError(f"link window must be 1..64 and max_payload 16..4096 B, got "
                                 f"{self.window} and {self.max_payload}")

    def describe(self) -> str:
        where = ("reported by the board" if self.source == "board" else
                 "protocol defaults, what --target sim starts; a serial board's HELLO decides "
                 "at deploy")
        return f"window {self.window}, max payload {self.max_payload} B ({where})"


@dataclass(frozen=True)
class BufferSpec:
    """One arena buffer: name, shape, dtype, category and a note for plan tables."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    category: str
    note: str = ""

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def padded(self, align: int) -> int:
        """Bytes the arena hands out for it (rounded up to ``align``)."""
        return aligned(self.nbytes, align)


def max_wire_bytes(max_payload: int) -> int:
    """Largest wire frame (delimiter included) for ``max_payload``: COBS of header (4 B) +
    payload + CRC (4 B), n + n // 254 + 1 bytes, plus the 0x00 delimiter (docs/protocol.md;
    equal to edgelearn.link.framing.max_wire_len, tested)."""
    n = 4 + max_payload + 4
    return n + n // 254 + 1 + 1


def link_layout(link: LinkShape) -> list[BufferSpec]:
    """A board's link buffers: rx and tx of one largest frame, a reply cache and a reorder
    buffer of ``window`` frames each."""
    wire = max_wire_bytes(link.max_payload)
    u8 = np.dtype(np.uint8)
    return [BufferSpec("link.rx", (wire,), u8, "link", "receive frame"),
            BufferSpec("link.tx", (wire,), u8, "link", "transmit frame"),
            BufferSpec("link.reply_cache", (link.window * wire,), u8, "link",
                       f"last {link.window} replies (retransmissions are answered, not re-run)"),
            BufferSpec("link.reorder", (link.window * wire,), u8, "link",
                       f"up to {link.window} requests held until a gap is filled")]


def hep_accumulator_count(sizes: Sequence[int]) -> int:
    """Accumulators of the factored hEP estimator (docs/protocol.md section 8.4): every bias,
    and the synapses between relaxing layers (W_k for k >= 2); the first layer's gradient is
    its bias accumulator times the clamped input."""
    return sum(sizes[1:]) + sum(a * b for a, b in zip(sizes[1:], sizes[2:]))


def _has(v) -> bool:
    return v is not None and v is not False


def step_list_len(layers: Sequence) -> int:
    """m of ``kernel.scratch``: the widest layer input or output."""
    return max(max(int(la.n_in), int(la.n_out)) for la in layers)


def lpl_scratch_bytes(n_in: int, n_out: int, decorr: bool, epoch: bool = False) -> int:
    """Bytes of ``lpl.scratch`` for an n_out x n_in LPL layer (the C step's working memory,
    firmware/src/el_lpl.c): per-neuron factors p (int64 n_out), deviations d (int64 n_out, with
    decorrelation), filtered activities x and z (int32 n_in, n_out), and the window search:
    values (uint32 n_in + 4), their indices in bucket order (uint16 n_in), bucket starts and
    cursors (uint16 2 nb + 1, nb the power of two >= n_in) as the Cortex-M build uses it (a
    host build keeps the values and a bucket bitmap in the same bytes); with a learning epoch
    (``epoch``) also the epoch means in Q.A (int32 n_in + n_out); rounded up to 8."""
    nb = 1 << max(int(n_in) - 1, 0).bit_length()
    b = (8 * (n_out + (n_out if decorr else 0)) + 4 * n_in + 4 * n_out + 4 * (n_in + 4)
         + 2 * n_in + 2 * (2 * nb + 1))
    b += 4 * (n_in + n_out) if epoch else 0
    return (b + 7) // 8 * 8


def arena_layout(layers: Sequence, *, input_bits: int = 8, link: LinkShape | None = None,
                 head_sizes: Sequence[int] | None = None,
                 lpl: Sequence[tuple[int, StateShapes]] = (),
                 hep_replay: int | None = None) -> list[BufferSpec]:
    """Every buffer of one deployment, in allocation order (the last two are the working
    memory of one step: ``kernel.scratch`` always, ``lpl.scratch`` with LPL).

    Args:
        layers: the model's layers (float, integer or planner shapes): name, n_in, n_out,
            spiking, and recurrent/bias (an array, True, or None/False when absent).
        input_bits: width of the network input (int8 buffer up to 8 bits, else int16).
        link: the board's link buffers, or None (host targets).
        head_sizes: the hEP head's layer widths, or None without a head.
        lpl: (layer index, LPL state shapes) per adapted layer, in index order; the shapes
            are ``edgelearn.rules.lpl_codes.state_shapes`` of that layer.
        hep_replay: None without hEP learning, else the replay ring length R (0: none).
    """
    out: list[BufferSpec] = [] if link is None else link_layout(link)

    def add(name: str, shape, dtype, cat: str, note: str = "") -> None:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        out.append(BufferSpec(name, tuple(int(s) for s in shape), np.dtype(dtype), cat, note))

    wide = input_bits > 8
    add("input", layers[0].n_in, np.int16 if wide else np.int8, "io",
        f"one time step of network input, {'int16' if wide else 'int8'}")
    for la in layers:
        n = la.n_out
        add(f"{la.name}.weight", (n, la.n_in), np.int8, "weights", f"int8 {n}x{la.n_in}")
        if _has(la.recurrent):
            add(f"{la.name}.recurrent", (n, n), np.int8, "weights", "int8")
        if _has(la.bias):
            add(f"{la.name}.bias", n, np.int32, "weights", "int32")
        add(f"{la.name}.consts", 2 * n, np.int32, "weights",
            "alpha, beta int16 + threshold int32 per neuron")
        add(f"{la.name}.state", (2, n), np.int32, "state", "current, membrane int32")
        if la.spiking:
            add(f"{la.name}.spikes", n, np.uint8, "state", "uint8 spike vector")
    f = layers[feature_layer_index(layers)]
    add("features", f.n_out, np.uint16, "state", f"uint16 spike counts of '{f.name}' over a "
                                                 f"sample")
    add("output", layers[-1].n_out, np.int32, "io", "int32 readout accumulator")
    if head_sizes is not None:
        sizes = tuple(int(v) for v in head_sizes)
        N = sum(sizes[1:])
        add("head.weights", sum(a * b + b for a, b in zip(sizes, sizes[1:])), np.float32,
            "weights", f"float32 hEP head {'-'.join(map(str, sizes))}")
        add("head.norm", (2, sizes[0]), np.float32, "weights", "float32 feature mean and std")
        add("head.work", sum(n * n for n in sizes[2:]) + 6 * N, np.float64, "state",
            "float64 relaxation: state, residual, step, trial point, Schur blocks")
    for k, shapes in lpl:
        name = layers[k].name
        for field, shape, dtype in shapes:
            if int(np.prod(shape)):
                add(f"{name}.lpl.{field}", shape, dtype, "learning",
                    f"{np.dtype(dtype).name} {'x'.join(map(str, shape))}")
    if hep_replay is not None and head_sizes is not None:
        sizes = tuple(int(v) for v in head_sizes)
        add("head.accumulators", hep_accumulator_count(sizes), np.float64, "learning",
            "float64, per bias and per synapse between relaxing layers")
        add("head.nudged_state", sum(sizes[1:]), np.float64, "learning",
            "float64 state carried from phase to phase")
        R = int(hep_replay)
        if R:
            n_o, n_h = layers[-1].n_out, f.n_out
            add("head.replay.counts", (R, n_h), np.uint8, "learning",
                f"uint8 spike counts of {R} labelled samples")
            add("head.replay.scores", (R, n_o), np.float16, "learning", "float16 readout scores")
            add("head.replay.labels", R, np.uint8, "learning", "uint8 labels")
            add("head.replay.lengths", R, np.uint16, "learning", "uint16 lengths")
            add("head.replay.ring", 2, np.int32, "learning", "int32 position, fill")
    m = step_list_len(layers)
    add("kernel.scratch", (4, m), np.uint16, "state",
        f"uint16 lists of one step: active inputs, their values, spikes, last step's spikes "
        f"(widest layer {m})")
    if lpl:
        need = max(lpl_scratch_bytes(layers[k].n_in, layers[k].n_out,
                                     any(f == "cov" and int(np.prod(sh)) for f, sh, _ in shapes),
                                     any(f == "epoch_steps" and int(np.prod(sh))
                                         for f, sh, _ in shapes))
                   for k, shapes in lpl)
        add("lpl.scratch", need, np.uint8, "learning",
            "LPL step working memory: factors, filtered activities, window search")
    return out
