"""The classifier head a deployment carries: an hEP energy head on normalised SNN features.

Feature vector of a sample (length n_hidden + n_out):

    f = [ r_1 .. r_H,  o_1 .. o_C ]
    r_j = (spike count of hidden neuron j over the sample) / T          rate per step, 0..1
    o_c = readout score of class c in threshold units (max or mean over time of the readout
          membrane, integer value times the readout layer's scale)

The head sees x = (f - mean) / std with mean and std fixed at training time (float32 constants
on the device). Including the readout score lets the frozen head start from the pretrained
SNN's decision, while the hidden rates give on-device learning room to re-weight evidence.

File format (``NAME.head.npz``, no pickle): the arrays of ``EnergyHead.save`` plus
``feature_mean`` and ``feature_std``.
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelearn.atomic import atomic_write_bytes
from edgelearn.errors import ModelFileError, ParameterError
from edgelearn.rules.hep import EnergyHead


@dataclass
class DeviceHead:
    """An :class:`EnergyHead` with the normalisation of its input features."""

    head: EnergyHead
    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32)
        self.std = np.asarray(self.std, dtype=np.float32)
        n = self.head.n_in
        if self.mean.shape != (n,) or self.std.shape != (n,):
            raise ParameterError(f"head normalisation must have {n} entries, got "
                                 f"{self.mean.shape} and {self.std.shape}")
        if not (np.all(np.isfinite(self.mean)) and np.all(self.std > 0)):
            raise ParameterError("head normalisation must be finite with std > 0")

    @property
    def n_features(self) -> int:
        return self.head.n_in

    def normalise(self, f: np.ndarray) -> np.ndarray:
        return (np.asarray(f, dtype=np.float64) - self.mean) / self.std

    @classmethod
    def fit(cls, head: EnergyHead, features: np.ndarray, floor: float = 1e-3) -> "DeviceHead":
        """Normalisation from training features [N, n] (std floored at ``floor``)."""
        f = np.asarray(features, dtype=np.float64)
        return cls(head, f.mean(axis=0), np.maximum(f.std(axis=0), floor))

    def save(self, path: str | os.PathLike) -> None:
        """The head's own file (EnergyHead.save) plus the normalisation, written atomically."""
        with tempfile.TemporaryDirectory() as tmp:
            self.head.save(Path(tmp) / "head.npz")
            with np.load(Path(tmp) / "head.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        arrays["feature_mean"], arrays["feature_std"] = self.mean, self.std
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DeviceHead":
        head = EnergyHead.load(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                mean, std = z["feature_mean"], z["feature_std"]
        except (OSError, KeyError, ValueError) as exc:
            raise ModelFileError(f"head file {path}: no feature normalisation ({exc})") from None
        return cls(head, mean, std)

    def copy(self) -> "DeviceHead":
        """An independent copy (a deployment must not change the bundle's head)."""
        return DeviceHead(copy.deepcopy(self.head), self.mean.copy(), self.std.copy())
