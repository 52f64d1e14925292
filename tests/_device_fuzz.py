"""Hostile requests against a simulated board, and the board's promise (docs/protocol.md 11).

    board = FuzzBoard("sample")                  # a Device with a model (and sample mode)
    board.send(m.SAMPLE, payload)                # one request -> its answer, checked

The promise for every request: exactly one answer with the request's sequence number, its
reply type or ERROR with a documented code (never INTERNAL, which marks a defect), within
TIMEOUT seconds of CPU time (a hang is cut by an interval timer that counts this process's CPU
time, not wall time, so a loaded machine does not make a slow answer a hang), no exception out
of the device; after an ERROR the committed model (the active slot's image and CRC) and
everything learning changes are as before the request; the board still answers PING. Counts per request type go into the
STATS of tests/_fuzz_harness.py (keys "board TYPE"), which adds them to the JSON file FUZZ_STATS
names, peak RSS included (docs/results.md).
"""

from __future__ import annotations

import signal
import struct
import time

import numpy as np

from _fuzz_harness import STATS
from _fuzz_worker import _peak_rss, _reset_peak
from edgelearn.device.config import compile_config
from edgelearn.device.engine import EngineConfig, HEPSettings, default_lpl
from edgelearn.device.head import DeviceHead
from edgelearn.kernels.image import to_image
from edgelearn.link import blobs
from edgelearn.link import messages as m
from edgelearn.link.framing import Frame, StreamDecoder, crc32, encode_frame
from edgelearn.rules import lpl_rate
from edgelearn.rules.hep import EnergyHead
from firmware_sim.device import Device
from tests._inprocess_board import test_qnetwork

TIMEOUT = 10.0
RSS_CAP = 512 << 20
STATES = ("empty", "streaming", "sample")
DOCUMENTED = set(m.ERROR_NAMES) - {m.E_INTERNAL}


class Hang(Exception):
    pass


def _alarm(*_):
    raise Hang()


def model():
    return test_qnetwork(n_in=24, n_hidden=16, n_out=6, seed=7)


def engine_config():
    import dataclasses
    return EngineConfig(lpl_layers=("hidden",), seed=2, hep=HEPSettings(replay=3, repeats=2),
                        lpl=dataclasses.replace(default_lpl(), warmup=2, eta=1e-3))


def head():
    q = model()
    n = q.layers[0].n_out + q.n_out
    return DeviceHead(EnergyHead((n, 6, q.n_out), seed=3), np.zeros(n), np.ones(n))


