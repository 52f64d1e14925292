"""edgelearn: deploy pretrained spiking networks on edge targets and keep them learning.

Layering (lower never imports higher), see docs/architecture.md:
L0 errors, fixed; L1 model, kernels, rules, memory, substrate; L2 io, runtime, data;
L3 link, targets, adapt, cli.
"""

from edgelearn.errors import EdgelearnError
from edgelearn.model import Layer, Network

__version__ = "0.1.0"
__all__ = ["EdgelearnError", "Layer", "Network", "__version__"]
