"""The simulated board's protocol logic: bytes in, bytes out (no I/O, no clocks).

``Device.feed(data) -> bytes`` consumes whatever arrived on the line and returns what the device
transmits in answer, so the whole device side is testable without a port and the server loop
(server.py) only moves bytes. Behaviour (docs/protocol.md is normative):

* framing: StreamDecoder resynchronises at every 0x00; bad runs are counted, never answered.
* session: HELLO (any sequence number) opens a session; ``expected`` = HELLO seq + 1. Other
  requests without a session get ERROR NO_SESSION. A header whose protocol version differs from
  the device's gets ERROR VERSION (the error frame carries the device's version) and a line on
  the simulator's log, on both sides naming both versions.
* ordering: a request with seq == expected is executed once; its reply is cached (the last
  ``window`` replies). seq behind expected (a retransmission) gets the cached reply again,
  never a second execution. seq ahead of expected (something was lost) is held (within the
  window) until the gap is filled, then executed in order, and a NAK carrying ``expected`` and
  a bitmap of the held requests is sent for the first such frame after each advance and again for the
  first frame of each new retransmission round (its seq is not above the last dropped one), so
  the host retransmits at once instead of waiting for its timer.
* memory: the link buffers (rx, tx, reply cache) and the model live in one fixed Arena; a model
  or learning state that does not fit is refused with ERROR NO_MEMORY and the previous layout is
  restored, never a crash.
* flash: A/B slots (flash.py); UPLOAD_COMMIT is the only way a slot becomes active.
* modes: streaming (INFER/LEARN on firmware_sim.engine) until a config blob switches to sample
  mode (SAMPLE/TEACH/MODE on edgelearn.device.engine, the host target's engine).
"""

from __future__ import annotations

import sys
from typing import Callable

import numpy as np

from edgelearn.errors import EdgelearnError, MemoryBudgetError
from edgelearn.link import framing
from edgelearn.link import messages as m
from edgelearn.link.framing import FLAG_DEVICE, Frame, FrameError, StreamDecoder, crc32
from edgelearn.memory.arena import Arena
from edgelearn.memory.planner import LINK_FRAME_BYTES
from firmware_sim.cycles import core_of
from firmware_sim.engine import Engine
from firmware_sim.flash import Flash, FlashError

KERNEL_VERSION = 1   # version of the device image format + integer kernel the device runs


class DeviceError(Exception):
    """A request failed; becomes an ERROR frame (code, arg0, arg1, text)."""

    def __init__(self, code: int, text: str, arg0: int = 0, arg1: int = 0) -> None:
        super().__init__(text)
        self.code, self.text, self.arg0, self.arg1 = code, text, arg0, arg1


def _input_rows(msg: m.Infer) -> np.ndarray:
    """The [n_steps, n_in] inputs of an INFER or SAMPLE request (bits or int8 rows)."""
    if msg.flags & m.INFER_COUNTS:
        return np.frombuffer(msg.data, np.int8).reshape(msg.n_steps, msg.n_in)
    bits = np.frombuffer(msg.data, np.uint8).reshape(msg.n_steps, m.packed_len(msg.n_in))
    return np.unpackbits(bits, axis=1, bitorder="little")[:, :msg.n_in]


