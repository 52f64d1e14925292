"""The host side of the link: handshake, A/B upload, inference, learning, pull, telemetry.

Reliability (docs/protocol.md, "Sequence numbers, acks, retransmission"): every request carries
an 8-bit sequence number; the device answers each with one frame of the same number. Up to
``window`` requests are in flight (pipelining keeps a slow line busy while replies travel
back). A request is retransmitted, together with every later unanswered one, when

* the device sends NAK(expected, held) (it saw a gap; requests it holds are not resent), or
* a later-numbered request was answered first (the device answers in order over a FIFO line,
  so this one's reply was lost), or
* no reply came within the retransmission timeout (``rto``) since the request was last sent
  or since the device's last BUSY keep-alive: adaptive from measured round trips
  (Jacobson/Karn, at least ``min_timeout`` = 50 ms, twice the device's BUSY interval;
  ``timeout`` before any measurement), plus twice the time the line needs for the unanswered
  requests (``2 * bytes * 10 / baud``) when the device announces a baud rate, doubled after
  each timeout; a timeout resends the oldest unanswered request and the newest as a probe
  (not the whole window, which would flood a slow line). A BUSY restarts every timer, so a
  long request (a slow TEACH, a big commit) is waited for, not retransmitted.

The device executes each sequence number once and answers retransmissions from its reply cache,
so retransmitting is always safe. After ``retries`` timeouts of the same request the client
gives up with a LinkError naming the message.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from edgelearn.errors import InputError, LinkError
from edgelearn.link import framing
from edgelearn.link import messages as m
from edgelearn.link.framing import FLAG_DEVICE, Frame, FrameError, StreamDecoder, crc32
from edgelearn.link.transport import Transport, open_transport

ProgressFn = Callable[[int, int], None]
BUSY_HOLD = 0.1     # s: after a BUSY, no retransmission before this (four BUSY intervals)


class DeviceErrorReply(LinkError):
    """The device answered a request with an ERROR frame; ``error`` holds it."""

    def __init__(self, error: m.Error) -> None:
        super().__init__(error.describe())
        self.error = error
        self.code = error.code


@dataclass
class _Pending:
    seq: int
    msg: m.Message
    wire: bytes
    sent_at: float
    timeouts: int = 0
    sends: int = 0
    reply: m.Message | None = None
    timer_at: float = 0.0      # last send or BUSY: what the retransmission timer counts from
    busy: bool = False         # a BUSY came for it: its round trip is not a clean sample


@dataclass(frozen=True)
class UploadResult:
    slot: int
    length: int
    crc: int
    generation: int
    seconds: float           # UPLOAD_BEGIN .. commit reply (verification excluded)
    verify_seconds: float
    wire_bytes: int          # bytes the host wrote during the upload (retransmissions included)
    retransmissions: int


@dataclass
class LinkStats:
    frames_sent: int = 0
    bytes_sent: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    naks: int = 0
    fast_retransmissions: int = 0
    bad_frames: int = 0
    echoes: int = 0
    busy: int = 0


class Client:
    """A session with one device. ``port`` is a URL (see transport.py) or a Transport.

    Args:
        timeout: retransmission timeout in seconds until round trips have been measured.
        min_timeout: lower bound of the adaptive timeout, seconds.
        retries: timeouts of one request before giving up.
        window: requests in flight (None: the device's announced window).
        protocol_version: the version this host speaks (tests set a wrong one on purpose).
        baud: line rate used for timeouts when the device announces none (0: unknown).
        handshake: send HELLO on construction.
    """

    def __init__(self, port: str | Transport, *, timeout: float = 0.2, min_timeout: float = 0.05,
                 retries: int = 10,
                 window: int | None = None, protocol_version: int = framing.PROTOCOL_VERSION,
                 baud: int = 0, handshake: bool = True, baudrate: int = 115200) -> None:
        import math
        for name, v in (("timeout", timeout), ("min_timeout", min_timeout)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 < v <= 3600):
                raise LinkError(f"{name} must be a number of seconds in (0, 3600], got {v!r}")
        if not (isinstance(retries, int) and 0 <= retries <= 10000):
            raise LinkError(f"retries must be an integer in 0..10000, got {retries!r}")
        if window is not None and not (isinstance(window, int) and 1 <= window <= 64):
            raise LinkError(f"window must be 1..64, got {window!r}")
        for name, v in (("baud", baud), ("baudrate", baudrate)):
            if not (isinstance(v, int) and 0 <= v <= 100_000_000):
                raise LinkError(f"{name} must be an integer in 0..100000000, got {v!r}")
        self.transport = open_transport(port, baudrate) if isinstance(port, str) else port
        self.timeout, self.retries = float(timeout), int(retries)
        self.min_timeout = float(min_timeout)
        self.srtt: float | None = None     # smoothed round-trip time (Jacobson/Karn)
        self.rttvar = 0.0
        self._backoff = 1
        self.want_window = window
        self.version = int(protocol_version)
        self.baud = int(baud)
        self.decoder = StreamDecoder(framing.MAX_PAYLOAD_LIMIT)
        self.stats = LinkStats()
        self.info: m.HelloReply | None = None
        self.window = 1
        self.max_payload = 64
        self._seq = 0
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._busy_seen = False
        self._closed = False
        if handshake:
            try:
                self.hello()
            except BaseException:
                self.close()
                raise

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def rto(self) -> float:
        """Retransmission timeout, seconds: ``timeout`` until a round trip was measured, then
        max(min_timeout, srtt + 4 rttvar) (Jacobson); plus, when the line rate is known, twice
        the time the line needs for the unanswered requests; doubled per consecutive timeout
        (Karn, up to 8x)."""
        base = self.timeout if self.srtt is None else max(self.min_timeout,
                                                          self.srtt + 4 * self.rttvar)
        baud = (self.info.baud if self.info and self.info.baud else 0) or self.baud
        if baud:
            queued = sum(len(p.wire) for p in self._pending.values()) or \
                framing.max_wire_len(self.max_payload)
            base += 2 * queued * 10 / baud
        return base * self._backoff

    def _limit(self, p: _Pending) -> float:
        """How long ``p`` may wait: the RTO, and after a BUSY for any unanswered request at
        least BUSY_HOLD (four BUSY intervals: a device loop delayed by its host's scheduler
        does not draw a retransmission)."""
        return max(self.rto, BUSY_HOLD) if self._busy_seen else self.rto

    def _sample_rtt(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar += 0.25 * (abs(self.srtt - rtt) - self.rttvar)
            self.srtt += 0.125 * (rtt - self.srtt)
        self._backoff = 1

    # -- frames --------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        s = self._seq
        self._seq = (self._seq + 1) & 0xFF
        return s

    def _send(self, p: _Pending) -> None:
        self.transport.write(p.wire)
        p.sent_at = p.timer_at = time.monotonic()
        p.sends += 1
        self.stats.frames_sent += 1
        self.stats.bytes_sent += len(p.wire)

    def _queue(self, msg: m.Message) -> _Pending:
        seq = self._next_seq()
        wire = framing.encode_frame(Frame(msg.TYPE, seq, msg.pack(), self.version, 0))
        p = _Pending(seq, msg, wire, 0.0)
        self._pending[seq] = p
        self._send(p)
        return p

    def _resend_from(self, seq: int, nak: m.Nak | None = None) -> None:
        """Retransmit pending requests from ``seq`` on, in sequence order.

        After a NAK (selective repeat) only ``seq`` itself and the gaps below the newest
        request the device holds are resent, then the newest request as a probe: later
        requests are probably still on their way (the NAK left at the first out-of-order
        arrival); if they or the resent ones were lost, the probe draws the next NAK.
        """
        order = list(self._pending)
        if seq not in order:
            return
        top = nak.held.bit_length() if nak is not None else 255
        sent = None
        for s in order[order.index(seq):]:
            k = (s - seq) & 0xFF
            if k > top or (nak is not None and nak.holds(s)):
                continue
            self._send(self._pending[s])
            self.stats.retransmissions += 1
            sent = s
        if nak is not None and sent != order[-1]:
            # probe with the newest request: if the resent one is lost again, the probe
            # arrives out of order and draws the next NAK instead of a timeout
            self._send(self._pending[order[-1]])
            self.stats.retransmissions += 1

    def _pump(self, wait: float) -> None:
        """Read for up to ``wait`` seconds (returns after the first data); handle frames."""
        data = self.transport.read(max(wait, 0.0))
        if not data:
            return
        for item in self.decoder.feed(data):
            if isinstance(item, FrameError):
                self.stats.bad_frames += 1
                continue
            if not item.flags & FLAG_DEVICE:
                self.stats.echoes += 1
                continue
            self._on_frame(item)

    def _on_frame(self, fr: Frame) -> None:
        if fr.type == m.BUSY:
            # the device is executing request fr.seq in order: every unanswered request is
            # alive; restart their timers and the backoff
            if fr.seq in self._pending:
                self.stats.busy += 1
                now = time.monotonic()
                self._pending[fr.seq].busy = True
                for q in self._pending.values():
                    q.timer_at = now
                self._backoff = 1
                self._busy_seen = True
            return
        if fr.type == m.NAK:
            self.stats.naks += 1
            try:
                nak = m.Nak.unpack(fr.payload)
            except m.MessageError:
                return
            self._resend_from(nak.expected, nak)
            return
        p = self._pending.get(fr.seq)
        if p is None:
            return  # a late duplicate reply
        if fr.type not in (p.msg.TYPE | m.REPLY, m.ERROR):
            return  # a stale reply of an earlier session that reused this number
        try:
            reply = m.decode_message(fr.type, fr.payload)
        except m.MessageError as exc:
            reply = m.Error(m.E_BAD_LENGTH, p.msg.TYPE, 0, 0,
                            f"malformed reply: {exc}".encode())
        earlier = []
        for q in self._pending.values():          # sequence order
            if q is p:
                break
            earlier.append(q)
        del self._pending[fr.seq]
        p.reply = reply
        if not any(q.busy for q in self._pending.values()):
            self._busy_seen = False
        now = time.monotonic()
        if p.sends == 1 and not p.busy:   # Karn: only unambiguous round trips are measured
            self._sample_rtt(now - p.sent_at)
        # The device executes and answers in sequence order over a FIFO line: an unanswered
        # request numbered before this one was executed and its reply lost. Resend it now (the
        # device answers from its reply cache) instead of waiting for the timer; at most once
        # per round trip, unless it was last sent before this one.
        for q in earlier:
            if q.sent_at <= p.sent_at or now - q.sent_at > 2 * (self.srtt or self.timeout):
                self._send(q)
                self.stats.retransmissions += 1
                self.stats.fast_retransmissions += 1

    def _check_timeouts(self) -> None:
        if not self._pending:
            return
        oldest = next(iter(self._pending.values()))
        if time.monotonic() - oldest.timer_at < self._limit(oldest):
            return
        oldest.timeouts += 1
        self.stats.timeouts += 1
        rto = self.rto
        self._backoff = min(self._backoff * 2, 8)
        if oldest.timeouts > self.retries:
            hint = ""
            if self.stats.echoes and not self.info:
                hint = "; only our own frames came back: the port is a loop-back, not a device"
            raise LinkError(f"no reply to {oldest.msg.name} (seq {oldest.seq}) after "
                            f"{self.retries} retries (timeout {rto:.2f} s) on {self.transport.url}"
                            f"{hint}")
        self._resend_oldest_and_probe(oldest.seq)

    def _resend_oldest_and_probe(self, seq: int) -> None:
        """After a timeout: resend the oldest unanswered request and the newest as a probe, not
        the whole window. On a line slower than the RTO assumed (a UART at 115200 baud carries
        a window of 1 KiB requests in 0.7 s; QEMU's emulated UART can be slower), resending
        every unanswered request at each timeout queues copies faster than the line drains
        them and the device answers duplicates while new requests wait (measured: the headline
        deploy on QEMU gave up in 4 of 5 runs). The probe recovers the rest: if the device
        lacks earlier requests it holds the probe and NAKs the gaps (selective repeat); if it
        executed them and their replies were lost, the probe's cached reply arrives after an
        unanswered request and draws the fast retransmit of each."""
        order = list(self._pending)
        self._send(self._pending[seq])
        self.stats.retransmissions += 1
        if order[-1] != seq:
            self._send(self._pending[order[-1]])
            self.stats.retransmissions += 1

    def _take(self, p: _Pending) -> m.Message:
        reply = p.reply
        if isinstance(reply, m.Error):
            # the rest of an aborted pipeline stays pending: those requests complete (in order,
            # once each) and their replies are dropped, so sequence numbers stay in step
            if reply.code == m.E_VERSION:
                raise LinkError(f"protocol version mismatch: host speaks version {self.version}, "
                                f"device speaks version {reply.arg0}")
            if reply.code == m.E_NO_SESSION:
                raise DeviceErrorReply(m.Error(reply.code, reply.request, 0, 0, (
                    "device has no session (it was reset); send HELLO again "
                    "(Client.hello())").encode()))
            raise DeviceErrorReply(reply)
        return reply

    # -- request pipelines ---------------------------------------------------------------------
    def pipeline(self, msgs: Iterable[m.Message]) -> Iterator[m.Message]:
        """Send ``msgs`` with up to ``window`` in flight; yield replies in request order."""
        it = iter(msgs)
        order: list[_Pending] = []
        exhausted = False
        while True:
            while not exhausted and self._in_flight() < self.window:
                try:
                    msg = next(it)
                except StopIteration:
                    exhausted = True
                    break
                order.append(self._queue(msg))
            while order and order[0].reply is not None:
                yield self._take(order.pop(0))
            if exhausted and not order:
                return
            if self._pending:
                oldest = next(iter(self._pending.values()))
                wait = oldest.timer_at + self._limit(oldest) - time.monotonic()
                self._pump(min(max(wait, 0.0), 0.05))
                self._check_timeouts()

    def _in_flight(self) -> int:
        """Sequence numbers from the oldest unanswered request to the next one to send.

        The window bounds this span, not the count of unanswered requests: the device caches
        only the last ``window`` replies, so a request whose reply was lost must stay within
        ``window`` of the newest one or its retransmission could no longer be answered.
        """
        if not self._pending:
            return 0
        return (self._seq - next(iter(self._pending))) & 0xFF

    def request(self, msg: m.Message) -> m.Message:
        """Send one request and return its reply (raises DeviceErrorReply on ERROR)."""
        return next(iter(self.pipeline([msg])))

    # -- handshake -----------------------------------------------------------------------------
    def hello(self) -> m.HelloReply:
        """(Re)start the session; checks versions and adopts the device's limits."""
        self._pending.clear()
        self.decoder.reset()
        self.window, self.max_payload = 1, 64
        self.transport.write(framing.DELIMITER)   # end any partial frame on the line
        reply = self.request(m.Hello(framing.MAX_PAYLOAD_LIMIT, self.want_window or 64))
        if not isinstance(reply, m.HelloReply):
            raise LinkError(f"unexpected reply to HELLO: {reply.name}")
        if reply.protocol_version != self.version:
            raise LinkError(f"protocol version mismatch: host speaks version {self.version}, "
                            f"device speaks version {reply.protocol_version}")
        self.info = reply
        self.max_payload = reply.max_payload
        self.window = max(1, min(reply.window, self.want_window or reply.window))
        return reply

    def ping(self, data: bytes = b"") -> float:
        """Round-trip time in seconds of one PING carrying ``data``."""
        t0 = time.perf_counter()
        reply = self.request(m.Ping(data))
        if reply.data != data:
            raise LinkError(f"PING echo differs ({len(reply.data)} B back, {len(data)} B sent)")
        return time.perf_counter() - t0

    # -- upload --------------------------------------------------------------------------------
    def upload(self, image: bytes, chunk: int | None = None, progress: ProgressFn | None = None,
               verify: str = "readback") -> UploadResult:
        """Upload ``image`` into the inactive slot, commit it atomically, verify it.

        chunk: bytes per UPLOAD_DATA (default and maximum: the device's max payload).
        progress(done, total) is called after each acknowledged chunk (and by the read-back).
        verify: 'readback' (read the slot back and compare), 'crc' (the commit's CRC only) or
        'none'.
        """
        if verify not in ("readback", "crc", "none"):
            raise LinkError(f"verify must be readback, crc or none, got {verify!r}")
        self._need_session()
        image = bytes(image)
        chunk = self.max_payload if chunk is None else int(chunk)
        if not 1 <= chunk <= self.max_payload:
            raise LinkError(f"chunk of {chunk} B is outside 1..{self.max_payload} B (the "
                            f"device's maximum payload)")
        total, crc = len(image), crc32(image)
        t0, sent0, re0 = time.perf_counter(), self.stats.bytes_sent, self.stats.retransmissions
        begin = self.request(m.UploadBegin(total, crc))
        chunks = (m.UploadData(image[i:i + chunk]) for i in range(0, total, chunk))
        for reply in self.pipeline(chunks):
            if progress is not None:
                progress(reply.received, total)
        done = self.request(m.UploadCommit())
        seconds = time.perf_counter() - t0
        if done.crc != crc or done.length != total:
            raise LinkError(f"device committed {done.length} B with CRC 0x{done.crc:08x}, host "
                            f"sent {total} B with CRC 0x{crc:08x}")
        wire, retx = self.stats.bytes_sent - sent0, self.stats.retransmissions - re0
        t1 = time.perf_counter()
        if verify == "readback":
            back = self.read_image(done.slot, total, progress, step=chunk)
            if back != image:
                bad = next(i for i, (a, b) in enumerate(zip(back, image)) if a != b)
                raise LinkError(f"read-back of slot {done.slot} differs from the upload at byte "
                                f"{bad} of {total}")
        return UploadResult(done.slot if done.slot == begin.slot else done.slot, total, crc,
                            done.generation, seconds, time.perf_counter() - t1, wire, retx)

    def read_image(self, slot: int, length: int, progress: ProgressFn | None = None,
                   step: int | None = None) -> bytes:
        """Read ``length`` bytes of a slot's image back (pipelined READ_FLASH of ``step`` bytes
        each, default as large as a reply may be; smaller replies survive a noisy line)."""
        step = min(self.max_payload - 8, step or self.max_payload)
        reqs = (m.ReadFlash(slot, off, min(step, length - off)) for off in range(0, length, step))
        parts = []
        got = 0
        for reply in self.pipeline(reqs):
            parts.append(reply.data)
            got += len(reply.data)
            if progress is not None:
                progress(got, length)
        return b"".join(parts)

    # -- inference and learning ----------------------------------------------------------------
    def infer(self, x: np.ndarray, steps_per_frame: int | None = None,
              reset: bool = False) -> np.ndarray:
        """Stream inputs x [T, n_in] through the device; returns outputs [T, n_out].

        Boolean or 0/1 inputs travel as packed bits (input spikes); other integer inputs in
        [-128, 127] (spike counts, int8 values) travel as one byte each. Output spikes come
        back as 0/1 (int64); a non-spiking readout comes back as its int32 membrane values.
        Several steps travel per frame (``steps_per_frame``, default: as many as fit the
        payload limit) and frames are pipelined up to the window.
        """
        self._need_session()
        rows, flags, k = self._rows(x, steps_per_frame)
        T, n_in = np.asarray(x).shape
        reqs = (m.Infer(min(k, T - t), n_in, flags | (m.INFER_RESET if (reset and t == 0)
                                                      else 0), rows[t:t + k].tobytes())
                for t in range(0, T, k))
        outs = []
        for reply in self.pipeline(reqs):
            if reply.fmt == m.OUT_BITS:
                bits = np.frombuffer(reply.data, np.uint8).reshape(reply.n_steps, -1)
                outs.append(np.unpackbits(bits, axis=1, bitorder="little")[:, :reply.n_out]
                            .astype(np.int64))
            else:
                outs.append(np.frombuffer(reply.data, "<i4").reshape(reply.n_steps, reply.n_out)
                            .astype(np.int64))
        return np.concatenate(outs, axis=0)

    def learn(self, enable: bool = True, layer: int | None = None, params=None, *,
              qnet=None, seed: int = 1, block=None) -> m.LearnReply:
        """Switch streaming LPL on/off on ``layer`` (index; default the feature layer).

        Turning it on needs the layer's integer constants: ``block`` (lpl_codes.Codes), or
        ``params`` (lpl_rate.Params, default ``lpl_rate.deploy_default()``) together with the
        running network ``qnet``, from which the codes of that layer are computed here (a
        device converts no floats). ``seed`` restarts the device PRNG."""
        self._need_session()
        lay = m.LAYER_DEFAULT if layer is None else int(layer)
        if not enable:
            return self.request(m.Learn(0, lay))
        if block is None:
            from edgelearn.model import feature_layer_index
            from edgelearn.rules import lpl_rate
            if qnet is None:
                raise LinkError("LEARN needs the layer's LPL codes: pass block=, or params= "
                                "with qnet= (the running network)")
            k = feature_layer_index(qnet.layers) if layer is None else int(layer)
            if not 0 <= k < len(qnet.layers):
                raise LinkError(f"layer {k} is not a layer of '{qnet.name}'")
            block = lpl_rate.layer_codes(params or lpl_rate.deploy_default(), qnet.layers[k])
        return self.request(m.Learn(1, lay, int(seed) & 0xFFFFFFFF, block))

    def pull(self, progress: ProgressFn | None = None) -> bytes:
        """The running network with its learned weights, as a device image (CRC-checked)."""
        self._need_session()
        return self._read_snapshot(self.request(m.PullBegin()), m.PullRead, "pulled image",
                                   progress)

    def _read_snapshot(self, head, read_msg, what: str, progress: ProgressFn | None = None
                       ) -> bytes:
        """Fetch a device snapshot of ``head.length`` bytes with pipelined ``read_msg``
        requests and check its CRC-32 against ``head.crc``."""
        limit = self.info.slot_size if self.info is not None else 0
        if head.length > limit:
            raise LinkError(f"{what}: the device announces {head.length} B, more than a flash "
                            f"slot ({limit} B); refusing to read it")
        step = self.max_payload - 8
        parts, got = [], 0
        for reply in self.pipeline(read_msg(off, min(step, head.length - off))
                                   for off in range(0, head.length, step)):
            parts.append(reply.data)
            got += len(reply.data)
            if progress is not None:
                progress(got, head.length)
        data = b"".join(parts)
        if crc32(data) != head.crc:
            raise LinkError(f"{what} CRC 0x{crc32(data):08x} differs from the device's "
                            f"0x{head.crc:08x}")
        return data

    # -- sample mode: the deployment engine on the board --------------------------------------
    def put_blob(self, kind: int, data: bytes, progress: ProgressFn | None = None) -> None:
        """Send blob ``kind`` (messages.BLOB_CONFIG / BLOB_HEAD / BLOB_WEIGHTS) and apply it.

        The config blob switches the device to sample mode; the head blob adds the hEP head;
        the weights blob restores learned state (binary layouts: edgelearn.link.blobs)."""
        self._need_session()
        data = bytes(data)
        self.request(m.BlobBegin(kind, len(data), crc32(data)))
        step = self.max_payload
        for reply in self.pipeline(m.BlobData(data[i:i + step])
                                   for i in range(0, len(data), step)):
            if progress is not None:
                progress(reply.received, len(data))
        self.request(m.BlobEnd())

    def get_blob(self, kind: int) -> bytes:
        """Fetch blob ``kind`` from the device (CRC-checked)."""
        self._need_session()
        return self._read_snapshot(self.request(m.BlobGet(kind)), m.BlobRead,
                                   f"blob {m.BLOB_NAMES.get(kind, kind)}")

    def sample(self, x: np.ndarray, steps_per_frame: int | None = None
               ) -> tuple[int, np.ndarray, int]:
        """Run one whole sample x [T, n_in] in sample mode (state reset first); returns
        (prediction, float32 class scores, hidden spikes). LPL learns during it if on."""
        self._need_session()
        rows, flags, k = self._rows(x, steps_per_frame)
        T = rows.shape[0]
        reqs = [m.Sample(min(k, T - t), x.shape[1],
                         flags | (m.SAMPLE_BEGIN if t == 0 else 0)
                         | (m.SAMPLE_END if t + k >= T else 0), rows[t:t + k].tobytes())
                for t in range(0, T, k)]
        last = None
        for last in self.pipeline(reqs):
            pass
        if last is None or not last.done:
            raise LinkError("SAMPLE: the device did not return a result")
        return last.prediction, np.frombuffer(last.data, "<f4").astype(np.float64), last.spikes

    def teach(self, label: int) -> m.TeachReply:
        """Supervised hEP update on the device from the last sample and ``label``."""
        self._need_session()
        return self.request(m.Teach(int(label)))

    def set_mode(self, lpl: bool, hep: bool) -> m.ModeReply:
        """Switch LPL and hEP on or off in sample mode."""
        self._need_session()
        return self.request(m.Mode(int(bool(lpl)), int(bool(hep))))

    def _rows(self, x, steps_per_frame: int | None) -> tuple[np.ndarray, int, int]:
        """Encode inputs [T, n_in] as frame rows: packed bits when 0/1, else int8 values, else
        int16 values (the network's integer input)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] == 0:
            raise InputError(f"input must be [T, n_in] with T >= 1, got shape {x.shape}")
        if x.dtype.kind not in "biu" and not (np.all(np.isfinite(x))
                                              and np.array_equal(x, np.round(x))):
            raise InputError(f"input must hold integers, got dtype {x.dtype}")
        binary = x.dtype == np.bool_ or not np.any((x != 0) & (x != 1))
        if not binary and (x.min() < -32768 or x.max() > 32767):
            raise InputError(f"input values must lie in [-32768, 32767], got range "
                             f"[{x.min()}, {x.max()}]")
        if binary:
            flags = 0
        else:
            flags = m.INFER_COUNTS if x.min() >= -128 and x.max() <= 127 else m.INFER_INT16
        row = m.input_row_len(x.shape[1], flags)
        fit = max(1, (self.max_payload - 5) // row)
        k = fit if steps_per_frame is None else int(steps_per_frame)
        if not 1 <= k <= fit:
            raise InputError(f"steps_per_frame must be 1..{fit} for {x.shape[1]} inputs, got {k}")
        if binary:
            rows = np.packbits(x.astype(np.uint8), axis=1, bitorder="little")
        else:
            rows = x.astype(np.int8 if flags == m.INFER_COUNTS else "<i2")
        return rows, flags, k

    def telemetry(self) -> m.TelemetryReply:
        self._need_session()
        return self.request(m.Telemetry())

    def reset(self, reboot: bool = False) -> None:
        """Zero the neuron state, or reboot the device (then a new HELLO is sent)."""
        self._need_session()
        mode = m.RESET_REBOOT if reboot else m.RESET_STATE
        try:
            self.request(m.Reset(mode))
        except DeviceErrorReply as exc:
            # the reply to a reboot can be lost; the retransmission then meets a fresh device
            if not (reboot and exc.code == m.E_NO_SESSION):
                raise
        if reboot:
            self.hello()

    def _need_session(self) -> None:
        if self.info is None:
            raise LinkError("no session: call hello() first")
