"""A deployable bundle: the float network, its integer twin, and the hEP head.

Files next to a model ``NAME.onnx`` (all optional):

    NAME.head.npz    the hEP head on normalised features (edgelearn.device.head), trained
                     by tools/train_head.py; without it, hEP is unavailable
    NAME.calib.npz   calibration inputs (key ``x``, [N, T, n_in]) for quantization

A quantized ONNX file (tools/quantize.py) is used as is; a float one is quantized at load time
with calibration data from ``--calib``, the side file, or the bundled data set named in the
model's metadata (``meta["dataset"]`` "speech").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelearn.boundary import read_npz
from edgelearn.data import load_speech_digits
from edgelearn.data.dataset import read_npz_arrays
from edgelearn.errors import MemoryBudgetError, ModelFileError
from edgelearn.io import load_any
from edgelearn.io.onnx_load import read_model_file
from edgelearn.io.onnx_quant import is_quantized_model, load_qnetwork
from edgelearn.kernels.lif_fixed import QNetwork, dequantize
from edgelearn.memory import get_profile, parse_bytes
from edgelearn.memory.planner import (AdaptConfig, HeadShape, LinkShape, Plan, plan_deployment,
                                      shapes_of)
from edgelearn.memory.profiles import DEFAULT_PROFILE, DeviceProfile
from edgelearn.model import Network, feature_layer_index, hidden_layer_indices
from edgelearn.quant.calibrate import quantize_network
from edgelearn.rules import lpl_presets, lpl_rate
from edgelearn.device.head import DeviceHead

CALIBRATION_SAMPLES = 256


@dataclass
class Bundle:
    """What a deployment carries."""

    network: Network
    qnet: QNetwork | None
    head: DeviceHead | None
    source: Path
    head_path: Path | None = None
    calib: str | None = None

    def reference_inputs(self) -> np.ndarray:
        """Training inputs [N, T, n_in] for the LPL starting statistics
        (edgelearn.adapt.reference): the calibration data of :func:`calibration_inputs`."""
        return np.swapaxes(calibration_inputs(self.network, self.source, self.calib), 0, 1)

    @property
    def hidden_names(self) -> tuple[str, ...]:
        """Spiking layers before the readout (LPL candidates; edgelearn.model)."""
        layers = self.network.layers
        return tuple(layers[k].name for k in hidden_layer_indices(layers))

    @property
    def feature_layer(self) -> str:
        """The layer whose spike counts feed the head (edgelearn.model.feature_layer_index)."""
        return self.network.layers[feature_layer_index(self.network.layers)].name


def side_file(model: Path, suffix: str) -> Path:
    """``NAME.onnx`` (or ``NAME.nir``) -> ``NAME`` + suffix, beside it."""
    name = model.name
    for ext in (".onnx", ".nir"):
        name = name.removesuffix(ext)
    return model.with_name(name + suffix)


def calibration_inputs(net: Network, model: Path, calib: str | None) -> np.ndarray:
    """Calibration inputs [T, B, n_in] for quantizing ``net``."""
    side = side_file(model, ".calib.npz")
    if calib or side.exists():
        path = calib or side
        x = read_npz_arrays(path).get("x")
        if x is None:
            raise ModelFileError(f"calibration file {path} has no array 'x' [N, T, n_in]")
    elif net.meta.get("dataset") in ("speech", "speech_digits"):
        x = load_speech_digits("train").x
    else:
        raise ModelFileError(f"model '{model.name}' is a float model and needs calibration data "
                             f"to be quantized: pass --calib DATA.npz (array 'x' [N, T, "
                             f"{net.n_in}])")
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != net.n_in:
        raise ModelFileError(f"calibration data must be [N, T, {net.n_in}], got shape "
                             f"{tuple(x.shape)}")
    return np.ascontiguousarray(np.swapaxes(x[:CALIBRATION_SAMPLES], 0, 1))


def load_head(path: Path) -> DeviceHead:
    """The hEP head file next to a model, checked as untrusted input: the head arrays by
    EnergyHead.load, the normalisation here (1-D real numbers), before DeviceHead uses them."""
    arrays = read_npz(path, what=f"head file {path}", error=ModelFileError)
    for key in ("feature_mean", "feature_std"):
        arr = arrays.get(key)
        if arr is None or arr.ndim != 1 or arr.dtype.kind not in "biuf":
            raise ModelFileError(f"head file {path}: '{key}' must be a 1-D array of numbers")
    return DeviceHead.load(path)


def load_bundle(model: str | Path, quantize: bool = True, calib: str | None = None,
                head: str | None = None, dt: float | None = None) -> Bundle:
    """Load a model file, its head, and (if ``quantize``) its integer twin; ``dt`` (seconds)
    is the time step a NIR file needs (NIR stores none)."""
    model = Path(model)
    if not model.exists():
        raise ModelFileError(f"model file {model} does not exist")
    qnet = None
    if model.suffix == ".onnx" and is_quantized_model(read_model_file(model, check=False)[0]):
        qnet = load_qnetwork(model)
        net = dequantize(qnet)
    else:
        net = load_any(model, dt=dt)
        if not isinstance(net, Network):
            raise ModelFileError(f"model {model.name} is an unrecognised graph and cannot be "
                                 f"deployed for learning: {net.why_no_learning}")
        if quantize:
            qnet, _ = quantize_network(net, calibration_inputs(net, model, calib))
    head_path = Path(head) if head else side_file(model, ".head.npz")
    if head and not head_path.exists():
        raise ModelFileError(f"head file {head} does not exist")
    dhead = load_head(head_path) if head_path.exists() else None
    b = Bundle(net, qnet, dhead, model, head_path if dhead else None, calib)
    n_feat = net.layer(b.feature_layer).n_out + net.n_out
    if dhead is not None and dhead.n_features != n_feat:
        raise ModelFileError(f"head {head_path.name} expects {dhead.n_features} features but "
                             f"the model gives {n_feat} ('{b.feature_layer}' rates and "
                             f"{net.n_out} readout scores)")
    return b


def requested_config(bundle: Bundle, lpl: str = "all", hep: bool = True,
                     rule: str | None = None, epoch: int = 1) -> AdaptConfig:
    """Turn CLI words into an :class:`AdaptConfig` for this bundle (``rule``: an LPL preset of
    edgelearn.rules.lpl_presets; None: ``lpl_rate.deploy_default``; ``epoch``: its learning
    epoch, lpl_rate.Params.epoch)."""
    hidden = bundle.hidden_names
    if lpl == "all":
        layers = hidden
    elif lpl == "last":
        layers = hidden[-1:]
    elif lpl == "none":
        layers = ()
    else:
        layers = tuple(n.strip() for n in lpl.split(",") if n.strip())
        for n in layers:
            bundle.network.layer(n)
    params = None if rule is None else lpl_presets.preset(rule)
    if epoch != 1:
        params = dataclasses.replace(params or lpl_rate.deploy_default(), epoch=epoch)
    return AdaptConfig(lpl_layers=layers, hep=hep and bundle.head is not None, lpl=params)


def plan_bundle(bundle: Bundle, budget: int, profile: DeviceProfile, requested: AdaptConfig,
                link: LinkShape | None = None) -> Plan:
    """The memory plan of ``bundle`` (its layers, head and device image) under ``budget``."""
    head = HeadShape(bundle.head.head.sizes) if bundle.head is not None else None
    image, input_bits = 0, 8
    if bundle.qnet is not None:
        from edgelearn.kernels.image import to_image
        image, input_bits = len(to_image(bundle.qnet)), bundle.qnet.input_bits
    return plan_deployment(shapes_of(bundle.network), budget, profile, requested, link=link,
                           head=head, image_bytes=image, input_bits=input_bits)


def plan_for(bundle: Bundle, args, link: bool | None = None) -> Plan:
    """Plan from CLI arguments (budget, device, lpl, no_hep, target). A target with a serial
    link is planned with the protocol's default link (:class:`LinkShape`) until the board's
    HELLO reply says otherwise (:func:`replan_for_board`)."""
    from edgelearn.targets.spec import parse_target

    profile = get_profile(args.device or DEFAULT_PROFILE)
    budget = parse_bytes(args.budget)
    if link is None:
        link = parse_target(getattr(args, "target", "host")).has_link
    cfg = requested_config(bundle, args.lpl, not args.no_hep, getattr(args, "lpl_rule", None),
                           getattr(args, "lpl_epoch", 1))
    return plan_bundle(bundle, budget, profile, cfg, LinkShape() if link else None)


def replan_for_board(bundle: Bundle, plan: Plan, window: int, max_payload: int,
                     ram: int) -> Plan:
    """``plan`` made again for the link a board reported in its HELLO reply (window,
    max_payload) so that it equals what the board allocates; a budget above the board's RAM
    is refused."""
    if plan.budget > ram:
        raise MemoryBudgetError(f"budget {plan.budget} B exceeds the RAM the board reports "
                                f"({ram} B)")
    return plan_bundle(bundle, plan.budget, plan.profile, plan.requested,
                       LinkShape(window, max_payload, source="board"))
