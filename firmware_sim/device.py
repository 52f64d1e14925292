"""The simulated board's protocol logic: bytes in, bytes out (no I/O, no clocks).

``Device.feed(data) -> bytes`` consumes whatever arrived on the line and returns what the device
transmits in answer, so the whole device side is testable without a port and the server loop
(server.py) only moves bytes (and sends BUSY keep-alives while ``executing`` is set).
docs/protocol.md (version 2) is normative; in short:

* framing: StreamDecoder resynchronises at every 0x00; bad runs are counted, never answered.
* session: HELLO (any sequence number) opens a session with the smaller of the host's and the
  device's max_payload and window; other requests without a session get ERROR NO_SESSION; a
  frame of another protocol version gets ERROR VERSION and one log line per burst.
* ordering: in-order execution once per sequence number, a reply cache of ``window`` replies,
  a reorder buffer and NAKs (selective repeat).
* every request is answered with its reply or an ERROR; a failing request changes nothing
  (handlers check before they write; anything unexpected is rolled back and answered with
  ERROR INTERNAL). No request can stop the device.
* memory: the link buffers and the engine's buffers (edgelearn.memory.layout) live in one fixed
  Arena; what does not fit is refused with NO_MEMORY before anything is overwritten.
* flash: A/B slots (flash.py); UPLOAD_COMMIT is the only way a slot becomes active; boot runs the
  newest runnable slot.
* modes: streaming (INFER/LEARN) and sample mode (config blob; SAMPLE/TEACH/MODE), both on the
  one device engine (edgelearn.device.engine).
"""

from __future__ import annotations

import sys
import time
from typing import Callable

import numpy as np

from edgelearn.device.config import DeviceConfig
from edgelearn.device.engine import (SAMPLE_STEPS_MAX, Engine, check_config, check_head,
                                     engine_layout)
from edgelearn.errors import EdgelearnError, MemoryBudgetError
from edgelearn.kernels.image import decode_image, to_image
from edgelearn.link import blobs, framing
from edgelearn.link import messages as m
from edgelearn.link.framing import FLAG_DEVICE, Frame, FrameError, StreamDecoder, crc32
from edgelearn.memory.arena import Arena
from edgelearn.memory.layout import LinkShape, link_layout
from edgelearn.model import feature_layer_index
from edgelearn.rules.lpl_codes import Codes
from firmware_sim.cycles import core_of, run_cycles, worst_case_cycles
from firmware_sim.flash import Flash, FlashError

KERNEL_VERSION = 1          # version of the device image format + integer kernel
MIN_MAX_PAYLOAD = m.MIN_SESSION_PAYLOAD


class DeviceError(Exception):
    """A request failed; becomes an ERROR frame (code, arg0, arg1, text)."""

    def __init__(self, code: int, text: str, arg0: int = 0, arg1: int = 0) -> None:
        super().__init__(text)
        self.code, self.text, self.arg0, self.arg1 = code, text, arg0, arg1


def _u32(v: int) -> int:
    return int(v) & 0xFFFFFFFF


def _rows(msg: m.Infer) -> np.ndarray:
    """The [n_steps, n_in] integer inputs of an INFER or SAMPLE request."""
    if msg.flags & m.INFER_INT16:
        return np.frombuffer(msg.data, "<i2").reshape(msg.n_steps, msg.n_in).astype(np.int64)
    if msg.flags & m.INFER_COUNTS:
        return np.frombuffer(msg.data, np.int8).reshape(msg.n_steps, msg.n_in).astype(np.int64)
    bits = np.frombuffer(msg.data, np.uint8).reshape(msg.n_steps, m.packed_len(msg.n_in))
    return np.unpackbits(bits, axis=1, bitorder="little")[:, :msg.n_in].astype(np.int64)


