"""Run a Network's exported step or Scan graph in onnxruntime (L2).

    backend = OnnxRuntimeBackend(net, graph="scan")     # or "step"
    rec = backend.run(x)          # x [T, n_in] or [T, B, n_in] -> Recording (output, spikes)

The step graph is called once per time step with the state fed back (the runtime owns the
loop); the Scan graph runs the whole sequence in one call. Outputs match
:func:`edgelearn.runtime.reference.run` (``output`` [T, B, n_out], ``spikes[name]`` [T, B, n]).
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import ModelError
from edgelearn.io import onnx_meta as M
from edgelearn.io.onnx_export import model_bytes
from edgelearn.io.ort_session import make_session
from edgelearn.kernels.lif_float import LayerState
from edgelearn.model import Network
from edgelearn.runtime.reference import Recording, as_sequence, init_state


class OnnxRuntimeBackend:
    """onnxruntime execution of ``net``'s step (per-step calls) or Scan (one call) graph."""

    def __init__(self, net: Network, graph: str = "scan", threads: int = 1) -> None:
        if graph not in M.GRAPH_KINDS:
            raise ModelError(f"graph must be one of {M.GRAPH_KINDS}, got {graph!r}")
        self.net, self.graph = net, graph
        self.session = make_session(model_bytes(net, graph), threads=threads,
                                    what=f"network '{net.name}'", trusted=True)
        self._state_in = [M.state_in(la.name, k) for la in net.layers for k in M.STATE_KINDS]
        self._state_out = [M.state_out(la.name, k) for la in net.layers for k in M.STATE_KINDS]
        self._spiking = [la.name for la in net.layers if la.spiking]
        self._outputs = [M.OUTPUT] + self._state_out + [M.spikes_name(n) for n in self._spiking]

    def run(self, x: np.ndarray, state=None) -> Recording:
        """Simulate a sequence from ``state`` (zero if None); returns a Recording with
        ``output``, ``spikes`` of every spiking layer and ``final_state``."""
        seq = as_sequence(self.net, x)
        T, B, _ = seq.shape
        state = init_state(self.net, B) if state is None else state
        flat = [arr for st in state for arr in (st.current, st.membrane)]
        feed = dict(zip(self._state_in, flat))
        n_state = len(self._state_in)
        if self.graph == "scan":
            feed[M.INPUT] = seq
            res = self.session.run(self._outputs, feed)
            output = res[0]
            final = res[1:1 + n_state]
            spikes = dict(zip(self._spiking, res[1 + n_state:]))
        else:
            output = np.empty((T, B, self.net.n_out), np.float32)
            spikes = {n: np.empty((T, B, self.net.layer(n).n_out), np.float32)
                      for n in self._spiking}
            run = self.session.run
            outs = self._outputs
            names = self._state_in
            final = flat
            for t in range(T):
                feed[M.INPUT] = seq[t]
                res = run(outs, feed)
                output[t] = res[0]
                final = res[1:1 + n_state]
                feed.update(zip(names, final))
                for n, s in zip(self._spiking, res[1 + n_state:]):
                    spikes[n][t] = s
        final_state = tuple(LayerState(final[2 * i], final[2 * i + 1])
                            for i in range(len(self.net.layers)))
        return Recording(output=output, spikes=spikes, final_state=final_state)
