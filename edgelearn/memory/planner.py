"""The memory planner: which buffers a deployment needs, and what to adapt under a budget.

A plan is a list of :class:`Buffer` entries (name, bytes, category) for one streaming device
(batch 1). Categories:

    weights   int8 synapses, int32 biases, neuron constants           (inference)
    state     synaptic current and membrane, spike vectors, features  (inference)
    io        input step buffer and output accumulators               (inference)
    link      frame buffers of the serial link (board targets only)   (inference)
    learning  LPL per-neuron state, spiking eligibility, hEP accumulators, int16 master weights

Every buffer is rounded up to the device word (the arena aligns the same way), so the plan
equals what an :class:`~edgelearn.memory.arena.Arena` measures when the runtime allocates the
same arrays. When the requested learning does not fit, :func:`plan_deployment` walks a fixed
ladder of cheaper configurations and records what it dropped; when even inference does not fit
it raises :class:`MemoryBudgetError` listing requested / available / missing per buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from edgelearn.errors import MemoryBudgetError, ParameterError
from edgelearn.memory.arena import aligned
from edgelearn.memory.profiles import DeviceProfile, format_bytes

INFERENCE_CATEGORIES = ("weights", "state", "io", "link")
LPL_VARIANTS = ("rate", "spiking-exact", "spiking-factorised")
MASTER_WEIGHTS = ("int16", "int8-sr")


@dataclass(frozen=True)
class LayerShape:
    """What the planner needs to know of one layer (sizes only, no values)."""

    name: str
    n_in: int
    n_out: int
    recurrent: bool
    spiking: bool
    bias: bool


@dataclass(frozen=True)
class HeadShape:
    """The hEP head: layer widths input -> hidden... -> output (the input is the last hidden
    layer's rates followed by the readout scores) and the replay buffer length."""

    sizes: tuple[int, ...]
    replay: int = 16       # the engine's default (edgelearn.device.engine.HEPSettings; tested)


@dataclass(frozen=True)
class AdaptConfig:
    """What to adapt on the device.

    Attributes:
        lpl_layers: names of hidden layers that LPL adapts (empty: no LPL).
        lpl_variant: 'rate', 'spiking-exact' (per-synapse eligibility trace) or
            'spiking-factorised' (per-neuron traces only).
        master_weights: 'int16' keeps int16 master copies of adapted weights; 'int8-sr' applies
            updates to the int8 weights with stochastic rounding.
        hep: train the hEP head when labels arrive.
    """

    lpl_layers: tuple[str, ...] = ()
    lpl_variant: str = "rate"
    master_weights: str = "int8-sr"
    hep: bool = False

    def __post_init__(self) -> None:
        if self.lpl_variant not in LPL_VARIANTS:
            raise ParameterError(f"lpl_variant must be one of {LPL_VARIANTS}, got "
                                 f"{self.lpl_variant!r}")
        if self.master_weights not in MASTER_WEIGHTS:
            raise ParameterError(f"master_weights must be one of {MASTER_WEIGHTS}, got "
                                 f"{self.master_weights!r}")
        object.__setattr__(self, "lpl_layers", tuple(self.lpl_layers))

    def describe(self) -> str:
        parts = []
        if self.lpl_layers:
            parts.append(f"LPL[{self.lpl_variant}, {self.master_weights}] on "
                         f"{', '.join(self.lpl_layers)}")
        if self.hep:
            parts.append("hEP head")
        return " + ".join(parts) if parts else "inference only"


@dataclass(frozen=True)
class Buffer:
    name: str
    nbytes: int
    category: str
    note: str = ""


@dataclass
class Plan:
    """The result of planning: buffers, totals, the chosen configuration and what was dropped."""

    budget: int
    profile: DeviceProfile
    buffers: list[Buffer]
    config: AdaptConfig
    requested: AdaptConfig
    dropped: list[str] = field(default_factory=list)
    image_bytes: int = 0

    @property
    def inference_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers if b.category in INFERENCE_CATEGORIES)

    @property
    def learning_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers if b.category == "learning")

    @property
    def total_bytes(self) -> int:
        return self.inference_bytes + self.learning_bytes

    def without_learning(self) -> "Plan":
        """The same deployment with all learning dropped (a frozen twin)."""
        return Plan(self.budget, self.profile,
                    [b for b in self.buffers if b.category != "learning"], AdaptConfig(),
                    AdaptConfig(), ["all learning dropped (frozen baseline)"], self.image_bytes)

    def by_category(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.buffers:
            out[b.category] = out.get(b.category, 0) + b.nbytes
        return out

    def to_json(self) -> dict:
        return {
            "budget_bytes": self.budget,
            "profile": self.profile.name,
            "total_bytes": self.total_bytes,
            "inference_bytes": self.inference_bytes,
            "learning_bytes": self.learning_bytes,
            "learning_over_inference": (self.learning_bytes / self.inference_bytes
                                        if self.inference_bytes else 0.0),
            "free_bytes": self.budget - self.total_bytes,
            "image_bytes": self.image_bytes,
            "config": self.config.describe(),
            "requested": self.requested.describe(),
            "dropped": list(self.dropped),
            "notes": self.notes,
            "buffers": [{"name": b.name, "bytes": b.nbytes, "category": b.category,
                         "note": b.note} for b in self.buffers],
        }

    def table(self) -> str:
        lines = [f"memory plan for {self.profile.name} ({self.profile.description})",
                 f"budget {self.budget} B ({format_bytes(self.budget)})",
                 f"{'buffer':<28} {'category':<9} {'bytes':>9}  note"]
        for b in self.buffers:
            lines.append(f"{b.name:<28} {b.category:<9} {b.nbytes:>9}  {b.note}")
        lines.append(f"{'inference':<38} {self.inference_bytes:>9}")
        ratio = self.learning_bytes / self.inference_bytes if self.inference_bytes else 0.0
        lines.append(f"{'learning':<38} {self.learning_bytes:>9}  "
                     f"({100 * ratio:.1f} % of inference)")
        lines.append(f"{'total':<38} {self.total_bytes:>9}  free "
                     f"{self.budget - self.total_bytes} B")
        if self.image_bytes:
            lines.append(f"{'model image (flash, per slot)':<38} {self.image_bytes:>9}")
        lines.append(f"adapting: {self.config.describe()}")
        for d in self.dropped:
            lines.append(f"dropped: {d}")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)

    @property
    def notes(self) -> list[str]:
        """Facts of the plan a user should know that are not memory."""
        out = []
        if self.config.hep and not self.profile.fpu:
            out.append(f"profile '{self.profile.name}' has no FPU: the float32 hEP head runs "
                       f"in software floating point (slower; memory as planned)")
        return out


