"""Board targets: a simulated board (firmware_sim on a pseudo-terminal) or a real one on a
serial port, running the deployment engine in sample mode (edgelearn.link.board)."""

from __future__ import annotations

import numpy as np

from edgelearn.device.engine import EngineConfig
from edgelearn.errors import LinkError, TargetError
from edgelearn.kernels.image import from_image, to_image
from edgelearn.kernels.lif_fixed import QNetwork
from edgelearn.link.board import Board
from edgelearn.link.client import Client
from edgelearn.link.framing import crc32
from edgelearn.memory.planner import Plan
from edgelearn.progress import Progress
from edgelearn.targets.base import SampleResult, Target, Telemetry
from edgelearn.targets.spec import TargetSpec


class BoardTarget(Target):
    """A model deployed on a board over the serial link."""

    capabilities = frozenset({"lpl", "hep", "pull"})

    def __init__(self, client: Client, board: Board, name: str, qnet: QNetwork) -> None:
        self.client, self.board, self.name, self.qnet = client, board, name, qnet
        self._head = None

    @classmethod
    def connect(cls, spec: TargetSpec, plan: Plan) -> "BoardTarget":
        """Open the link and handshake (starting a simulator for 'sim', with the RAM of the
        plan's budget and the protocol's default link); ``client.info`` then holds what the
        board reported (window, max_payload, RAM) for planning."""
        if spec.kind == "sim":
            url = f"sim?profile={plan.profile.name}&ram={plan.budget}&flash={plan.profile.flash}"
        else:
            url = spec.arg
        try:
            client = Client(url)
        except (LinkError, OSError) as exc:
            hint = "" if spec.kind == "sim" else (
                "; no board at hand? use --target sim, or start one with "
                "'edgelearn firmware-sim --pty' and pass serial:PTY_PATH")
            raise TargetError(f"cannot open board at {url!r}: {exc}{hint}") from None
        return cls(client, Board(client), spec.kind, None)

    def deploy(self, bundle, config: EngineConfig, progress: bool = True,
               upload: bool = True) -> "BoardTarget":
        """Upload ``bundle.qnet`` with read-back (unless ``upload`` is False: then the board must
        already hold this model, checked by its image CRC) and enter sample mode with
        ``bundle.head``; the link is closed if anything fails. ``bundle``: an
        edgelearn.adapt.bundle.Bundle (targets do not import the adaptation layer)."""
        self.qnet = bundle.qnet
        try:
            info = self.client.info
            if not upload:
                want = crc32(to_image(bundle.qnet))
                if info.active_slot == 0xFF or info.active_crc != want:
                    have = "no model" if info.active_slot == 0xFF else \
                        f"a model with image CRC 0x{info.active_crc:08x}"
                    raise TargetError(f"the board at {self.client.transport.url!r} holds "
                                      f"{have}, not '{bundle.source.name}' (CRC 0x{want:08x}); "
                                      f"run edgelearn deploy first")
                self.board.enter(bundle.qnet, config, bundle.head)
                return self._with_head(bundle.head)
            bars = [Progress(1, "upload", unit="B", enabled=progress)]

            def show(done: int, total: int) -> None:
                bar = bars[-1]
                if done < bar.done:          # the upload is done; the read-back starts
                    bar.close()
                    bar = Progress(total, "read-back", unit="B", enabled=progress)
                    bars.append(bar)
                bar.total = total
                bar.update(done - bar.done)

            self.board.deploy(bundle.qnet, config, bundle.head, progress=show)
            bars[-1].close()
        except BaseException:
            self.client.close()
            raise
        return self._with_head(bundle.head)

    def _with_head(self, head) -> "BoardTarget":
        self._head = head
        return self

    def infer(self, x: np.ndarray) -> SampleResult:
        pred, scores, spikes = self.board.run_sample(np.asarray(x))
        return SampleResult(int(pred), np.asarray(scores, dtype=np.float64), None, int(spikes))

    def teach(self, label: int) -> None:
        self.board.teach(int(label))

    def set_learning(self, lpl: bool, hep: bool) -> None:
        self.board.set_learning(lpl, hep)

    def get_weights(self) -> dict[str, np.ndarray]:
        return self.board.get_weights()

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.board.set_weights(weights)

    def telemetry(self) -> Telemetry:
        t = self.board.telemetry()
        return Telemetry(steps=t["steps"], spikes=t["spikes"], lpl_updates=t["lpl_updates"],
                         hep_updates=t["hep_updates"], arena_high_water=t["arena_high_water"],
                         arena_size=t["arena_size"],
                         extra={"link": t["link"], "hep_nonconverged": t["hep_nonconverged"],
                                "hep_rejected": t["hep_rejected"]})

    def network(self) -> QNetwork:
        """The adapted network pulled back from the board."""
        return from_image(self.board.pull())

    def head(self):
        """The adapted head: the bundle's head with the board's learned arrays."""
        if self._head is None:
            return None
        w = self.board.get_weights()
        head = self._head.copy()
        for k in range(len(head.head.weights)):
            head.head.weights[k] = w[f"head.W{k}"].astype(np.float64)
            head.head.biases[k] = w[f"head.b{k}"].astype(np.float64)
        if "state.head.feature_mean" in w:
            head.mean[...] = w["state.head.feature_mean"]
            head.std[...] = w["state.head.feature_std"]
        return head

    def close(self) -> None:
        self.client.close()
