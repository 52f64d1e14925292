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

from edgelearn.errors import MemoryBudgetError
from edgelearn.memory.layout import LinkShape, arena_layout, link_layout, max_wire_bytes  # noqa: F401
from edgelearn.memory.profiles import DeviceProfile, format_bytes
from edgelearn.model import hidden_layer_indices
from edgelearn.rules import lpl_rate

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
class AdaptConfig:
    """What to adapt on the device.

    Attributes:
        lpl_layers: names of hidden layers that LPL adapts (empty: no LPL); rate-form LPL on
            the int8 weights with stochastic rounding.
        hep: train the hEP head when labels arrive.
        lpl: the LPL parameters (they decide which state arrays a layer needs, e.g. the
            per-neuron homeostatic target); None means ``lpl_rate.deploy_default()``.
    """

    lpl_layers: tuple[str, ...] = ()
    hep: bool = False
    lpl: lpl_rate.Params | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lpl_layers", tuple(self.lpl_layers))

    def describe(self) -> str:
        parts = []
        if self.lpl_layers:
            epoch = 1 if self.lpl is None else self.lpl.epoch
            parts.append(f"LPL on {', '.join(self.lpl_layers)}"
                         + (f" (learning epoch {epoch} steps)" if epoch > 1 else ""))
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
    remarks: list[str] = field(default_factory=list)

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

    def headline(self) -> str:
        """The plan in one line (the full table: :meth:`table`)."""
        ratio = self.learning_bytes / self.inference_bytes if self.inference_bytes else 0.0
        return (f"memory plan: {self.total_bytes} B of the {format_bytes(self.budget)} budget "
                f"on {self.profile.name} (inference {self.inference_bytes} B, learning "
                f"{self.learning_bytes} B = {100 * ratio:.1f} %); adapting "
                f"{self.config.describe()}"
                + (f"; dropped {len(self.dropped)} rung(s) to fit" if self.dropped else ""))

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
        out = list(self.remarks)
        if self.link is not None:
            out.append(f"link: {self.link.describe()}")
        if self.config.hep and not self.profile.fpu:
            out.append(f"profile '{self.profile.name}' has no FPU: the float32 hEP head runs "
                       f"in software floating point (slower; memory as planned)")
        return out


# ---- buffer lists (the arena layout of edgelearn.memory.layout, in bytes) ------------------

def as_link(link: "LinkShape | bool | None") -> LinkShape | None:
    """``True`` means a board with the protocol defaults, ``False``/None no link."""
    if link is True:
        return LinkShape()
    return link or None


def _buffers(specs, align: int) -> list[Buffer]:
    return [Buffer(b.name, b.padded(align), b.category, b.note) for b in specs]


def link_buffers(link: LinkShape, align: int) -> list[Buffer]:
    """A board's link buffers (:func:`edgelearn.memory.layout.link_layout`)."""
    return _buffers(link_layout(link), align)


def lpl_state_shapes(layer: LayerShape, params: lpl_rate.Params | None = None):
    """The LPL state a device allocates for ``layer`` with the deployment's LPL parameters
    (``params``, default ``lpl_rate.deploy_default``)."""
    return lpl_rate.state_shapes(params or lpl_rate.deploy_default(), layer.n_in, layer.n_out)


def buffers_for(layers: tuple[LayerShape, ...], config: AdaptConfig, align: int,
                link: "LinkShape | bool | None", head: HeadShape | None,
                input_bits: int = 8) -> list[Buffer]:
    """Every buffer of the deployment (:func:`edgelearn.memory.layout.arena_layout`)."""
    names = [la.name for la in layers]
    lpl = [(names.index(n), lpl_state_shapes(layers[names.index(n)], config.lpl))
           for n in sorted(config.lpl_layers, key=names.index)]
    return _buffers(arena_layout(
        layers, input_bits=input_bits, link=as_link(link),
        head_sizes=None if head is None else head.sizes, lpl=lpl,
        hep_replay=head.replay if (config.hep and head is not None) else None), align)


def inference_buffers(layers: tuple[LayerShape, ...], align: int,
                      link: "LinkShape | bool | None", head: HeadShape | None,
                      input_bits: int = 8) -> list[Buffer]:
    """Buffers for inference alone (no learning state)."""
    return buffers_for(layers, AdaptConfig(), align, link, head, input_bits)


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
                    head: HeadShape | None = None, image_bytes: int = 0,
                    input_bits: int = 8) -> Plan:
    """Choose the richest configuration of :func:`ladder` that fits ``budget`` bytes of RAM.

    ``link``: the board's link (:class:`LinkShape`, from its HELLO reply); ``True`` assumes
    the protocol defaults; None for targets without a serial link."""
    link = as_link(link)
    if budget > profile.ram:
        raise MemoryBudgetError(f"budget {budget} B exceeds the RAM of profile "
                                f"'{profile.name}' ({profile.ram} B); pick a larger --device "
                                f"(edgelearn plan --list-devices)")
    names = [la.name for la in layers]
    hidden = tuple(names[k] for k in hidden_layer_indices(layers))
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
        bufs = buffers_for(layers, cfg, align, link, head, input_bits)
        if sum(b.nbytes for b in bufs) <= budget:
            # what was dropped on the way: every rung the chosen one is no richer than (the
            # two single-rule rungs are alternatives, only the one taken is reported)
            dropped = [what for c, what in steps[1:k + 1] if _within(cfg, c)]
            return Plan(budget, profile, bufs, cfg, requested, dropped, image_bytes, link)
    bufs = inference_buffers(layers, align, link, head, input_bits)
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