# ---- buffer lists ---------------------------------------------------------------------------

LINK_FRAME_BYTES = 1100  # one max-size frame (1024 B payload + header + COBS + CRC), rx and tx
LINK_MAX_WIRE = 1038     # edgelearn.link.framing.max_wire_len(1024) (tested equal)
LINK_WINDOW = 2          # frames in flight a deployed board keeps (reply cache, reorder buffer)


def inference_buffers(layers: tuple[LayerShape, ...], align: int, link: bool,
                      head: HeadShape | None) -> list[Buffer]:
    """Buffers for streaming inference (batch 1). Layout follows docs/memory.md."""
    out: list[Buffer] = []

    def add(name: str, nbytes: int, cat: str, note: str = "") -> None:
        out.append(Buffer(name, aligned(nbytes, align), cat, note))

    add("input", layers[0].n_in, "io", "one time step of input counts, uint8")
    for la in layers:
        add(f"{la.name}.weight", la.n_out * la.n_in, "weights", f"int8 {la.n_out}x{la.n_in}")
        if la.recurrent:
            add(f"{la.name}.recurrent", la.n_out * la.n_out, "weights", "int8")
        if la.bias:
            add(f"{la.name}.bias", 4 * la.n_out, "weights", "int32")
        add(f"{la.name}.consts", 8 * la.n_out, "weights",
            "alpha, beta int16 + threshold int32 per neuron")
        add(f"{la.name}.state", 8 * la.n_out, "state", "current, membrane int32")
        if la.spiking:
            add(f"{la.name}.spikes", la.n_out, "state", "uint8 spike vector")
    hidden = [la for la in layers[:-1] if la.spiking] or [la for la in layers if la.spiking]
    last_hidden = hidden[-1]          # the engine's feature layer (edgelearn.device.engine)
    add("features", 2 * last_hidden.n_out, "state",
        f"uint16 spike counts of '{last_hidden.name}' over a sample")
    add("output", 4 * layers[-1].n_out, "io", "int32 readout accumulator")
    if head is not None:
        n_w = sum(a * b for a, b in zip(head.sizes, head.sizes[1:]))
        n_b = sum(head.sizes[1:])
        add("head.weights", 4 * (n_w + n_b), "weights",
            f"float32 hEP head {'-'.join(map(str, head.sizes))}")
        add("head.norm", 4 * 2 * head.sizes[0], "weights", "float32 feature mean and std")
        add("head.state", 4 * 2 * sum(head.sizes[1:]), "state",
            "float32 free-phase state and its previous iterate")
    if link:
        add("link.rx", LINK_FRAME_BYTES, "link", "receive frame")
        add("link.tx", LINK_FRAME_BYTES, "link", "transmit frame")
        add("link.reply_cache", LINK_WINDOW * LINK_MAX_WIRE, "link",
            f"last {LINK_WINDOW} replies (retransmissions are answered, not re-run)")
        add("link.reorder", LINK_WINDOW * LINK_MAX_WIRE, "link",
            f"up to {LINK_WINDOW} requests held until a gap is filled")
    return out


