"""The link under damage: byte errors, device resets mid-upload, version mismatch, dead lines."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from edgelearn.errors import LinkError
from edgelearn.kernels.image import to_image
from edgelearn.link.client import Client, DeviceErrorReply
from edgelearn.link.faults import FaultConfig, FaultyTransport, corrupt
from edgelearn.link.framing import crc32
from edgelearn.link.transport import loop_pair, open_transport
from tests._inprocess_board import InProcessBoard, test_image, test_qnetwork
from tests._c_device import BOARD_IMPLS, make_board
from tests._hang import HANG_SECONDS


def test_corrupt_is_reproducible_and_hits_the_rate():
    data = bytes(200_000)
    a, na = corrupt(data, 1e-3, ("flip",), np.random.default_rng(5))
    b, nb = corrupt(data, 1e-3, ("flip",), np.random.default_rng(5))
    assert a == b and na == nb and 140 < na < 260 and len(a) == len(data)
    d, nd = corrupt(data, 1e-2, ("drop",), np.random.default_rng(1))
    assert len(d) == len(data) - nd
    with pytest.raises(LinkError, match="fault kinds"):
        FaultConfig(rate=0.1, kinds=("melt",))


def test_one_mib_upload_at_byte_error_rate_1e_3_over_pty():
    img = test_image(n_in=1024, n_hidden=1024, n_out=10, seed=11)   # 1.02 MiB device image
    assert len(img) >= 1024 * 1024
    t = open_transport("faulty:sim?rate=1e-3&seed=7&profile=linux&flash=4MiB")
    with Client(t, timeout=0.1, retries=40) as c:
        res = c.upload(img, chunk=256, verify="crc")
        assert t.faults_tx > 500 and c.stats.retransmissions > 0
        assert res.crc == crc32(img)
        info = c.hello()
        assert (info.active_len, info.active_crc) == (len(img), crc32(img))
        head = c.read_image(res.slot, 4096)
        assert head == img[:4096]


def _upload_interrupted(client, img, reset_at_written):
    with pytest.raises(LinkError) as exc:
        client.upload(img, chunk=512, verify="none")
    return str(exc.value)


@pytest.mark.parametrize("impl", BOARD_IMPLS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reset_at_random_point_of_upload_keeps_previous_model(seed, impl):
    rng = np.random.default_rng(seed)
    old, new = test_image(seed=20), test_image(n_in=300, n_hidden=64, seed=21)
    with make_board(impl, ram=256 * 1024, flash=512 * 1024) as board:
        Client(board.host).upload(old)        # (closing that client would close the pipe)
        at = int(rng.integers(1, len(new)))
        ft = FaultyTransport(board.host, FaultConfig(reset_at=at), on_reset=board.reset)
        c = Client(ft, timeout=0.05)     # the default 10 retries: a loaded machine may stall
        msg = _upload_interrupted(c, new, at)
        assert "NO_SESSION" in msg or "no reply" in msg
        info = c.hello()
        assert info.active_crc == crc32(old) and info.active_len == len(old)
        assert c.read_image(info.active_slot, len(old)) == old
        x = (rng.random((10, 40)) < 0.3)
        assert c.infer(x, reset=True).shape == (10, 10)     # the old model still runs


def test_power_cut_mid_upload_then_restart_keeps_last_commit(tmp_path):
    flash = tmp_path / "board.flash"
    url = f"sim?flash_file={flash}&ram=256KiB&flash=512KiB"
    old, new = test_image(seed=30), test_image(n_in=400, n_hidden=64, seed=31)
    with Client(url) as c:
        c.upload(old)
    t = open_transport(url)
    ft = FaultyTransport(t, FaultConfig(reset_at=len(new) // 2),
                         on_reset=lambda: os.kill(t.proc.pid, signal.SIGKILL))
    c = Client(ft, timeout=0.05, retries=2)
    with pytest.raises(LinkError):
        c.upload(new, verify="none")
    c.close()
    with Client(url) as c2:                       # a new process on the same flash file
        assert c2.info.active_crc == crc32(old)
        assert c2.read_image(c2.info.active_slot, len(old)) == old


def test_sigusr1_reset_through_faulty_sim_url():
    old = test_image(seed=40)
    t = open_transport("faulty:sim?reset_at=3000&ram=256KiB&flash=512KiB")
    with Client(t, timeout=0.05) as c:
        c.upload(old)                 # 2 KiB: finishes before the reset point
        with pytest.raises(LinkError):
            c.upload(test_image(n_in=200, seed=41), verify="none")
        assert c.hello().active_crc == crc32(old)


def test_wrong_protocol_version_fails_clearly_on_both_sides():
    proc = subprocess.Popen([sys.executable, "-m", "firmware_sim", "--port",
                             "socket-server://127.0.0.1:0", "--protocol-version", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        with pytest.raises(LinkError, match="protocol version mismatch: host speaks version 2, "
                                            "device speaks version 3"):
            Client(url)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=HANG_SECONDS)
    assert "protocol version mismatch: host speaks version 2, this device speaks version 3" \
        in err
    assert err.count("protocol version mismatch") == 1     # one line per burst
    logs = []
    with InProcessBoard("socketpair", ram=64 * 1024, flash=256 * 1024, log=logs.append) as b:
        with pytest.raises(LinkError, match="host speaks version 1, device speaks version 2"):
            Client(b.host, protocol_version=1)      # a version-1 host is refused
    assert any("host speaks version 1, this device speaks version 2" in line for line in logs)


def test_timeouts_name_the_message_and_loopback_is_detected():
    host, _dead = loop_pair()                   # nobody serves the other end
    with pytest.raises(LinkError, match=r"no reply to HELLO \(seq 0\) after 2 retries"):
        Client(host, timeout=0.02, retries=2)
    with pytest.raises(LinkError, match="loop-back, not a device"):
        Client("loop://", timeout=0.02, retries=1)


@pytest.mark.parametrize("impl", BOARD_IMPLS)
def test_garbage_on_the_line_and_device_reboot_are_survived(impl):
    qnet = test_qnetwork(seed=50)
    with make_board(impl, ram=256 * 1024, flash=512 * 1024) as board:
        with Client(board.host, timeout=0.05) as c:
            c.upload(to_image(qnet))
            board.host.write(bytes(np.random.default_rng(0).integers(0, 256, 5000,
                                                                      dtype=np.uint8)))
            assert c.telemetry().frames_bad > 0
            board.reset()
            with pytest.raises(DeviceErrorReply, match="NO_SESSION"):
                for _ in range(50):
                    c.telemetry()
            c.hello()
            assert c.telemetry().active_slot == 0


def test_throttled_line_upload_reaches_90_percent_of_baud():
    """Pipelining keeps a paced line busy. The rate is wall time: on a loaded machine a client
    or simulator that is not scheduled leaves the line idle, so the best of up to three uploads
    counts (one upload at the rate shows the protocol can keep the line busy)."""
    img = test_image(n_in=200, n_hidden=60, seed=60)       # ~12 KiB
    rates = []
    with Client("sim?baud=115200&ram=256KiB&flash=512KiB") as c:
        assert c.info.baud == 115200
        while len(rates) < 3 and max(rates, default=0) < 0.9 * 115200 / 10:
            res = c.upload(img, verify="none")
            rates.append(res.length / res.seconds)
    assert max(rates) >= 0.9 * 115200 / 10, rates


def _spawn_pty_sim(*args):
    proc = subprocess.Popen([sys.executable, "-m", "firmware_sim", "--pty", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    path = proc.stdout.readline().strip()
    assert path.startswith("/dev/"), path
    return proc, path


def test_pty_client_close_is_eio_and_the_next_client_is_served():
    proc, path = _spawn_pty_sim("--ram", "64KiB", "--flash", "256KiB")
    try:
        with Client(path) as c:
            c.upload(test_image(seed=80))
        with Client(path) as c:                 # a second client on the same pty
            assert c.info.active_crc == crc32(test_image(seed=80))
        assert proc.poll() is None              # still serving
    finally:
        proc.terminate()
        proc.wait(HANG_SECONDS)
        proc.stdout.close()


def test_pty_exit_on_close():
    proc, path = _spawn_pty_sim("--exit-on-close")
    with Client(path) as c:
        c.ping(b"x")
    assert proc.wait(HANG_SECONDS) == 0
    proc.stdout.close()


class _DropNth:
    """Transport wrapper that silently loses the n-th frame written after arming."""

    def __init__(self, inner, n):
        self.inner, self.n, self.count, self.armed, self.url = inner, n, 0, False, "drop"

    def write(self, data):
        if self.armed:
            self.count += 1
            if self.count == self.n:
                return
        self.inner.write(data)

    def read(self, timeout):
        return self.inner.read(timeout)

    def close(self):
        self.inner.close()


class _BlackHole:
    """Transport wrapper that, once armed, loses every frame written and records its sequence
    number (byte 2 of the decoded body)."""

    def __init__(self, inner):
        from edgelearn.link.framing import StreamDecoder
        self.inner, self.armed, self.url, self.seqs = inner, False, "black-hole", []
        self._decoder = StreamDecoder()

    def write(self, data):
        if not self.armed:
            self.inner.write(data)
            return
        self.seqs += [fr.seq for fr in self._decoder.feed(bytes(data))]

    def read(self, timeout):
        return self.inner.read(timeout)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("impl", BOARD_IMPLS)
def test_a_timeout_resends_the_oldest_request_and_a_probe_not_the_window(impl):
    """Resending every unanswered request at each timeout floods a line slower than the RTO
    assumes (the headline deploy on QEMU gave up in 4 of 5 runs on a machine whose emulated
    UART carried about 10 KB/s). A timeout resends the oldest and the newest (a probe)."""
    from edgelearn.link import messages as m
    with make_board(impl, ram=64 * 1024, flash=256 * 1024) as board:
        t = _BlackHole(board.host)
        c = Client(t, timeout=0.02, min_timeout=0.02, retries=2)
        assert c.window >= 5
        t.armed = True
        with pytest.raises(LinkError, match="no reply to TELEMETRY"):
            list(c.pipeline([m.Telemetry()] * 5))
        first = t.seqs[:5]
        assert t.seqs[5:] == [first[0], first[-1]] * 2      # two timeouts, then it gives up
        assert c.stats.timeouts == 3 and c.stats.retransmissions == 4


@pytest.mark.parametrize("impl", BOARD_IMPLS)
def test_requests_left_in_flight_by_an_error_still_complete_in_order(impl):
    from edgelearn.link import messages as m
    with make_board(impl, ram=64 * 1024, flash=256 * 1024) as board:
        t = _DropNth(board.host, 5)
        # timers far longer than any scheduling delay: a timeout can only mean that the NAK
        # did not bring the lost request back
        c = Client(t, timeout=10.0, min_timeout=10.0)
        t.armed = True
        with pytest.raises(DeviceErrorReply, match="BAD_STATE on UPLOAD_DATA"):
            list(c.pipeline([m.UploadData(b"x")] * 5))   # no UPLOAD_BEGIN: all fail; #5 lost
        tel = c.telemetry()                              # the device still waits for #5
        assert tel.naks >= 1 and c.stats.timeouts == 0


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(rate=st.sampled_from([0.0, 1e-3, 3e-3]), seed=st.integers(0, 2**16),
       window=st.integers(1, 8), steps=st.integers(1, 9), impl=st.sampled_from(BOARD_IMPLS))
@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_exactly_once_in_order_under_random_faults(rate, seed, window, steps, impl):
    """Stateful INFER calls through a damaged line give exactly the host kernel's outputs:
    any request executed twice, skipped or reordered would change the neuron state."""
    from edgelearn.kernels.lif_kernels import qrun
    qnet = test_qnetwork(seed=seed % 7)
    x = np.random.default_rng(seed).random((60, qnet.n_in)) < 0.3
    with make_board(impl, ram=256 * 1024, flash=512 * 1024) as board:
        ft = FaultyTransport(board.host, FaultConfig(rate=rate, seed=seed))
        c = Client(ft, timeout=0.05, retries=60, window=window)
        c.upload(to_image(qnet), chunk=128, verify="readback")
        y = c.infer(x, steps_per_frame=steps, reset=True)
    np.testing.assert_array_equal(y, qrun(qnet, x.astype(np.int64)).output[:, 0, :])
