"""Named substrate presets: ``ideal``, ``pcm`` and ``bss2`` (L1).

``get_preset(name)`` returns a :class:`~edgelearn.substrate.params.Preset`; a dict (as written by
``Preset.to_dict``) or a Preset passes through validated. A name may scale the preset's
fixed-pattern mismatch: ``"bss2@mismatch=1.5"`` is bss2 with every mismatch sigma (synapse gain
and offset, neuron threshold, tau_syn, tau_mem) multiplied by 1.5 (a worse process corner);
``@mismatch=0`` removes the mismatch.
"""

from __future__ import annotations

import dataclasses
import math

from edgelearn.errors import SubstrateError
from edgelearn.substrate.params import (Drift, Faults, Mapping, Mismatch, Preset, Programming,
                                        ReadNoise)


def ideal() -> Preset:
    """A perfect substrate: continuous weights, no mismatch, no noise, no drift, no faults.
    A device made from it computes exactly what the float reference computes."""
    return Preset(name="ideal")


def pcm() -> Preset:
    """Phase-change memory crossbar after IBM aihwkit's ``PCMLikeNoiseModel`` (defaults).

    Differential pair per weight (aihwkit's single-pair converter: the larger |w| of a layer maps
    to g_max = 25 uS, the other device of the pair programmed to 0), continuous conductances,
    programming noise sigma(g) = 0.26348 + 1.9650 g - 1.1731 g^2 uS, drift with t0 = 20 s and
    exponent nu ~ |N(mu_nu(g), sigma_nu(g))|, accumulated 1/f read noise with t_read = 250 ns,
    and global drift compensation (aihwkit's default inference setup). No neuron mismatch and no
    temporal noise: aihwkit models the weights only; the neurons are assumed digital here.
    """
    return Preset(
        name="pcm",
        mapping=Mapping(bits=None, sign="differential", g_max_us=25.0, headroom=1.0),
        programming=Programming(kind="pcm"),
        drift=Drift(kind="pcm", t0_s=20.0, compensation=True),
        read=ReadNoise(kind="pcm", t_read_s=250e-9),
    )


def bss2() -> Preset:
    """An analog mixed-signal chip in the style of BrainScaleS-2.

    Facts (Cramer et al. 2022 PNAS; ANCHORS.md): weights are 6-bit magnitudes stored in SRAM
    next to each synapse, the sign is chosen digitally (excitatory or inhibitory input row);
    neurons are analog circuits whose time constants and thresholds vary from neuron to neuron;
    membranes are observed through an ADC. Weights therefore have no programming noise and no
    drift, but the analog path from the stored weight to the delivered current varies per
    synapse.

    ASSUMPTIONS (no published per-synapse numbers were found; chosen to give a clearly visible,
    uncalibrated mismatch): per-synapse gain spread 20 %, per-synapse offset 1 % of full scale
    (about 0.6 LSB), per-neuron threshold spread 10 %, tau_syn and tau_mem spreads 15 %,
    temporal membrane noise 0.02 theta per step, readout (ADC) noise 0.02 theta, no stuck
    synapses.
    """
    return Preset(
        name="bss2",
        mapping=Mapping(bits=6, sign="sign_bit", g_max_us=1.0, headroom=1.0),
        mismatch=Mismatch(gain_sigma=0.2, offset_sigma=0.01, threshold_sigma=0.1,
                          tau_syn_sigma=0.15, tau_mem_sigma=0.15),
        read=ReadNoise(membrane_sigma=0.02, readout_sigma=0.02),
        faults=Faults(),
    )


PRESETS = {"ideal": ideal, "pcm": pcm, "bss2": bss2}


def get_preset(preset: str | dict | Preset) -> Preset:
    """A preset by name (``ideal``, ``pcm``, ``bss2``), from a dict, or a Preset unchanged."""
    if isinstance(preset, Preset):
        return preset
    if isinstance(preset, dict):
        return Preset.from_dict(preset)
    name, _, option = str(preset).partition("@")
    if name not in PRESETS:
        raise SubstrateError(f"unknown substrate preset {name!r}; choose from "
                             f"{sorted(PRESETS)}")
    base = PRESETS[name]()
    if not option:
        return base
    key, _, value = option.partition("=")
    try:
        factor = float(value) if key == "mismatch" else math.nan
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and factor >= 0):
        raise SubstrateError(f"substrate preset {preset!r}: the only option is mismatch=F "
                             f"with a factor F >= 0, got {option!r}")
    return scale_mismatch(base, factor)


def scale_mismatch(preset: Preset, factor: float) -> Preset:
    """``preset`` with every fixed-pattern mismatch sigma multiplied by ``factor`` (>= 0); the
    name records it (``bss2@mismatch=1.5``)."""
    mm = preset.mismatch
    scaled = Mismatch(**{f.name: getattr(mm, f.name) * factor
                         for f in dataclasses.fields(Mismatch)})
    return dataclasses.replace(preset, name=f"{preset.name}@mismatch={factor!r}",
                               mismatch=scaled)