def lpl_state_arrays(layer: LayerShape, variant: str):
    """The LPL state a device allocates for ``layer`` (the rule's own ``init_fixed``)."""
    from edgelearn.device.engine import default_lpl
    from edgelearn.rules import lpl_rate, lpl_spiking

    if variant == "rate":
        return lpl_rate.init_fixed(default_lpl(), layer.n_in, layer.n_out)
    p = lpl_spiking.Params(variant=variant.removeprefix("spiking-"))
    return lpl_spiking.init_fixed(p, layer.n_in, layer.n_out)


def lpl_buffers(layer: LayerShape, variant: str, master: str, align: int) -> list[Buffer]:
    """Learning state of LPL on one layer: one buffer per array of the rule's state (sizes
    from the rule's own allocation, so plan and device agree), plus int16 master weights."""
    st = lpl_state_arrays(layer, variant)
    out = [Buffer(f"{layer.name}.lpl.{name}", aligned(arr.nbytes, align), "learning",
                  f"{arr.dtype} {'x'.join(map(str, arr.shape))}")
           for name, arr in zip(st._fields, st) if arr.nbytes]
    if master == "int16":
        out.append(Buffer(f"{layer.name}.master", aligned(2 * layer.n_in * layer.n_out, align),
                          "learning", "int16 master weights"))
    return out


def hep_buffers(head: HeadShape, align: int) -> list[Buffer]:
    """hEP learning state: the factored accumulators (edgelearn.device.hep_factored: biases
    and the synapses between relaxing layers) and the state carried from phase to phase."""
    from edgelearn.device.hep_factored import accumulator_count

    return [Buffer("head.accumulators", aligned(4 * accumulator_count(head.sizes), align),
                   "learning", "float32, per bias and per synapse between relaxing layers"),
            Buffer("head.nudged_state", aligned(4 * sum(head.sizes[1:]), align), "learning",
                   "float32 state carried from phase to phase")] + replay_buffers(head, align)


def replay_buffers(head: HeadShape, align: int) -> list[Buffer]:
    """The ring buffer of labelled samples that hEP replays (edgelearn.device.engine)."""
    R = head.replay
    if not R:
        return []
    n_o = head.sizes[-1]
    n_h = head.sizes[0] - n_o
    return [Buffer("head.replay.counts", aligned(R * n_h, align), "learning",
                   f"uint8 spike counts of {R} labelled samples"),
            Buffer("head.replay.scores", aligned(2 * R * n_o, align), "learning",
                   "float16 readout scores"),
            Buffer("head.replay.labels", aligned(R, align), "learning", "uint8 labels"),
            Buffer("head.replay.lengths", aligned(2 * R, align), "learning", "uint16 lengths"),
            Buffer("head.replay.ring", aligned(8, align), "learning", "int32 position, fill")]