def valid_payloads(qnet) -> dict[int, list[bytes]]:
    """Well-formed payloads per request type (the seeds that mutations start from)."""
    img = to_image(qnet)
    x = np.random.default_rng(0).integers(0, 3, (4, qnet.n_in)).astype(np.int8).tobytes()
    bits = bytes(4 * ((qnet.n_in + 7) // 8))
    codes = lpl_rate.layer_codes(default_lpl(), qnet.layers[0])
    return {
        m.HELLO: [m.Hello(1024, 8).pack()], m.PING: [b"ping"],
        m.UPLOAD_BEGIN: [m.UploadBegin(len(img), crc32(img)).pack()],
        m.UPLOAD_DATA: [img[:100]], m.UPLOAD_COMMIT: [b""],
        m.READ_FLASH: [m.ReadFlash(0, 0, 16).pack()],
        m.INFER: [m.Infer(4, qnet.n_in, 0, bits).pack(),
                  m.Infer(4, qnet.n_in, m.INFER_COUNTS | m.INFER_RESET, x).pack()],
        m.LEARN: [m.Learn(1, 0, 3, codes).pack(), m.Learn(0, 0xFF).pack()],
        m.PULL_BEGIN: [b""], m.PULL_READ: [m.PullRead(0, 32).pack()],
        m.TELEMETRY: [b""], m.RESET: [b"\x00"],
        m.BLOB_BEGIN: [m.BlobBegin(1, 100, 0).pack()], m.BLOB_DATA: [b"\x01" * 40],
        m.BLOB_END: [b""], m.BLOB_GET: [b"\x03", b"\x01"], m.BLOB_READ: [m.BlobRead(0, 16).pack()],
        m.SAMPLE: [m.Sample(4, qnet.n_in, m.SAMPLE_BEGIN | m.INFER_COUNTS | m.SAMPLE_END,
                            x).pack()],
        m.TEACH: [m.Teach(1).pack()], m.MODE: [m.Mode(1, 1).pack()],
    }


def valid_blobs(qnet) -> dict[int, bytes]:
    cfg = compile_config(engine_config(), qnet)
    return {m.BLOB_CONFIG: blobs.encode_config(cfg), m.BLOB_HEAD: blobs.encode_head(head())}


def mutate(data: bytes, rnd) -> bytes:
    """One of: flip bits, overwrite a byte, overwrite 4 bytes with an extreme u32, truncate,
    extend, or splice random bytes. ``rnd`` is a random.Random."""
    b = bytearray(data)
    op = rnd.randrange(6)
    if op == 0 and b:
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(len(b))
            b[i] ^= 1 << rnd.randrange(8)
    elif op == 1 and b:
        b[rnd.randrange(len(b))] = rnd.choice((0, 1, 0x7F, 0x80, 0xFE, 0xFF))
    elif op == 2 and len(b) >= 4:
        i = rnd.randrange(len(b) - 3)
        b[i:i + 4] = struct.pack("<I", rnd.choice((0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                                                   0x7FF00000, 0xFFC00000)))
    elif op == 3 and b:
        del b[rnd.randrange(len(b)):]
    elif op == 4:
        b += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
    else:
        i = rnd.randrange(len(b) + 1)
        b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
    return bytes(b)


class FuzzBoard:
    """A simulated board prepared in ``state``, driven frame by frame."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.logs: list[str] = []
        self.dev = Device(ram=128 * 1024, flash=256 * 1024, log=self.logs.append)
        self.dec = StreamDecoder(4096)
        self.seq = 0
        self.qnet = model()
        self._ok(m.HELLO, m.Hello(1024, 8).pack())
        self._prepare()

    def _prepare(self) -> None:
        """Bring the board into its state (after a reboot the committed model runs again)."""
        state = self.state
        if state in ("streaming", "sample") and self.dev.engine is None:
            img = to_image(self.qnet)
            self._ok(m.UPLOAD_BEGIN, m.UploadBegin(len(img), crc32(img)).pack())
            for i in range(0, len(img), 1000):
                self._ok(m.UPLOAD_DATA, img[i:i + 1000])
            self._ok(m.UPLOAD_COMMIT, b"")
        if state == "sample" and not self.dev.sample_mode:
            for kind, data in sorted(valid_blobs(self.qnet).items(), reverse=True):
                self.put_blob(kind, data)
            self._ok(m.MODE, m.Mode(1, 1).pack())

    def _raw(self, mtype: int, payload: bytes) -> list[Frame]:
        fr = Frame(mtype, self.seq, payload)
        self.seq = (self.seq + 1) & 0xFF
        return [f for f in self.dec.feed(self.dev.feed(encode_frame(fr)))
                if isinstance(f, Frame)]

    def _ok(self, mtype: int, payload: bytes) -> bytes:
        (fr,) = self._raw(mtype, payload)
        if fr.type != mtype | m.REPLY:
            raise AssertionError(f"{m.type_name(mtype)} failed: {m.decode_message(fr.type, fr.payload)}")
        return fr.payload

    def put_blob(self, kind: int, data: bytes) -> None:
        self._ok(m.BLOB_BEGIN, m.BlobBegin(kind, len(data), crc32(data)).pack())
        for i in range(0, len(data), 900):
            self._ok(m.BLOB_DATA, data[i:i + 900])
        self._ok(m.BLOB_END, b"")

    def fingerprint(self) -> tuple:
        """What a failed request must leave as it was: the committed model and learning."""
        d = self.dev
        act = d.flash.active()
        flash = None if act is None else (act.slot, act.generation, act.crc,
                                          d.flash.image(act.slot))
        eng = d.engine
        learned = None
        if eng is not None:
            w = eng.get_weights()
            learned = tuple((k, w[k].tobytes()) for k in sorted(w)) + (
                tuple(la.weight.tobytes() for la in eng.network().layers),
                eng.lpl_on, eng.hep_on, eng._open, eng._T)
        return flash, d.running, d.sample_mode, learned

    def send(self, mtype: int, payload: bytes, composite: str = "") -> m.Message:
        """One request; returns the decoded answer after checking the promise."""
        name = composite or m.type_name(mtype)
        st = STATS.setdefault(f"board {name}", {"tried": 0, "replies": 0, "errors": 0, "internal": 0,
                                     "hangs": 0, "crashes": 0, "state_changed_on_error": 0,
                                     "peak_rss_max": 0, "seconds_max": 0.0})
        st["tried"] += 1
        before = self.fingerprint()
        seq = self.seq
        _reset_peak()
        t0 = time.monotonic()
        old = signal.signal(signal.SIGPROF, _alarm)
        signal.setitimer(signal.ITIMER_PROF, TIMEOUT)
        try:
            frames = self._raw(mtype, payload)
        except Hang:
            st["hangs"] += 1
            raise AssertionError(f"{name}: no answer within {TIMEOUT} s of CPU time") from None
        except Exception as exc:
            st["crashes"] += 1
            raise AssertionError(f"{name}: the device raised {exc!r}") from exc
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, old)
        st["seconds_max"] = max(st["seconds_max"], round(time.monotonic() - t0, 3))
        st["peak_rss_max"] = max(st["peak_rss_max"], _peak_rss())
        assert len(frames) == 1, f"{name}: {len(frames)} answers"
        fr = frames[0]
        assert fr.seq == seq and fr.flags & 1, f"{name}: answer seq {fr.seq} / flags {fr.flags}"
        msg = m.decode_message(fr.type, fr.payload)
        if isinstance(msg, m.Error):
            st["errors"] += 1
            st["internal"] += msg.code == m.E_INTERNAL
            assert msg.code in DOCUMENTED, f"{name}: {msg.describe()}"
            after = self.fingerprint()
            changed = after != before and not (mtype == m.RESET)
            st["state_changed_on_error"] += changed
            assert not changed, f"{name}: state changed although it failed: {msg.describe()}"
        else:
            st["replies"] += 1
            assert fr.type == mtype | m.REPLY, f"{name}: answered with {m.type_name(fr.type)}"
        if mtype in (m.HELLO, m.RESET) and not isinstance(msg, m.Error):
            # a HELLO set new session limits, a RESET may have rebooted: open the harness's
            # session again and bring the board back into its state
            self._ok(m.HELLO, m.Hello(1024, 8).pack())
            self._prepare()
        assert self._ok(m.PING, b"alive") == b"alive"
        return msg