class Device:
    """One simulated board. Sizes in bytes; ``baud`` is only announced (the server paces)."""

    def __init__(self, ram: int, flash: int, profile: str = "cortex-m4-256k",
                 flash_file: str | None = None, max_payload: int = framing.DEFAULT_MAX_PAYLOAD,
                 window: int = 8, baud: int = 0, protocol_version: int = framing.PROTOCOL_VERSION,
                 seed: int = 1, log: Callable[[str], None] | None = None) -> None:
        if not 16 <= max_payload <= framing.MAX_PAYLOAD_LIMIT:
            raise ValueError(f"max_payload must be 16..{framing.MAX_PAYLOAD_LIMIT}, got "
                             f"{max_payload}")
        if not 1 <= window <= 64:
            raise ValueError(f"window must be 1..64, got {window}")
        self.ram, self.profile = int(ram), profile
        self.max_payload, self.window, self.baud = int(max_payload), int(window), int(baud)
        self.version, self.seed = int(protocol_version), int(seed)
        self.cost = core_of(profile)
        self.log = log or (lambda text: print(f"firmware_sim: {text}", file=sys.stderr,
                                              flush=True))
        self.flash = Flash(flash, flash_file)
        self.arena = Arena(self.ram, name="device RAM")
        self.frames_ok = self.frames_bad = self.frames_dup = self.naks = 0
        self.boots = 0
        self.reboot()

    # -- power cycle ---------------------------------------------------------------------------
    def reboot(self) -> None:
        """Power cycle: RAM (session, engine, learning, counters) lost; flash kept."""
        self.boots += 1
        self.decoder = StreamDecoder(self.max_payload)
        self.session = False
        self.expected = 0
        self.cache: dict[int, bytes] = {}
        self.held: dict[int, Frame] = {}
        self.nak_armed = True
        self.last_ahead = 0
        self.flash.abort()
        self.upload_len = self.upload_crc = 0
        self.pull_image = b""
        self.blob_kind = 0
        self.blob_buf = bytearray()
        self.blob_len = self.blob_crc = 0
        self.blob_snapshot = b""
        self.config: dict | None = None       # sample mode: engine configuration (RAM only)
        self.head_blob: bytes | None = None
        self.sengine = None                   # sample mode: edgelearn.device.engine.Engine
        self.sample_steps = 0
        self.engine: Engine | None = None
        self.load_error = ""
        self.arena = Arena(self.ram, name="device RAM")
        self._alloc_link()
        act = self.flash.active()
        if act is not None:
            try:
                eng = Engine(self.flash.image(act.slot), self.cost, self.seed)
                eng.allocate(self.arena)
                self.engine = eng
            except EdgelearnError as exc:
                self.load_error = f"active model in slot {act.slot} cannot run: {exc}"
                self.log(self.load_error)
                self._relayout(None)

    def _alloc_link(self) -> None:
        # rx/tx as the memory planner charges them (at least one largest frame each); the
        # reply cache and the reorder buffer hold a window of frames each
        wire = framing.max_wire_len(self.max_payload)
        frame = max(wire, LINK_FRAME_BYTES)
        self.arena.allocate("link.rx", frame, np.uint8)
        self.arena.allocate("link.tx", frame, np.uint8)
        self.arena.allocate("link.reply_cache", self.window * wire, np.uint8)
        self.arena.allocate("link.reorder", self.window * wire, np.uint8)

    def _relayout(self, engine: Engine | None) -> None:
        """Free everything and allocate link buffers + ``engine`` (may raise MemoryBudgetError)."""
        self.arena.reset()
        self._alloc_link()
        if engine is not None:
            engine.allocate(self.arena)

    # -- bytes in, bytes out -------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Consume received bytes; return the bytes the device transmits in answer."""
        out = bytearray()
        for item in self.decoder.feed(data):
            if isinstance(item, FrameError):
                self.frames_bad += 1
                continue
            if item.flags & FLAG_DEVICE:   # our own frames echoed back: not for us
                self.frames_bad += 1
                continue
            self.frames_ok += 1
            out += self._on_frame(item)
        return bytes(out)

    def _send(self, mtype: int, seq: int, payload: bytes) -> bytes:
        return framing.encode_frame(Frame(mtype, seq, payload, self.version, FLAG_DEVICE))

    def _error(self, seq: int, request: int, exc: DeviceError) -> bytes:
        text = exc.text.encode("utf-8")[: self.max_payload - 10]
        return self._send(m.ERROR, seq, m.Error(exc.code, request, exc.arg0 & 0xFFFFFFFF,
                                                exc.arg1 & 0xFFFFFFFF, text).pack())

    def _on_frame(self, fr: Frame) -> bytes:
        if fr.version != self.version:
            text = (f"protocol version mismatch: host speaks version {fr.version}, this device "
                    f"speaks version {self.version}")
            self.log(f"rejected {m.type_name(fr.type)}: {text}")
            return self._error(fr.seq, fr.type, DeviceError(m.E_VERSION, text, self.version,
                                                            fr.version))
        if fr.type == m.HELLO:
            self.session = True
            self.cache.clear()
            self.held.clear()
            self.expected = (fr.seq + 1) & 0xFF
            self.nak_armed = True
            reply = self._execute(fr)
            self.cache[fr.seq] = reply
            return reply
        if not self.session:
            return self._error(fr.seq, fr.type, DeviceError(
                m.E_NO_SESSION, "no session (device was reset?): send HELLO"))
        ahead = (fr.seq - self.expected) & 0xFF
        if ahead == 0:
            out = bytearray()
            while fr is not None:           # execute it, then whatever it unblocks
                reply = self._execute(fr)
                out += reply
                self.cache[fr.seq] = reply
                self.cache.pop((fr.seq - self.window) & 0xFF, None)
                self.expected = (self.expected + 1) & 0xFF
                self.nak_armed = True
                if fr.type == m.RESET and fr.payload == bytes([m.RESET_REBOOT]):
                    self.reboot()
                    break
                fr = self.held.pop(self.expected, None)
            return bytes(out)
        if ahead < 128:
            if ahead < self.window:
                self.held.setdefault(fr.seq, fr)
            # one NAK per retransmission round: a round's frames arrive with rising seq, so a
            # seq at or below the last ahead one means the host started a new round
            if self.nak_armed or ahead <= self.last_ahead:
                self.nak_armed = False
                self.last_ahead = ahead
                self.naks += 1
                held = 0
                for seq in self.held:
                    held |= 1 << (((seq - self.expected) & 0xFF) - 1)
                return self._send(m.NAK, self.expected, m.Nak(self.expected, held).pack())
            self.last_ahead = ahead
            return b""
        self.frames_dup += 1
        return self.cache.get(fr.seq, b"")

    def _execute(self, fr: Frame) -> bytes:
        handler = self._HANDLERS.get(fr.type)
        try:
            if handler is None:
                raise DeviceError(m.E_UNKNOWN_TYPE, f"unknown request type 0x{fr.type:02x}",
                                  fr.type)
            try:
                msg = m.decode_message(fr.type, fr.payload)
            except m.MessageError as exc:
                raise DeviceError(m.E_BAD_LENGTH, str(exc), len(fr.payload)) from None
            reply = handler(self, msg)
            return self._send(reply.TYPE, fr.seq, reply.pack())
        except DeviceError as exc:
            return self._error(fr.seq, fr.type, exc)
        except MemoryBudgetError as exc:
            return self._error(fr.seq, fr.type, DeviceError(m.E_NO_MEMORY, str(exc),
                                                            self.arena.size, self.arena.free))

    # -- handlers ------------------------------------------------------------------------------
    def _hello(self, msg: m.Hello) -> m.Message:
        act = self.flash.active()
        eng = self.engine
        return m.HelloReply(
            protocol_version=self.version, kernel_version=KERNEL_VERSION, weight_bits=8,
            state_bits=eng.state_bits if eng else 32, acc_bits=32, decay_bits=12,
            ram=self.ram, flash=self.flash.size, slot_size=self.flash.slot_size,
            max_payload=self.max_payload, window=self.window, baud=self.baud,
            active_slot=act.slot if act else m.NO_SLOT, active_len=act.length if act else 0,
            active_crc=act.crc if act else 0,
            cycles_per_step=eng.worst_cycles if eng else 0, profile=self.profile)

    def _ping(self, msg: m.Ping) -> m.Message:
        return m.PingReply(msg.data)

    def _upload_begin(self, msg: m.UploadBegin) -> m.Message:
        if msg.length > self.flash.slot_size:
            raise DeviceError(m.E_NO_SPACE, f"image of {msg.length} B does not fit a flash slot "
                              f"of {self.flash.slot_size} B", msg.length, self.flash.slot_size)
        slot = self.flash.begin(msg.length)
        self.upload_len, self.upload_crc = msg.length, msg.crc
        return m.UploadBeginReply(slot, self.flash.slot_size)

    def _upload_data(self, msg: m.UploadData) -> m.Message:
        try:
            return m.UploadDataReply(self.flash.write(msg.data))
        except FlashError as exc:
            raise DeviceError(m.E_BAD_STATE, str(exc), self.flash.written,
                              self.upload_len) from None

    def _upload_commit(self, msg: m.UploadCommit) -> m.Message:
        if self.flash.writing is None:
            raise DeviceError(m.E_BAD_STATE, "UPLOAD_COMMIT without an upload in progress")
        if self.flash.written != self.upload_len:
            raise DeviceError(m.E_BAD_STATE, f"upload incomplete: {self.flash.written} of "
                              f"{self.upload_len} B received", self.flash.written,
                              self.upload_len)
        image = self.flash.staged()
        got = crc32(image)
        if got != self.upload_crc:
            self.flash.abort()
            raise DeviceError(m.E_IMAGE_CRC, f"image CRC 0x{got:08x} differs from the announced "
                              f"0x{self.upload_crc:08x}; slot not activated", got,
                              self.upload_crc)
        try:
            eng = Engine(image, self.cost, self.seed)
        except EdgelearnError as exc:
            self.flash.abort()
            raise DeviceError(m.E_BAD_IMAGE, f"image rejected, slot not activated: {exc}") \
                from None
        old = self.engine
        try:
            self._relayout(eng)
        except MemoryBudgetError as exc:
            self.flash.abort()
            self._relayout(old)
            raise DeviceError(m.E_NO_MEMORY, f"model does not fit the RAM arena, slot not "
                              f"activated: {exc}", self.arena.size, self.arena.free) from None
        info = self.flash.commit(self.upload_crc)
        self.engine, self.load_error, self.pull_image = eng, "", b""
        self.sengine = None
        if self.config is not None:      # stay in sample mode with the new model if it fits
            try:
                self._enter_sample_mode()
            except DeviceError as exc:
                self.log(f"sample mode left after commit: {exc.text}")
        return m.UploadCommitReply(info.slot, info.length, info.crc, info.generation)

    def _read_flash(self, msg: m.ReadFlash) -> m.Message:
        if msg.slot not in (0, 1):
            raise DeviceError(m.E_RANGE, f"slot {msg.slot} does not exist (0 or 1)", msg.slot)
        info = self.flash.slot_info(msg.slot)
        limit = info.length if info else 0
        if msg.offset + msg.length > limit or msg.length > self.max_payload - 4:
            raise DeviceError(m.E_RANGE, f"read of {msg.length} B at {msg.offset} is outside "
                              f"slot {msg.slot}'s {limit} B image (or over "
                              f"{self.max_payload - 4} B)", msg.offset, limit)
        return m.ReadFlashReply(msg.offset, self.flash.read(msg.slot, msg.offset, msg.length))

    def _need_engine(self) -> Engine:
        if self.sengine is not None:
            raise DeviceError(m.E_BAD_STATE, "the device is in sample mode: use SAMPLE, TEACH "
                              "and MODE (streaming INFER/LEARN need a new upload or a reboot)")
        if self.engine is None:
            raise DeviceError(m.E_NO_MODEL, self.load_error or "no model committed")
        return self.engine

    def _infer(self, msg: m.Infer) -> m.Message:
        eng = self._need_engine()
        if msg.n_in != eng.n_in:
            raise DeviceError(m.E_BAD_INPUT, f"model expects {eng.n_in} inputs, request has "
                              f"{msg.n_in}", msg.n_in, eng.n_in)
        width = m.packed_len(eng.n_out) if eng.output_spiking else 4 * eng.n_out
        if msg.n_steps * width + 5 > self.max_payload:
            raise DeviceError(m.E_BAD_INPUT, f"{msg.n_steps} steps of output need "
                              f"{msg.n_steps * width + 5} B, over the {self.max_payload} B "
                              f"payload limit", msg.n_steps, self.max_payload)
        if msg.flags & m.INFER_RESET:
            eng.reset_state()
        y = eng.run(_input_rows(msg))
        if eng.output_spiking:
            data = np.packbits(y.astype(np.uint8), axis=1, bitorder="little").tobytes()
            return m.InferReply(msg.n_steps, eng.n_out, m.OUT_BITS, data)
        return m.InferReply(msg.n_steps, eng.n_out, m.OUT_INT32, y.astype("<i4").tobytes())

    def _learn(self, msg: m.Learn) -> m.Message:
        eng = self._need_engine()
        params = {}
        for pid, val in msg.params:
            if pid not in m.LEARN_PARAMS:
                raise DeviceError(m.E_BAD_PARAM, f"unknown learning parameter id {pid}", pid)
            params[m.LEARN_PARAMS[pid]] = float(val)
        before = (eng.learning, eng.learn_layer, eng.lpl_params, eng.lpl_state)
        try:
            eng.set_learning(bool(msg.enable), None if msg.layer == m.LAYER_DEFAULT
                             else msg.layer, params)
            self._relayout(eng)
        except MemoryBudgetError as exc:
            eng.learning, eng.learn_layer, eng.lpl_params, eng.lpl_state = before
            self._relayout(eng)
            raise DeviceError(m.E_NO_MEMORY, f"learning state does not fit: {exc}",
                              self.arena.size, self.arena.free) from None
        except EdgelearnError as exc:
            raise DeviceError(m.E_BAD_PARAM, str(exc)) from None
        layer = eng.learn_layer if eng.learning else m.LAYER_DEFAULT
        return m.LearnReply(int(eng.learning), layer, eng.learn_updates)

    def _pull_begin(self, msg: m.PullBegin) -> m.Message:
        if self.sengine is not None:
            from edgelearn.kernels.image import to_image
            self.pull_image = to_image(self.sengine.network())
        else:
            self.pull_image = self._need_engine().snapshot()
        return m.PullBeginReply(len(self.pull_image), crc32(self.pull_image))

    def _slice(self, data: bytes, offset: int, length: int, first: str) -> bytes:
        """``data[offset:offset+length]`` of a snapshot, range-checked (E_RANGE)."""
        n = len(data)
        if offset + length > n or length > self.max_payload - 4:
            raise DeviceError(m.E_RANGE, f"read of {length} B at {offset} is outside the {n} B "
                              f"snapshot ({first} first)", offset, n)
        return data[offset:offset + length]

    def _pull_read(self, msg: m.PullRead) -> m.Message:
        return m.PullReadReply(msg.offset, self._slice(self.pull_image, msg.offset, msg.length,
                                                       "PULL_BEGIN"))

    def _telemetry(self, msg: m.Telemetry) -> m.Message:
        eng, act = self.engine, self.flash.active()
        if self.sengine is not None:
            c = self.sengine.counters
            return m.TelemetryReply(
                steps=c["steps"], spikes=c["spikes"], input_spikes=0, output_spikes=0,
                learn_updates=c["lpl_updates"], arena_used=self.arena.used,
                arena_high_water=self.arena.high_water, arena_size=self.arena.size,
                cycles_per_step=0, frames_ok=self.frames_ok & 0xFFFFFFFF,
                frames_bad=self.frames_bad & 0xFFFFFFFF, frames_dup=self.frames_dup & 0xFFFFFFFF,
                naks=self.naks & 0xFFFFFFFF,
                learning=int(self.sengine.lpl_on) | 2 * int(self.sengine.hep_on),
                active_slot=act.slot if act else m.NO_SLOT, samples=c["samples"],
                hep_updates=c["hep_updates"])
        return m.TelemetryReply(
            steps=eng.steps if eng else 0, spikes=eng.spikes if eng else 0,
            input_spikes=eng.input_spikes if eng else 0,
            output_spikes=eng.output_spikes if eng else 0,
            learn_updates=eng.learn_updates if eng else 0, arena_used=self.arena.used,
            arena_high_water=self.arena.high_water, arena_size=self.arena.size,
            cycles_per_step=eng.cycles_per_step if eng else 0,
            frames_ok=self.frames_ok & 0xFFFFFFFF, frames_bad=self.frames_bad & 0xFFFFFFFF,
            frames_dup=self.frames_dup & 0xFFFFFFFF, naks=self.naks & 0xFFFFFFFF,
            learning=int(bool(eng and eng.learning)),
            active_slot=act.slot if act else m.NO_SLOT)

    def _reset(self, msg: m.Reset) -> m.Message:
        if msg.mode not in (m.RESET_STATE, m.RESET_REBOOT):
            raise DeviceError(m.E_BAD_PARAM, f"unknown reset mode {msg.mode}", msg.mode)
        if msg.mode == m.RESET_STATE and self.engine is not None:
            self.engine.reset_state()
        return m.ResetReply(msg.mode)   # a reboot happens after the reply is queued

    # -- sample mode (the deployment engine of edgelearn.device) --------------------------------
    def _enter_sample_mode(self) -> None:
        """Build the deployment engine from the active model, config and head, in the arena."""
        import json
        import os
        import tempfile

        from edgelearn.device.engine import Engine as DeploymentEngine
        from edgelearn.device.engine import EngineConfig, HEPSettings
        from edgelearn.device.head import DeviceHead
        from edgelearn.rules import lpl_rate

        act = self.flash.active()
        if act is None:
            raise DeviceError(m.E_NO_MODEL, "sample mode needs a committed model")
        try:
            d = json.loads(self.config_text)
            kw = {k: v for k, v in d.items() if k not in ("lpl", "hep", "lpl_layers")}
            kw["lpl_layers"] = tuple(d.get("lpl_layers", ()))
            if "lpl" in d:
                kw["lpl"] = lpl_rate.Params(**d["lpl"])
            if "hep" in d:
                kw["hep"] = HEPSettings(**d["hep"]) if d["hep"] else None
            cfg = EngineConfig(**kw)
            head = None
            if self.head_blob is not None:
                fd, path = tempfile.mkstemp(suffix=".npz")
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(self.head_blob)
                    head = DeviceHead.load(path)
                finally:
                    os.unlink(path)
            from edgelearn.kernels.image import from_image
            qnet = from_image(self.flash.image(act.slot))
        except (ValueError, TypeError, KeyError) as exc:
            raise DeviceError(m.E_BAD_PARAM, f"engine configuration rejected: {exc}") from None
        except EdgelearnError as exc:
            raise DeviceError(m.E_BAD_PARAM, f"engine configuration rejected: {exc}") from None
        self.arena.reset()
        self._alloc_link()
        try:
            eng = DeploymentEngine(qnet, self.arena, head, cfg)
        except MemoryBudgetError as exc:
            self.sengine = None
            self._relayout(self.engine)
            raise DeviceError(m.E_NO_MEMORY, f"deployment does not fit the RAM arena: {exc}",
                              self.arena.size, self.arena.free) from None
        except EdgelearnError as exc:
            self.sengine = None
            self._relayout(self.engine)
            raise DeviceError(m.E_BAD_PARAM, f"engine rejected: {exc}") from None
        self.sengine = eng

    def _need_sample_engine(self):
        if self.sengine is None:
            raise DeviceError(m.E_BAD_STATE, "not in sample mode: send the engine configuration "
                              "blob first")
        return self.sengine

    def _blob_begin(self, msg: m.BlobBegin) -> m.Message:
        if msg.kind not in m.BLOB_NAMES:
            raise DeviceError(m.E_BAD_PARAM, f"unknown blob kind {msg.kind}", msg.kind)
        if msg.length > self.flash.slot_size:
            raise DeviceError(m.E_NO_SPACE, f"blob of {msg.length} B is larger than "
                              f"{self.flash.slot_size} B", msg.length, self.flash.slot_size)
        self.blob_kind, self.blob_len, self.blob_crc = msg.kind, msg.length, msg.crc
        self.blob_buf = bytearray()
        return m.BlobBeginReply(msg.kind, msg.length)

    def _blob_data(self, msg: m.BlobData) -> m.Message:
        if not self.blob_kind or len(self.blob_buf) + len(msg.data) > self.blob_len:
            raise DeviceError(m.E_BAD_STATE, "BLOB_DATA without BLOB_BEGIN or past its length",
                              len(self.blob_buf), self.blob_len)
        self.blob_buf += msg.data
        return m.BlobDataReply(len(self.blob_buf))

    def _blob_end(self, msg: m.BlobEnd) -> m.Message:
        import io
        kind, data = self.blob_kind, bytes(self.blob_buf)
        self.blob_kind, self.blob_buf = 0, bytearray()
        if not kind or len(data) != self.blob_len:
            raise DeviceError(m.E_BAD_STATE, f"blob incomplete: {len(data)} of {self.blob_len} B",
                              len(data), self.blob_len)
        got = crc32(data)
        if got != self.blob_crc:
            raise DeviceError(m.E_IMAGE_CRC, f"blob CRC 0x{got:08x} differs from the announced "
                              f"0x{self.blob_crc:08x}", got, self.blob_crc)
        if kind == m.BLOB_WEIGHTS:
            eng = self._need_sample_engine()
            try:
                with np.load(io.BytesIO(data), allow_pickle=False) as z:
                    eng.set_weights({k: z[k] for k in z.files})
            except (OSError, ValueError, KeyError) as exc:
                raise DeviceError(m.E_BAD_PARAM, f"weights blob rejected: {exc}") from None
        else:
            old = (self.config_text if self.config is not None else None, self.head_blob)
            if kind == m.BLOB_CONFIG:
                self.config_text, self.config = data.decode("utf-8", "replace"), {}
            else:
                self.head_blob = data
            if self.config is not None:
                try:
                    self._enter_sample_mode()
                except DeviceError:
                    self.config = None if old[0] is None else {}
                    if old[0] is not None:
                        self.config_text = old[0]
                    self.head_blob = old[1]
                    raise
        return m.BlobEndReply(kind, len(data), got)

    def _blob_get(self, msg: m.BlobGet) -> m.Message:
        import io
        if msg.kind == m.BLOB_CONFIG and self.config is not None:
            self.blob_snapshot = self.config_text.encode("utf-8")
        elif msg.kind == m.BLOB_HEAD and self.head_blob is not None:
            self.blob_snapshot = self.head_blob
        elif msg.kind == m.BLOB_WEIGHTS:
            buf = io.BytesIO()
            np.savez(buf, **self._need_sample_engine().get_weights())
            self.blob_snapshot = buf.getvalue()
        else:
            raise DeviceError(m.E_RANGE, f"no blob of kind {msg.kind} on the device", msg.kind)
        return m.BlobGetReply(len(self.blob_snapshot), crc32(self.blob_snapshot))

    def _blob_read(self, msg: m.BlobRead) -> m.Message:
        return m.BlobReadReply(msg.offset, self._slice(self.blob_snapshot, msg.offset,
                                                       msg.length, "BLOB_GET"))

    def _sample(self, msg: m.Sample) -> m.Message:
        eng = self._need_sample_engine()
        if msg.n_in != eng.qnet.n_in:
            raise DeviceError(m.E_BAD_INPUT, f"model expects {eng.qnet.n_in} inputs, request "
                              f"has {msg.n_in}", msg.n_in, eng.qnet.n_in)
        try:
            if msg.flags & m.SAMPLE_BEGIN:
                eng.begin_sample()
                self.sample_steps = 0
            if msg.n_steps:
                eng.run_steps(_input_rows(msg).astype(np.int64))
                self.sample_steps += msg.n_steps
            if msg.flags & m.SAMPLE_END:
                res = eng.end_sample()
                scores = np.asarray(res.scores, dtype="<f4").tobytes()
                return m.SampleReply(1, res.prediction, res.spikes, self.sample_steps, scores)
        except EdgelearnError as exc:
            raise DeviceError(m.E_BAD_INPUT, str(exc)) from None
        return m.SampleReply(0, 0, 0, self.sample_steps, b"")

    def _teach(self, msg: m.Teach) -> m.Message:
        eng = self._need_sample_engine()
        try:
            eng.teach(msg.label)
        except EdgelearnError as exc:
            raise DeviceError(m.E_BAD_INPUT, str(exc), msg.label) from None
        c = eng.counters
        return m.TeachReply(c["hep_updates"], c.get("hep_nonconverged", 0))

    def _mode(self, msg: m.Mode) -> m.Message:
        eng = self._need_sample_engine()
        try:
            eng.set_learning(bool(msg.lpl), bool(msg.hep))
        except EdgelearnError as exc:
            raise DeviceError(m.E_BAD_PARAM, str(exc)) from None
        return m.ModeReply(int(eng.lpl_on), int(eng.hep_on))

    _HANDLERS = {m.HELLO: _hello, m.PING: _ping, m.UPLOAD_BEGIN: _upload_begin,
                 m.UPLOAD_DATA: _upload_data, m.UPLOAD_COMMIT: _upload_commit,
                 m.READ_FLASH: _read_flash, m.INFER: _infer, m.LEARN: _learn,
                 m.PULL_BEGIN: _pull_begin, m.PULL_READ: _pull_read, m.TELEMETRY: _telemetry,
                 m.RESET: _reset, m.BLOB_BEGIN: _blob_begin, m.BLOB_DATA: _blob_data,
                 m.BLOB_END: _blob_end, m.BLOB_GET: _blob_get, m.BLOB_READ: _blob_read,
                 m.SAMPLE: _sample, m.TEACH: _teach, m.MODE: _mode}


__all__ = ["Device", "DeviceError", "KERNEL_VERSION"]