def buffers_for(layers: tuple[LayerShape, ...], config: AdaptConfig, align: int, link: bool,
                head: HeadShape | None) -> list[Buffer]:
    out = inference_buffers(layers, align, link, head)
    names = {la.name: la for la in layers}
    for name in config.lpl_layers:
        out += lpl_buffers(names[name], config.lpl_variant, config.master_weights, align)
    if config.hep and head is not None:
        out += hep_buffers(head, align)
    return out


def ladder(requested: AdaptConfig, hidden: tuple[str, ...]) -> list[tuple[AdaptConfig, str]]:
    """Cheaper configurations to try in order, each with the sentence that says what it drops."""
    steps: list[tuple[AdaptConfig, str]] = [(requested, "")]
    cfg = requested
    if cfg.master_weights == "int16" and cfg.lpl_layers:
        cfg = replace(cfg, master_weights="int8-sr")
        steps.append((cfg, "int16 master weights -> int8 with stochastic rounding"))
    if cfg.lpl_variant == "spiking-exact" and cfg.lpl_layers:
        cfg = replace(cfg, lpl_variant="spiking-factorised")
        steps.append((cfg, "exact spiking LPL (per-synapse eligibility) -> factorised variant"))
    if len(cfg.lpl_layers) > 1:
        last = tuple(n for n in hidden if n in cfg.lpl_layers)[-1:]
        cfg = replace(cfg, lpl_layers=last)
        steps.append((cfg, f"LPL restricted to the last hidden layer '{last[0]}'"))
    if cfg.lpl_layers and cfg.hep:
        steps.append((replace(cfg, lpl_layers=()), "LPL dropped (hEP head only)"))
        steps.append((replace(cfg, hep=False), "hEP dropped (LPL only)"))
    if cfg.lpl_layers or cfg.hep:
        steps.append((AdaptConfig(), "all learning dropped (inference only)"))
    return steps


def plan_deployment(layers: tuple[LayerShape, ...], budget: int, profile: DeviceProfile,
                    requested: AdaptConfig, link: bool = False, head: HeadShape | None = None,
                    image_bytes: int = 0) -> Plan:
    """Choose the richest configuration of :func:`ladder` that fits ``budget`` bytes of RAM."""
    if budget > profile.ram:
        raise MemoryBudgetError(f"budget {budget} B exceeds the RAM of profile "
                                f"'{profile.name}' ({profile.ram} B)")
    names = [la.name for la in layers]
    hidden = tuple(la.name for la in layers if la.spiking and la is not layers[-1]) or \
        tuple(la.name for la in layers if la.spiking)
    for name in requested.lpl_layers:
        if name not in names:
            raise MemoryBudgetError(f"LPL layer '{name}' is not in the model (layers: {names})")
    if requested.hep and head is None:
        raise MemoryBudgetError("hEP requested but the deployment has no hEP head")
    if image_bytes and profile.flash and 2 * image_bytes > profile.flash:
        raise MemoryBudgetError(f"model image {image_bytes} B does not fit two flash slots of "
                                f"profile '{profile.name}' (flash {profile.flash} B, needs "
                                f"{2 * image_bytes} B, missing {2 * image_bytes - profile.flash} B)")
    align = profile.word_bytes
    dropped: list[str] = []
    for cfg, what in ladder(requested, hidden):
        if what:
            dropped.append(what)
        bufs = buffers_for(layers, cfg, align, link, head)
        if sum(b.nbytes for b in bufs) <= budget:
            return Plan(budget, profile, bufs, cfg, requested, dropped, image_bytes)
    bufs = inference_buffers(layers, align, link, head)
    total = sum(b.nbytes for b in bufs)
    detail = []
    avail = budget
    for b in bufs:
        got = min(avail, b.nbytes)
        avail -= got
        if got < b.nbytes:
            detail.append(f"{b.name} requested {b.nbytes} available {got} missing "
                          f"{b.nbytes - got}")
    raise MemoryBudgetError(
        f"inference alone needs {total} B but the budget is {budget} B (missing "
        f"{total - budget} B): " + "; ".join(detail))


def shapes_of(net) -> tuple[LayerShape, ...]:
    """Layer sizes of a :class:`~edgelearn.model.Network` (or any object with .layers whose
    entries have name, n_in, n_out, spiking, recurrent, bias)."""
    return tuple(LayerShape(la.name, la.n_in, la.n_out, la.recurrent is not None,
                            bool(la.spiking), la.bias is not None) for la in net.layers)
