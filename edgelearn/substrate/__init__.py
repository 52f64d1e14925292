"""Substrate simulator: noisy analog weights and mismatched neurons (L1, numpy only).

    from edgelearn.substrate import Device, get_preset
    dev = Device.create(get_preset("bss2"), seed=0, net=net)
    obs = dev.run(x)                       # spikes + membranes through the noisy readout
    dev.write("hidden", w_new)             # the only write path: quantize, clip (counted), program
    dev.advance_time(3600.0)               # drift
    dev.save("dev.npz"); Device.load("dev.npz")

See params.py for the hooks and their order, presets.py for ``ideal``, ``pcm`` and ``bss2``.
"""

from edgelearn.substrate.device import Device, Observation, WriteReport
from edgelearn.substrate.params import (Drift, Faults, Mapping, Mismatch, Preset, Programming,
                                        ReadNoise)
from edgelearn.substrate.presets import PRESETS, get_preset

__all__ = ["Device", "Observation", "WriteReport", "Preset", "Mapping", "Mismatch",
           "Programming", "Drift", "ReadNoise", "Faults", "PRESETS", "get_preset"]
