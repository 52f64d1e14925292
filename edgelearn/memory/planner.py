"""The memory planner: which buffers a deployment needs, and what to adapt under a budget.

A plan is a list of :class:`Buffer` entries (name, bytes, category) for one streaming device
(batch 1). Categories:

    weights   int8 synapses, int32 biases, neuron constants           (inference)
    state     synaptic current and membrane, spike vectors, features  (inference)
    io        input step buffer and output accumulators               (inference)
    link      frame buffers of the serial link (board targets only)   (inference)
    learning  LPL per-neuron state (rate form), hEP accumulators and replay ring

LPL runs in its rate form on the int8 weights with stochastic rounding (what the device engine
implements); the spiking LPL rule and int16 master weights exist as library code
(edgelearn.rules.lpl_spiking, edgelearn.rules.memory_cost) but no deployment uses them, so the
planner never charges them.

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
class LinkShape:
    """The serial link's buffers on a board: what the board announces in its HELLO reply.

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
class AdaptConfig:
    """What to adapt on the device.

    Attributes:
        lpl_layers: names of hidden layers that LPL adapts (empty: no LPL); rate-form LPL on
            the int8 weights with stochastic rounding.
        hep: train the hEP head when labels arrive.
    """

    lpl_layers: tuple[str, ...] = ()
    hep: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "lpl_layers", tuple(self.lpl_layers))

    def describe(self) -> str:
        parts = []
        if self.lpl_layers:
            parts.append(f"LPL on {', '.join(self.lpl_layers)}")
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
    link: LinkShape | None = None

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
                    AdaptConfig(), ["all learning dropped (frozen baseline)"], self.image_bytes,
                    self.link)

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
            "link": None if self.link is None else {"window": self.link.window,
                                                    "max_payload": self.link.max_payload,
                                                    "source": self.link.source},
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
        if self.link is not None:
            out.append(f"link: {self.link.describe()}")
        if self.config.hep and not self.profile.fpu:
            out.append(f"profile '{self.profile.name}' has no FPU: the float32 hEP head runs "
                       f"in software floating point (slower; memory as planned)")
        return out


# ---- buffer lists ---------------------------------------------------------------------------

LINK_FRAME_BYTES = 1100  # smallest rx and tx frame buffer a board allocates


def max_wire_bytes(max_payload: int) -> int:
    """Largest wire frame (delimiter included) for ``max_payload``: COBS of header (4 B) +
    payload + CRC (4 B), n + n // 254 + 1 bytes, plus the 0x00 delimiter (docs/protocol.md;
    equal to edgelearn.link.framing.max_wire_len, tested)."""
    n = 4 + max_payload + 4
    return n + n // 254 + 1 + 1


def link_buffers(link: LinkShape, align: int) -> list[Buffer]:
    """A board's link buffers: rx and tx of at least one largest frame (never below
    LINK_FRAME_BYTES), and a reply cache and a reorder buffer of ``window`` frames each."""
    wire = max_wire_bytes(link.max_payload)
    frame = aligned(max(wire, LINK_FRAME_BYTES), align)
    held = aligned(link.window * wire, align)
    return [Buffer("link.rx", frame, "link", "receive frame"),
            Buffer("link.tx", frame, "link", "transmit frame"),
            Buffer("link.reply_cache", held, "link",
                   f"last {link.window} replies (retransmissions are answered, not re-run)"),
            Buffer("link.reorder", held, "link",
                   f"up to {link.window} requests held until a gap is filled")]


def as_link(link: "LinkShape | bool | None") -> LinkShape | None:
    """``True`` means a board with the protocol defaults, ``False``/None no link."""
    if link is True:
        return LinkShape()
    return link or None


def inference_buffers(layers: tuple[LayerShape, ...], align: int,
                      link: "LinkShape | bool | None", head: HeadShape | None) -> list[Buffer]:
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
    link = as_link(link)
    if link is not None:
        out += link_buffers(link, align)
    return out


def lpl_state_arrays(layer: LayerShape):
    """The LPL state a device allocates for ``layer`` (the rule's own ``init_fixed``)."""
    from edgelearn.device.engine import default_lpl
    from edgelearn.rules import lpl_rate

    return lpl_rate.init_fixed(default_lpl(), layer.n_in, layer.n_out)


def lpl_buffers(layer: LayerShape, align: int) -> list[Buffer]:
    """Learning state of LPL on one layer: one buffer per array of the rule's state (sizes
    from the rule's own allocation, so plan and device agree)."""
    st = lpl_state_arrays(layer)
    return [Buffer(f"{layer.name}.lpl.{name}", aligned(arr.nbytes, align), "learning",
                   f"{arr.dtype} {'x'.join(map(str, arr.shape))}")
            for name, arr in zip(st._fields, st) if arr.nbytes]


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


def buffers_for(layers: tuple[LayerShape, ...], config: AdaptConfig, align: int,
                link: "LinkShape | bool | None", head: HeadShape | None) -> list[Buffer]:
    out = inference_buffers(layers, align, link, head)
    names = {la.name: la for la in layers}
    for name in config.lpl_layers:
        out += lpl_buffers(names[name], align)
    if config.hep and head is not None:
        out += hep_buffers(head, align)
    return out


def ladder(requested: AdaptConfig, hidden: tuple[str, ...]) -> list[tuple[AdaptConfig, str]]:
    """Cheaper configurations to try in order, each with the sentence that says what it drops."""
    steps: list[tuple[AdaptConfig, str]] = [(requested, "")]
    cfg = requested
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


def _within(a: AdaptConfig, b: AdaptConfig) -> bool:
    """True if configuration ``a`` adapts nothing that ``b`` does not."""
    return set(a.lpl_layers) <= set(b.lpl_layers) and (b.hep or not a.hep)


def plan_deployment(layers: tuple[LayerShape, ...], budget: int, profile: DeviceProfile,
                    requested: AdaptConfig, link: "LinkShape | bool | None" = None,
                    head: HeadShape | None = None, image_bytes: int = 0) -> Plan:
    """Choose the richest configuration of :func:`ladder` that fits ``budget`` bytes of RAM.

    ``link``: the board's link (:class:`LinkShape`, from its HELLO reply); ``True`` assumes
    the protocol defaults; None for targets without a serial link."""
    link = as_link(link)
    if budget > profile.ram:
        raise MemoryBudgetError(f"budget {budget} B exceeds the RAM of profile "
                                f"'{profile.name}' ({profile.ram} B); pick a larger --device "
                                f"(edgelearn plan --list-devices)")
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
    steps = ladder(requested, hidden)
    for k, (cfg, _) in enumerate(steps):
        bufs = buffers_for(layers, cfg, align, link, head)
        if sum(b.nbytes for b in bufs) <= budget:
            # what was dropped on the way: every rung the chosen one is no richer than (the
            # two single-rule rungs are alternatives, only the one taken is reported)
            dropped = [what for c, what in steps[1:k + 1] if _within(cfg, c)]
            return Plan(budget, profile, bufs, cfg, requested, dropped, image_bytes, link)
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
