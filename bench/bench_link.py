#!/usr/bin/env python3
"""Benchmark of the serial link against a firmware_sim process on a pseudo-terminal.

    python bench/bench_link.py [--quick] [--out reports/bench_link.json]

1. Raw pty throughput (baseline): pyserial writes to the slave, a thread drains the master.
2. Model upload throughput (1 MiB image, unpaced sim) for chunk sizes 256..1024 B, as a ratio
   of the raw pty rate; and at a byte error rate of 1e-3 (faulty: transport).
3. Frame efficiency: payload bytes / wire bytes per frame for chunk sizes 16..1024 (random
   data), and image bytes / host wire bytes measured over a whole clean upload.
4. Throttled line: the sim paced to 115200 and 460800 baud (8N1, baud/10 B/s); effective
   upload rate (image bytes / upload time, handshake excluded, BEGIN..COMMIT included) as a
   fraction of the baud limit; and at 115200 baud with a byte error rate of 1e-3.
5. Streamed inference: round-trip latency of one step per frame (window 1) vs an empty PING,
   and throughput with many steps per frame, pipelined.
Prints medians and ratios; writes JSON (+ PNG of parts 2-3 when matplotlib is available).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import serial  # noqa: E402  (bench scripts may import anything)

from edgelearn.atomic import atomic_save_png, atomic_write_text  # noqa: E402
from edgelearn.link import messages as m  # noqa: E402
from edgelearn.link.client import Client  # noqa: E402
from edgelearn.link.framing import Frame, encode_frame  # noqa: E402
from tests._inprocess_board import test_image  # noqa: E402


def raw_pty_rate(nbytes: int, block: int = 4096) -> float:
    """Bytes/s from a pyserial writer on a pty slave to a reader on the master."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    port = serial.Serial(path, timeout=1)
    got = [0]

    def drain():
        while got[0] < nbytes:
            got[0] += len(os.read(master, 65536))

    th = threading.Thread(target=drain, daemon=True)
    data = os.urandom(block)
    t0 = time.perf_counter()
    th.start()
    for _ in range(nbytes // block):
        port.write(data)
    th.join()
    dt = time.perf_counter() - t0
    port.close()
    os.close(master)
    os.close(slave)
    return nbytes / dt


def median(xs):
    return float(np.median(np.asarray(xs, dtype=float)))


def upload_runs(url: str, img: bytes, chunk: int, reps: int, **client_kw) -> dict:
    rates, wires, retx = [], [], []
    with Client(url, **client_kw) as c:
        for _ in range(reps):
            res = c.upload(img, chunk=chunk, verify="crc")
            rates.append(res.length / res.seconds)
            wires.append(res.wire_bytes)
            retx.append(res.retransmissions)
    return {"chunk": chunk, "rate_Bps": median(rates), "rates_Bps": rates,
            "image_over_wire": len(img) / median(wires), "retransmissions": median(retx)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller images")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_link.json"))
    args = ap.parse_args()
    reps = 1 if args.quick else 3
    out: dict = {"quick": args.quick}

    # 1. raw pty
    raw = [raw_pty_rate(8 << 20) for _ in range(reps)]
    out["raw_pty_Bps"] = median(raw)
    print(f"raw pty (pyserial -> master): median {median(raw) / 1e6:.1f} MB/s")

    # 2. upload throughput, clean and at 1e-3
    big = test_image(n_in=1024, n_hidden=1024, n_out=10, seed=1)
    sim = "sim?profile=linux&flash=4MiB"
    out["upload"] = []
    for chunk in (256, 512, 1024):
        r = upload_runs(sim, big, chunk, reps)
        r["over_raw"] = r["rate_Bps"] / out["raw_pty_Bps"]
        out["upload"].append(r)
        print(f"upload {len(big)} B, chunk {chunk:4d}: median {r['rate_Bps'] / 1e6:.2f} MB/s "
              f"= {100 * r['over_raw']:.1f} % of raw pty; image/wire "
              f"{100 * r['image_over_wire']:.1f} %")
    noisy = upload_runs(f"faulty:{sim}&rate=1e-3&seed=3", big, 256, 1,
                        timeout=0.1, retries=40)
    clean256 = out["upload"][0]["rate_Bps"]
    noisy["over_clean"] = noisy["rate_Bps"] / clean256
    out["upload_ber_1e-3"] = noisy
    print(f"upload at byte error rate 1e-3, chunk 256: {noisy['rate_Bps'] / 1e6:.2f} MB/s = "
          f"{100 * noisy['over_clean']:.1f} % of clean; {noisy['retransmissions']:.0f} "
          f"retransmissions, image/wire {100 * noisy['image_over_wire']:.1f} %")

    # 3. frame efficiency
    rng = np.random.default_rng(0)
    eff = {}
    for n in (16, 64, 128, 256, 512, 1024):
        ratios = [n / len(encode_frame(Frame(m.UPLOAD_DATA, 0, rng.bytes(n))))
                  for _ in range(50)]
        eff[n] = median(ratios)
    out["frame_efficiency"] = eff
    print("frame efficiency (payload/wire, random data): " +
          ", ".join(f"{n} B {100 * e:.1f} %" for n, e in eff.items()))
    ok = all(e >= 0.95 for n, e in eff.items() if n >= 256)
    print(f"  >= 95 % for chunks >= 256 B: {'yes' if ok else 'NO'}")
    out["frame_efficiency_ok"] = ok

    # 4. throttled line
    out["throttled"] = []
    for baud, size in ((115200, 16 if args.quick else 48), (460800, 64 if args.quick else 192)):
        img = test_image(n_in=1024, n_hidden=size, n_out=10, seed=2)
        r = upload_runs(f"sim?baud={baud}&profile=linux&flash=4MiB", img, 1024, reps)
        limit = baud / 10
        r.update(baud=baud, image_bytes=len(img), limit_Bps=limit,
                 over_limit=r["rate_Bps"] / limit)
        out["throttled"].append(r)
        print(f"throttled {baud} baud (limit {limit:.0f} B/s), {len(img)} B: median "
              f"{r['rate_Bps']:.0f} B/s = {100 * r['over_limit']:.1f} % of the baud limit")

    img = test_image(n_in=1024, n_hidden=16, n_out=10, seed=2)
    r = upload_runs("faulty:sim?baud=115200&profile=linux&flash=4MiB&rate=1e-3&seed=5", img,
                    256, 1, timeout=0.1, retries=40)
    r.update(baud=115200, image_bytes=len(img), limit_Bps=11520.0,
             over_limit=r["rate_Bps"] / 11520.0, byte_error_rate=1e-3)
    out["throttled_ber_1e-3"] = r
    print(f"throttled 115200 baud at byte error rate 1e-3, chunk 256, {len(img)} B: "
          f"{r['rate_Bps']:.0f} B/s = {100 * r['over_limit']:.1f} % of the baud limit "
          f"(image/wire {100 * r['image_over_wire']:.1f} %)")

    # 5. streamed inference
    img = test_image(n_in=700, n_hidden=256, n_out=20, seed=3)
    with Client(sim, window=1) as c:
        c.upload(img, verify="none")
        pings = [c.ping() for _ in range(200)]
        x = np.random.default_rng(1).random((300, 700)) < 0.05
        lat = []
        for t in range(300):
            t0 = time.perf_counter()
            c.infer(x[t:t + 1], steps_per_frame=1)
            lat.append(time.perf_counter() - t0)
    with Client(sim) as c:
        c.upload(img, verify="none")
        t0 = time.perf_counter()
        c.infer(x, reset=True)
        batched = (time.perf_counter() - t0) / len(x)
        tel = c.telemetry()
    from edgelearn.kernels.image import from_image
    from edgelearn.kernels.lif_kernels import qrun
    qnet = from_image(img)
    t0 = time.perf_counter()
    qrun(qnet, x.astype(np.int64))
    host_step = (time.perf_counter() - t0) / len(x)
    out["infer"] = {"ping_rtt_s": median(pings), "step_rtt_s": median(lat),
                    "batched_step_s": batched, "host_kernel_step_s": host_step,
                    "steps_per_frame_batched": (1024 - 5) // 88,
                    "device_cycles_per_step_m4": tel.cycles_per_step}
    print(f"streamed inference 700-256-20: one step per frame RTT median "
          f"{1e3 * median(lat):.2f} ms (empty PING {1e3 * median(pings):.2f} ms, host kernel "
          f"alone {1e3 * host_step:.2f} ms/step); batched+pipelined {1e3 * batched:.2f} "
          f"ms/step ({median(lat) / batched:.1f}x faster)")

    atomic_write_text(args.out, json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
        ns = list(eff)
        ax[0].plot(ns, [100 * eff[n] for n in ns], "o-")
        ax[0].axhline(95, color="gray", ls="--")
        ax[0].set(xscale="log", xlabel="payload bytes per frame", ylabel="payload / wire (%)",
                  title="frame efficiency")
        ch = [r["chunk"] for r in out["upload"]]
        ax[1].bar([str(c) for c in ch], [r["over_raw"] * 100 for r in out["upload"]])
        ax[1].set(xlabel="chunk bytes", ylabel="% of raw pty rate",
                  title="1 MiB upload vs raw pty")
        fig.tight_layout()
        buf_path = str(Path(args.out).with_suffix(".png"))
        atomic_save_png(fig, buf_path)
        print(f"wrote {buf_path}")
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