class Device:
    """One simulated board. Sizes in bytes; ``baud`` is only announced (the server paces)."""

    def __init__(self, ram: int, flash: int, profile: str = "cortex-m4-256k",
                 flash_file: str | None = None, max_payload: int = framing.DEFAULT_MAX_PAYLOAD,
                 window: int = 8, baud: int = 0, protocol_version: int = framing.PROTOCOL_VERSION,
                 seed: int = 1, log: Callable[[str], None] | None = None) -> None:
        if not MIN_MAX_PAYLOAD <= max_payload <= framing.MAX_PAYLOAD_LIMIT:
            raise ValueError(f"max_payload must be {MIN_MAX_PAYLOAD}..{framing.MAX_PAYLOAD_LIMIT}"
                             f", got {max_payload}")
        if not 1 <= window <= 64:
            raise ValueError(f"window must be 1..64, got {window}")
        if baud < 0:
            raise ValueError(f"baud must be >= 0 (0: unpaced), got {baud}")
        if not 0 <= seed <= 0xFFFFFFFF:
            raise ValueError(f"seed must be 0..2^32-1, got {seed}")
        self.ram, self.profile = int(ram), profile
        self.max_payload, self.window, self.baud = int(max_payload), int(window), int(baud)
        self.version, self.seed = int(protocol_version), int(seed)
        self.cost = core_of(profile)
        self.log = log or (lambda text: print(f"firmware_sim: {text}", file=sys.stderr,
                                              flush=True))
        self.flash = Flash(flash, flash_file)
        self.frames_ok = self.frames_bad = self.frames_dup = self.frames_stale = 0
        self.naks = self.busy_sent = 0
        self.boots = 0
        self.executing: tuple[int, float] | None = None    # (seq, start) while a request runs
        self._version_burst = False
        self.reboot()

    # -- power cycle ---------------------------------------------------------------------------
    def reboot(self) -> None:
        """Power cycle: RAM (session, engine, learning, counters) lost; flash kept."""
        self.boots += 1
        self.decoder = StreamDecoder(self.max_payload)
        self.session = False
        self.s_max_payload, self.s_window = self.max_payload, self.window
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
        self.frames_ok = self.frames_bad = self.frames_dup = self.frames_stale = 0
        self.naks = self.busy_sent = 0
        self.counters: dict[str, int] = {}
        self.cycles = [0.0, 0]             # cost-model cycles and steps priced
        self.engine: Engine | None = None
        self.qnet = None                   # the running network as committed
        self.meta = b""                    # its image metadata, opaque
        self.running: int | None = None    # the running slot
        self.sample_mode = False
        self.config_bytes: bytes | None = None
        self.head_bytes: bytes | None = None
        self.head = None
        self.stream_lpl: tuple[int, int, Codes] | None = None   # (layer, seed, codes)
        self.load_error = ""
        self.arena = Arena(self.ram, name="device RAM")
        self._alloc_link()
        self._boot()

    def _alloc_link(self) -> None:
        for b in link_layout(LinkShape(self.window, self.max_payload)):
            self.arena.allocate(b.name, b.shape, b.dtype)

    def _boot(self) -> None:
        """Run the newest valid slot whose image decodes and fits; else the older one."""
        for info in self.flash.valid_slots():
            try:
                qnet, meta = decode_image(self.flash.image(info.slot))
                self._install(qnet, meta, DeviceConfig(seed=self.seed), None)
            except (EdgelearnError, DeviceError) as exc:
                text = exc.text if isinstance(exc, DeviceError) else str(exc)
                self.load_error = f"model in slot {info.slot} cannot run: {text}"
                self.log(self.load_error)
                continue
            self.running, self.load_error = info.slot, ""
            return

    # -- the engine in the arena -------------------------------------------------------------
    def _install(self, qnet, meta: bytes, dc: DeviceConfig, head) -> None:
        """Lay out the link and a new engine for ``qnet`` (learned weights of the running
        engine are the caller's business: pass the network to keep). Checks that it fits
        before anything is overwritten (DeviceError NO_MEMORY / BAD_PARAM)."""
        try:
            check_config(qnet, dc)
            check_head(qnet, head)
        except EdgelearnError as exc:
            raise DeviceError(m.E_BAD_PARAM, str(exc)) from None
        specs = engine_layout(qnet, head, dc)
        free = self.ram - sum(b.padded(self.arena.align)
                              for b in link_layout(LinkShape(self.window, self.max_payload)))
        miss = _misfit(specs, free, self.arena.align)
        if miss is not None:
            name, need, avail = miss
            raise DeviceError(m.E_NO_MEMORY, f"arena: buffer '{name}' needs {need} B, {avail} "
                              f"B free of {self.ram} B (missing {need - avail} B)", need, avail)
        self.arena.reset()
        self._alloc_link()
        self.engine = Engine(qnet, self.arena, None if head is None else head.copy(), dc,
                             counters=self.counters)
        self.engine.activity = []
        self.qnet, self.meta = qnet, meta

    def _rebuild(self, dc: DeviceConfig, head, sample: bool) -> None:
        """A new engine on the running network (learned weights kept); on failure the old one
        is rebuilt as it was."""
        old = self.engine
        cp = old.checkpoint()
        old_dc, old_head, old_sample = old.dconfig, old.dhead, self.sample_mode
        net = old.network()
        try:
            self._install(net, self.meta, dc, head)
        except DeviceError:
            raise                                     # nothing was overwritten
        except Exception:
            self._install(net, self.meta, old_dc, old_head)
            self.engine.rollback(cp)
            self.sample_mode = old_sample
            raise
        self.sample_mode = sample

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

    def busy_frame(self, seq: int, elapsed_ms: int) -> bytes:
        """The BUSY keep-alive for request ``seq`` (sent by the server loop)."""
        self.busy_sent += 1
        return self._send(m.BUSY, seq, m.Busy(_u32(elapsed_ms)).pack())

    def _send(self, mtype: int, seq: int, payload: bytes) -> bytes:
        return framing.encode_frame(Frame(mtype, seq, payload, self.version, FLAG_DEVICE))

    def _error(self, seq: int, request: int, exc: DeviceError) -> bytes:
        text = exc.text.encode("utf-8")[: max(0, self.s_max_payload - 10)]
        return self._send(m.ERROR, seq, m.Error(exc.code, request, _u32(exc.arg0),
                                                _u32(exc.arg1), text).pack())

    def _on_frame(self, fr: Frame) -> bytes:
        if fr.version != self.version:
            text = (f"protocol version mismatch: host speaks version {fr.version}, this device "
                    f"speaks version {self.version}")
            if not self._version_burst:
                self._version_burst = True
                self.log(f"rejected {m.type_name(fr.type)}: {text}")
            return self._error(fr.seq, fr.type, DeviceError(m.E_VERSION, text, self.version,
                                                            fr.version))
        self._version_burst = False
        if fr.type == m.HELLO:
            reply = self._execute(fr)
            if self.session:                  # HELLO accepted: a new session
                self.cache.clear()
                self.held.clear()
                self.expected = (fr.seq + 1) & 0xFF
                self.nak_armed = True
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
                self.cache.pop((fr.seq - self.s_window) & 0xFF, None)
                self.expected = (self.expected + 1) & 0xFF
                self.nak_armed = True
                if fr.type == m.RESET and fr.payload == bytes([m.RESET_REBOOT]):
                    self.reboot()
                    break
                fr = self.held.pop(self.expected, None)
            return bytes(out)
        if ahead < 128:
            if ahead < self.s_window:
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
        cached = self.cache.get(fr.seq)
        if cached is None:
            self.frames_stale += 1
            return b""
        self.frames_dup += 1
        return cached

    def _execute(self, fr: Frame) -> bytes:
        """Run one request; every outcome is a reply or an ERROR frame."""
        self.executing = (fr.seq, time.monotonic())
        cp = None
        try:
            handler = self._HANDLERS.get(fr.type)
            if handler is None:
                raise DeviceError(m.E_UNKNOWN_TYPE, f"unknown request type 0x{fr.type:02x}",
                                  fr.type)
            if fr.type != m.HELLO and len(fr.payload) > self.s_max_payload:
                raise DeviceError(m.E_BAD_LENGTH, f"payload of {len(fr.payload)} B exceeds the "
                                  f"session's {self.s_max_payload} B", len(fr.payload),
                                  self.s_max_payload)
            try:
                msg = m.decode_message(fr.type, fr.payload)
            except m.MessageError as exc:
                raise DeviceError(m.E_BAD_LENGTH, str(exc), len(fr.payload),
                                  _want_length(fr.type, fr.payload)) from None
            if self.engine is not None and fr.type in _MUTATING:
                cp = (self.engine, self.engine.checkpoint())
            reply = handler(self, msg)
            return self._send(reply.TYPE, fr.seq, reply.pack())
        except DeviceError as exc:
            return self._error(fr.seq, fr.type, exc)
        except MemoryBudgetError as exc:
            self._restore(cp)
            return self._error(fr.seq, fr.type, DeviceError(m.E_NO_MEMORY, str(exc), 0,
                                                            self.arena.free))
        except Exception as exc:     # a defect: answer, roll back, keep serving
            self._restore(cp)
            text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else \
                type(exc).__name__
            self.log(f"request {m.type_name(fr.type)} (seq {fr.seq}) failed inside the "
                     f"device: {text}")
            return self._error(fr.seq, fr.type, DeviceError(m.E_INTERNAL, text))
        finally:
            self.executing = None

    def _restore(self, cp) -> None:
        if cp is None:
            return
        engine, state = cp
        if engine is self.engine:
            try:
                engine.rollback(state)
            except Exception as exc:      # pragma: no cover - last resort: reboot the engine
                self.log(f"roll back failed ({exc}); rebooting the engine")
                self.reboot()

    # -- handlers: link and flash --------------------------------------------------------------
    def _hello(self, msg: m.Hello) -> m.Message:
        if not m.MIN_SESSION_PAYLOAD <= msg.host_max_payload <= framing.MAX_PAYLOAD_LIMIT:
            raise DeviceError(m.E_BAD_PARAM, f"host_max_payload {msg.host_max_payload} is "
                              f"outside {m.MIN_SESSION_PAYLOAD}..{framing.MAX_PAYLOAD_LIMIT}",
                              0, msg.host_max_payload)
        if not 1 <= msg.host_window <= 64:
            raise DeviceError(m.E_BAD_PARAM, f"host_window {msg.host_window} is outside 1..64",
                              2, msg.host_window)
        self.session = True
        self.s_max_payload = min(self.max_payload, msg.host_max_payload)
        self.s_window = min(self.window, msg.host_window)
        act = self.flash.slot_info(self.running) if self.running is not None else None
        q = self.qnet
        prof = self.profile.encode("utf-8")[: self.s_max_payload - 40].decode("utf-8", "ignore")
        return m.HelloReply(
            protocol_version=self.version, kernel_version=KERNEL_VERSION, weight_bits=8,
            state_bits=max(la.state_bits for la in q.layers) if q else 32, acc_bits=32,
            decay_bits=12, ram=self.ram, flash=self.flash.size, slot_size=self.flash.slot_size,
            max_payload=self.s_max_payload, window=self.s_window, baud=self.baud,
            active_slot=act.slot if act else m.NO_SLOT, active_len=act.length if act else 0,
            active_crc=act.crc if act else 0, cycles_per_step=self._worst_cycles(),
            profile=prof)

    def _worst_cycles(self) -> int:
        if self.qnet is None:
            return 0
        return worst_case_cycles(self.cost, [(la.n_in, la.n_out, la.recurrent is not None)
                                             for la in self.qnet.layers])

    def _ping(self, msg: m.Ping) -> m.Message:
        return m.PingReply(msg.data)

    def _upload_begin(self, msg: m.UploadBegin) -> m.Message:
        if msg.length == 0:
            raise DeviceError(m.E_BAD_PARAM, "an image of 0 B", 0, 0)
        if msg.length > self.flash.slot_size:
            raise DeviceError(m.E_NO_SPACE, f"image of {msg.length} B does not fit a flash slot "
                              f"of {self.flash.slot_size} B", msg.length, self.flash.slot_size)
        slot = self.flash.begin(msg.length, self.running)
        self.upload_len, self.upload_crc = msg.length, msg.crc
        return m.UploadBeginReply(slot, self.flash.slot_size)

    def _transfer(self) -> tuple[int, int]:
        return (self.flash.written, self.upload_len) if self.flash.writing is not None \
            else (0, 0)

    def _upload_data(self, msg: m.UploadData) -> m.Message:
        if not msg.data:
            raise DeviceError(m.E_BAD_LENGTH, "UPLOAD_DATA without data", 0, 1)
        if self.flash.writing is None:
            raise DeviceError(m.E_BAD_STATE, "UPLOAD_DATA without an open upload", 0, 0)
        if self.flash.written + len(msg.data) > self.upload_len:
            raise DeviceError(m.E_BAD_STATE, f"upload overruns its announced length: "
                              f"{self.flash.written} + {len(msg.data)} > {self.upload_len} B",
                              *self._transfer())
        return m.UploadDataReply(self.flash.write(msg.data))

    def _upload_commit(self, msg: m.UploadCommit) -> m.Message:
        if self.flash.writing is None:
            raise DeviceError(m.E_BAD_STATE, "UPLOAD_COMMIT without an open upload", 0, 0)
        if self.flash.written != self.upload_len:
            raise DeviceError(m.E_BAD_STATE, f"upload incomplete: {self.flash.written} of "
                              f"{self.upload_len} B received", *self._transfer())
        image = self.flash.staged()
        got = crc32(image)
        if got != self.upload_crc:
            self.flash.abort()
            raise DeviceError(m.E_IMAGE_CRC, f"image CRC 0x{got:08x} differs from the announced "
                              f"0x{self.upload_crc:08x}; slot not activated", got,
                              self.upload_crc)
        try:
            qnet, meta = decode_image(image)
        except EdgelearnError as exc:
            self.flash.abort()
            raise DeviceError(m.E_BAD_IMAGE, f"image rejected, slot not activated: {exc}") \
                from None
        old = self._save_running()
        try:
            self._install(qnet, meta, DeviceConfig(seed=self.seed), None)
        except DeviceError as exc:
            self.flash.abort()
            if exc.code == m.E_NO_MEMORY:
                exc.text = f"model does not fit the RAM arena, slot not activated: {exc.text}"
            raise
        try:
            info = self.flash.commit(self.upload_crc)
        except (FlashError, OSError) as exc:
            self.flash.abort()
            self._restore_running(old)
            raise DeviceError(m.E_INTERNAL, f"flash write failed, slot not activated: {exc}") \
                from None
        self.running, self.load_error, self.pull_image = info.slot, "", b""
        self.sample_mode, self.config_bytes, self.head_bytes, self.head = False, None, None, None
        self.stream_lpl = None
        return m.UploadCommitReply(info.slot, info.length, info.crc, info.generation)

    def _save_running(self):
        if self.engine is None:
            return None
        e = self.engine
        return (e.network(), self.meta, e.dconfig, e.dhead, e.checkpoint(), self.sample_mode)

    def _restore_running(self, old) -> None:
        if old is None:
            self.arena.reset()
            self._alloc_link()
            self.engine, self.qnet = None, None
            return
        net, meta, dc, head, cp, sample = old
        self._install(net, meta, dc, head)
        self.engine.rollback(cp)
        self.sample_mode = sample

    def _read_flash(self, msg: m.ReadFlash) -> m.Message:
        if msg.slot not in (0, 1):
            raise DeviceError(m.E_BAD_PARAM, f"slot {msg.slot} does not exist (0 or 1)", 0,
                              msg.slot)
        info = self.flash.slot_info(msg.slot)
        limit = info.length if info else 0
        data = self._slice(limit, msg.offset, msg.length, 5,
                           f"slot {msg.slot}'s {limit} B image")
        return m.ReadFlashReply(msg.offset, self.flash.read(msg.slot, data[0], data[1]))

    def _slice(self, limit: int, offset: int, length: int, len_offset: int, what: str
               ) -> tuple[int, int]:
        """Check a read of ``length`` bytes at ``offset`` of ``limit`` bytes."""
        if length > self.s_max_payload - 4:
            raise DeviceError(m.E_BAD_PARAM, f"a read of {length} B does not fit a reply of "
                              f"{self.s_max_payload} B", len_offset, length)
        if offset + length > limit:
            raise DeviceError(m.E_RANGE, f"read of {length} B at {offset} is outside {what}",
                              offset + length, limit)
        return offset, length

    # -- handlers: streaming mode --------------------------------------------------------------
    def _need_engine(self, sample: bool) -> Engine:
        if self.engine is None:
            raise DeviceError(m.E_NO_MODEL, self.load_error or "no model committed")
        if self.sample_mode != sample:
            raise DeviceError(m.E_BAD_STATE, "the device is in sample mode: use SAMPLE, TEACH "
                              "and MODE (streaming INFER/LEARN need a new upload or a reboot)"
                              if self.sample_mode else "not in sample mode: send the engine "
                              "configuration blob first")
        return self.engine

    def _check_rows(self, msg: m.Infer, eng: Engine, allowed: int) -> None:
        """Flags and input width of an INFER/SAMPLE (BAD_PARAM, BAD_INPUT)."""
        if msg.flags & ~allowed or (msg.flags & m.INFER_COUNTS and msg.flags & m.INFER_INT16):
            raise DeviceError(m.E_BAD_PARAM, f"flags 0x{msg.flags:02x}: reserved bits or int8 "
                              f"and int16 rows together", 4, msg.flags)
        if msg.n_in != eng.qnet.n_in:
            raise DeviceError(m.E_BAD_INPUT, f"model expects {eng.qnet.n_in} inputs, request "
                              f"has {msg.n_in}", msg.n_in, eng.qnet.n_in)

    def _values(self, msg: m.Infer, eng: Engine) -> np.ndarray:
        """The input rows, each value within the model's input_bits (BAD_INPUT)."""
        x = _rows(msg)
        if x.size:
            lo, hi = eng._in_lo, eng._in_hi
            bad = x[(x < lo) | (x > hi)]
            if bad.size:
                raise DeviceError(m.E_BAD_INPUT, f"input value {int(bad[0])} is outside the "
                                  f"model's {eng.qnet.input_bits}-bit input [{lo}, {hi}]",
                                  int(bad[0]), eng.qnet.input_bits)
        return x

    def _price(self, eng: Engine) -> None:
        """Cost-model cycles of the steps just run (TELEMETRY cycles_per_step)."""
        if not eng.activity:
            return
        act = np.concatenate(eng.activity)
        eng.activity.clear()
        epochs = {k: c.epoch for k, c in eng.dconfig.lpl}        # LPL layers: learning epoch
        learning = [epochs.get(k, 0) if eng.lpl_on else 0 for k in range(len(eng.layers))]
        self.cycles[0] += run_cycles(self.cost, [(la.n_in, la.n_out) for la in eng.layers],
                                     act, learning)
        self.cycles[1] += act.shape[0]

    def _infer(self, msg: m.Infer) -> m.Message:
        eng = self._need_engine(sample=False)
        x = self._check_infer(msg, eng)
        if msg.flags & m.INFER_RESET:
            eng.reset_state()
        y = eng.stream(x)
        self._price(eng)
        if eng.layers[-1].spiking:
            data = np.packbits(y.astype(np.uint8), axis=1, bitorder="little").tobytes()
            return m.InferReply(msg.n_steps, eng.qnet.n_out, m.OUT_BITS, data)
        return m.InferReply(msg.n_steps, eng.qnet.n_out, m.OUT_INT32,
                            y.astype("<i4").tobytes())

    def _check_infer(self, msg: m.Infer, eng: Engine) -> np.ndarray:
        self._check_rows(msg, eng, m.INFER_RESET | m.INFER_COUNTS | m.INFER_INT16)
        if msg.n_steps == 0:
            raise DeviceError(m.E_BAD_INPUT, "INFER of 0 steps", 0, 1)
        width = m.packed_len(eng.qnet.n_out) if eng.layers[-1].spiking else 4 * eng.qnet.n_out
        fit = (self.s_max_payload - 5) // width
        if msg.n_steps > fit:
            raise DeviceError(m.E_BAD_INPUT, f"{msg.n_steps} steps of output need "
                              f"{msg.n_steps * width + 5} B, over the {self.s_max_payload} B "
                              f"payload limit ({fit} steps fit)", msg.n_steps, fit)
        return self._values(msg, eng)

    def _learn(self, msg: m.Learn) -> m.Message:
        eng = self._need_engine(sample=False)
        q = eng.qnet
        if msg.enable:
            if msg.enable != 1:
                raise DeviceError(m.E_BAD_PARAM, f"enable must be 0 or 1, got {msg.enable}", 0,
                                  msg.enable)
            k = feature_layer_index(q.layers) if msg.layer == m.LAYER_DEFAULT else msg.layer
            if not 0 <= k < len(q.layers) or not q.layers[k].spiking:
                raise DeviceError(m.E_BAD_PARAM, f"layer {msg.layer} is not a spiking layer of "
                                  f"model '{q.name}' ({len(q.layers)} layers)", 1, msg.layer)
            if msg.reserved:
                raise DeviceError(m.E_BAD_PARAM, "reserved field must be 0", 2, msg.reserved)
            try:
                codes = blobs.decode_lpl_block(msg.block, 8, "LEARN")
            except blobs.BlobError as exc:
                raise DeviceError(m.E_BAD_PARAM, str(exc), exc.offset, exc.value_u32) from None
            dc = DeviceConfig(seed=msg.seed, lpl=((k, codes),))
            try:
                check_config(q, dc)
            except EdgelearnError as exc:
                raise DeviceError(m.E_BAD_PARAM, str(exc), 8, codes.act_frac) from None
            self._rebuild(dc, None, sample=False)
            self.engine.set_learning(True, False)
            self.stream_lpl = (k, msg.seed, codes)
            return m.LearnReply(1, k, self.counters["lpl_updates"])
        if self.stream_lpl is not None:
            self._rebuild(DeviceConfig(seed=self.seed), None, sample=False)
            self.engine.rng = eng.rng
            self.stream_lpl = None
        return m.LearnReply(0, m.LAYER_DEFAULT, self.counters["lpl_updates"])

    def _pull_begin(self, msg: m.PullBegin) -> m.Message:
        if self.engine is None:
            raise DeviceError(m.E_NO_MODEL, self.load_error or "no model committed")
        self.pull_image = to_image(self.engine.network(), self.meta)
        return m.PullBeginReply(len(self.pull_image), crc32(self.pull_image))

    def _pull_read(self, msg: m.PullRead) -> m.Message:
        off, n = self._slice(len(self.pull_image), msg.offset, msg.length, 4,
                             f"the {len(self.pull_image)} B snapshot (PULL_BEGIN first)")
        return m.PullReadReply(off, self.pull_image[off:off + n])

    def _telemetry(self, msg: m.Telemetry) -> m.Message:
        c = {k: _u32(self.counters.get(k, 0)) for k in
             ("steps", "spikes", "input_spikes", "output_spikes", "samples", "hep_updates",
              "hep_nonconverged", "hep_rejected")}
        c["learn_updates"] = _u32(self.counters.get("lpl_updates", 0))
        eng = self.engine
        cycles = int(round(self.cycles[0] / self.cycles[1])) if self.cycles[1] else \
            self._worst_cycles()
        learning = (int(eng.lpl_on) | 2 * int(eng.hep_on)) if eng else 0
        return m.TelemetryReply(
            **c, arena_used=self.arena.used, arena_high_water=self.arena.high_water,
            arena_size=self.arena.size, cycles_per_step=_u32(cycles),
            frames_ok=_u32(self.frames_ok), frames_bad=_u32(self.frames_bad),
            frames_dup=_u32(self.frames_dup), frames_stale=_u32(self.frames_stale),
            naks=_u32(self.naks), busy=_u32(self.busy_sent), learning=learning,
            active_slot=m.NO_SLOT if self.running is None else self.running,
            mode=int(self.sample_mode))

    def _reset(self, msg: m.Reset) -> m.Message:
        if msg.mode not in (m.RESET_STATE, m.RESET_REBOOT):
            raise DeviceError(m.E_BAD_PARAM, f"unknown reset mode {msg.mode}", 0, msg.mode)
        if msg.mode == m.RESET_STATE and self.engine is not None:
            self.engine.reset_state()
        return m.ResetReply(msg.mode)   # a reboot happens after the reply is queued

    # -- handlers: sample mode -----------------------------------------------------------------
    def _blob_begin(self, msg: m.BlobBegin) -> m.Message:
        if msg.kind not in m.BLOB_NAMES:
            raise DeviceError(m.E_BAD_PARAM, f"unknown blob kind {msg.kind}", 0, msg.kind)
        if msg.length == 0:
            raise DeviceError(m.E_BAD_PARAM, "a blob of 0 B", 1, 0)
        if msg.length > self.flash.slot_size:
            raise DeviceError(m.E_NO_SPACE, f"blob of {msg.length} B is larger than "
                              f"{self.flash.slot_size} B", msg.length, self.flash.slot_size)
        self.blob_kind, self.blob_len, self.blob_crc = msg.kind, msg.length, msg.crc
        self.blob_buf = bytearray()
        return m.BlobBeginReply(msg.kind, msg.length)

    def _blob_data(self, msg: m.BlobData) -> m.Message:
        if not msg.data:
            raise DeviceError(m.E_BAD_LENGTH, "BLOB_DATA without data", 0, 1)
        if not self.blob_kind:
            raise DeviceError(m.E_BAD_STATE, "BLOB_DATA without BLOB_BEGIN", 0, 0)
        if len(self.blob_buf) + len(msg.data) > self.blob_len:
            raise DeviceError(m.E_BAD_STATE, f"blob overruns its announced length: "
                              f"{len(self.blob_buf)} + {len(msg.data)} > {self.blob_len} B",
                              len(self.blob_buf), self.blob_len)
        self.blob_buf += msg.data
        return m.BlobDataReply(len(self.blob_buf))

    def _blob_end(self, msg: m.BlobEnd) -> m.Message:
        kind, data = self.blob_kind, bytes(self.blob_buf)
        if not kind:
            raise DeviceError(m.E_BAD_STATE, "BLOB_END without BLOB_BEGIN", 0, 0)
        self.blob_kind, self.blob_buf = 0, bytearray()     # closed whatever happens
        if len(data) != self.blob_len:
            raise DeviceError(m.E_BAD_STATE, f"blob incomplete: {len(data)} of {self.blob_len} B",
                              len(data), self.blob_len)
        got = crc32(data)
        if got != self.blob_crc:
            raise DeviceError(m.E_IMAGE_CRC, f"blob CRC 0x{got:08x} differs from the announced "
                              f"0x{self.blob_crc:08x}", got, self.blob_crc)
        try:
            if kind == m.BLOB_CONFIG:
                self._apply_config(data)
            elif kind == m.BLOB_HEAD:
                self._apply_head(data)
            else:
                self._apply_weights(data)
        except blobs.BlobLengthError as exc:
            raise DeviceError(m.E_BAD_LENGTH, str(exc), exc.got, exc.want) from None
        except blobs.BlobError as exc:
            raise DeviceError(m.E_BAD_PARAM, str(exc), exc.offset, exc.value_u32) from None
        return m.BlobEndReply(kind, len(data), got)

    def _apply_config(self, data: bytes) -> None:
        dc = blobs.decode_config(data)
        if self.engine is None:
            raise DeviceError(m.E_NO_MODEL, self.load_error or "sample mode needs a committed "
                              "model")
        try:
            check_config(self.engine.qnet, dc)
        except EdgelearnError as exc:
            pos = getattr(exc, "entry", 0)
            off = blobs.CONFIG_HEADER_BYTES + blobs.LPL_ENTRY_BYTES * pos + \
                (0 if getattr(exc, "field", "layer") == "layer" else 8)
            raise DeviceError(m.E_BAD_PARAM, f"engine configuration rejected: {exc}", off,
                              getattr(exc, "value", 0)) from None
        self._rebuild(dc, self.head, sample=True)
        self.config_bytes = data
        self.stream_lpl = None

    def _apply_head(self, data: bytes) -> None:
        head = blobs.decode_head(data)
        if self.engine is not None:
            try:
                check_head(self.engine.qnet, head)
            except EdgelearnError as exc:
                raise DeviceError(m.E_BAD_PARAM, f"head rejected: {exc}", 8,
                                  head.n_features) from None
            if self.sample_mode:
                self._rebuild(self.engine.dconfig, head, sample=True)
        self.head, self.head_bytes = head, data

    def _apply_weights(self, data: bytes) -> None:
        eng = self._need_engine(sample=True)
        names = [la.name for la in eng.layers]
        w = blobs.decode_weights(data, names)
        current = eng.get_weights()
        if not set(w) <= set(current) or any(w[k].shape != current[k].shape for k in w):
            raise DeviceError(m.E_BAD_PARAM, "weights blob does not match this engine's "
                              "learning state (layers, parts or sizes differ)", 6,
                              data[6] if len(data) > 6 else 0)
        try:
            eng.set_weights(w)
        except EdgelearnError as exc:
            raise DeviceError(m.E_BAD_PARAM, f"weights blob rejected: {exc}", 16, 0) from None

    def _blob_get(self, msg: m.BlobGet) -> m.Message:
        if msg.kind not in m.BLOB_NAMES:
            raise DeviceError(m.E_BAD_PARAM, f"unknown blob kind {msg.kind}", 0, msg.kind)
        if msg.kind == m.BLOB_WEIGHTS:
            eng = self._need_engine(sample=True)
            self.blob_snapshot = blobs.encode_weights(eng.get_weights(),
                                                      [la.name for la in eng.layers])
        else:
            data = self.config_bytes if msg.kind == m.BLOB_CONFIG else self.head_bytes
            if data is None or (msg.kind == m.BLOB_CONFIG and not self.sample_mode):
                raise DeviceError(m.E_BAD_STATE, f"no {m.BLOB_NAMES[msg.kind]} blob on the "
                                  f"device", 0, 0)
            self.blob_snapshot = data
        return m.BlobGetReply(len(self.blob_snapshot), crc32(self.blob_snapshot))

    def _blob_read(self, msg: m.BlobRead) -> m.Message:
        off, n = self._slice(len(self.blob_snapshot), msg.offset, msg.length, 4,
                             f"the {len(self.blob_snapshot)} B blob (BLOB_GET first)")
        return m.BlobReadReply(off, self.blob_snapshot[off:off + n])

    def _sample(self, msg: m.Sample) -> m.Message:
        eng = self._need_engine(sample=True)
        self._check_rows(msg, eng, m.SAMPLE_BEGIN | m.SAMPLE_END | m.INFER_COUNTS
                         | m.INFER_INT16)
        begin, end = msg.flags & m.SAMPLE_BEGIN, msg.flags & m.SAMPLE_END
        if not begin and not eng._open:
            raise DeviceError(m.E_BAD_STATE, "SAMPLE steps or END without an open sample "
                              "(BEGIN first)", 0, 0)
        done_steps = 0 if begin else eng._T
        if done_steps + msg.n_steps > SAMPLE_STEPS_MAX:
            raise DeviceError(m.E_BAD_INPUT, f"the sample would have {done_steps + msg.n_steps} "
                              f"steps, more than {SAMPLE_STEPS_MAX}",
                              done_steps + msg.n_steps, SAMPLE_STEPS_MAX)
        if end and done_steps + msg.n_steps == 0:
            raise DeviceError(m.E_BAD_STATE, "END of a sample without steps", 0, 0)
        n_scores = eng.head.n_out if eng.head is not None else eng.qnet.n_out
        if end and 16 + 4 * n_scores > self.s_max_payload:
            raise DeviceError(m.E_BAD_PARAM, f"the result ({16 + 4 * n_scores} B) does not fit "
                              f"the session's {self.s_max_payload} B", 16 + 4 * n_scores,
                              self.s_max_payload)
        x = self._values(msg, eng)
        if begin:
            eng.begin_sample()
        if msg.n_steps:
            eng.run_steps(x)
            self._price(eng)
        if end:
            res = eng.end_sample()
            scores = np.asarray(res.scores, dtype="<f4").tobytes()
            return m.SampleReply(1, res.kind, res.prediction, len(res.scores), 0, _u32(res.spikes),
                                 eng._T, scores)
        return m.SampleReply(0, 0, 0, 0, 0, 0, eng._T, b"")

    def _teach(self, msg: m.Teach) -> m.Message:
        eng = self._need_engine(sample=True)
        n = eng.head.n_out if eng.head is not None else eng.qnet.n_out
        if msg.label >= n:
            raise DeviceError(m.E_BAD_INPUT, f"label {msg.label} is not a class index in "
                              f"[0, {n})", msg.label, n)
        if eng.hep_on:
            if eng._last_raw is None:
                raise DeviceError(m.E_BAD_STATE, "TEACH needs a classified sample first", 0, 0)
            eng.teach(int(msg.label))
        c = self.counters
        return m.TeachReply(_u32(c["hep_updates"]), _u32(c["hep_nonconverged"]),
                            _u32(c["hep_rejected"]))

    def _mode(self, msg: m.Mode) -> m.Message:
        eng = self._need_engine(sample=True)
        for off, v in ((0, msg.lpl), (1, msg.hep)):
            if v not in (0, 1):
                raise DeviceError(m.E_BAD_PARAM, f"MODE values are 0 or 1, got {v}", off, v)
        if msg.lpl and not eng.lpl_state:
            raise DeviceError(m.E_BAD_PARAM, "LPL was not planned for this deployment (no LPL "
                              "layers)", 0, 1)
        if msg.hep and eng.hep is None:
            raise DeviceError(m.E_BAD_PARAM, "hEP was not planned for this deployment (no "
                              "head)", 1, 1)
        eng.set_learning(bool(msg.lpl), bool(msg.hep))
        return m.ModeReply(int(eng.lpl_on), int(eng.hep_on))

    _HANDLERS = {m.HELLO: _hello, m.PING: _ping, m.UPLOAD_BEGIN: _upload_begin,
                 m.UPLOAD_DATA: _upload_data, m.UPLOAD_COMMIT: _upload_commit,
                 m.READ_FLASH: _read_flash, m.INFER: _infer, m.LEARN: _learn,
                 m.PULL_BEGIN: _pull_begin, m.PULL_READ: _pull_read, m.TELEMETRY: _telemetry,
                 m.RESET: _reset, m.BLOB_BEGIN: _blob_begin, m.BLOB_DATA: _blob_data,
                 m.BLOB_END: _blob_end, m.BLOB_GET: _blob_get, m.BLOB_READ: _blob_read,
                 m.SAMPLE: _sample, m.TEACH: _teach, m.MODE: _mode}


_MUTATING = frozenset({m.INFER, m.SAMPLE, m.TEACH, m.MODE, m.BLOB_END, m.RESET})


def _misfit(specs, free: int, align: int):
    for b in specs:
        need = b.padded(align)
        if need > free:
            return b.name, need, free
        free -= need
    return None


def _want_length(mtype: int, payload: bytes) -> int:
    """The payload length a request's fixed fields imply (BAD_LENGTH arg1)."""
    import struct
    cls = m.MESSAGES.get(mtype)
    fixed = struct.calcsize(getattr(cls, "FMT", "<"))
    if mtype in (m.INFER, m.SAMPLE) and len(payload) >= 5:
        n_steps, n_in, flags = struct.unpack_from("<HHB", payload)
        return 5 + n_steps * m.input_row_len(n_in, flags)
    if mtype == m.LEARN:
        return 2 if payload[:1] == b"\0" else 72
    if mtype == m.HELLO:
        return 3
    return fixed


__all__ = ["Device", "DeviceError", "KERNEL_VERSION"]
