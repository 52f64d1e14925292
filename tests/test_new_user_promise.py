"""What the README promises a new user, on every target: deploy the bundled speech model, adapt
it on the new-user stream with 10 % labels, and the adapted model is not worse than the frozen
one; wherever a device arena exists the memory plan equals the measured high-water mark.

Targets: the host engine, the simulated board (--target sim), serial boards (firmware_sim on
a pseudo-terminal) with the default link and with a non-default window and payload, the
substrate presets bss2, pcm and ideal, and TFLite (inference only: its run must equal the
host engine's frozen run exactly). Short streams keep the default suite fast; the noisy
substrates, whose hEP relaxations are slow, run in the slow suite.
"""

import json

import pytest

from edgelearn.cli import main

MODEL = "models/speech_digits.onnx"
BOARDS = ["sim", "serial:sim", "serial:sim?window=3&max_payload=256"]

CASES = [("host", 200)] + [(b, 200) for b in BOARDS] + [
    ("tflite", 200),
    ("substrate:ideal", 200),
    pytest.param("substrate:bss2", 300, marks=pytest.mark.slow),
    pytest.param("substrate:pcm", 300, marks=pytest.mark.slow),
]


def deploy(target: str, limit: int, report) -> dict:
    rc = main(["deploy", MODEL, "--target", target, "--budget", "256KiB", "--adapt",
               "new_user", "--labels", "0.1", "--limit", str(limit), "--report", str(report),
               "--quiet"])
    assert rc == 0
    return json.loads((report / "metrics.json").read_text())


@pytest.fixture(scope="module")
def host_run(tmp_path_factory):
    return deploy("host", 200, tmp_path_factory.mktemp("host") / "rep")


@pytest.mark.parametrize("target, limit", CASES)
def test_adapted_is_not_worse_than_frozen(target, limit, tmp_path, host_run):
    m = host_run if target == "host" else deploy(target, limit, tmp_path / "rep")
    run, frozen = m["runs"]["adapted"], m["runs"]["frozen"]
    assert run["samples"] == frozen["samples"] == limit
    assert run["accuracy"] >= frozen["accuracy"], (run["accuracy"], frozen["accuracy"])
    if target == "tflite":
        assert run["labels"] == 0 and run["accuracy"] == frozen["accuracy"]
        return
    assert run["labels"] == round(0.1 * limit)
    assert run["telemetry"]["hep_updates"] > 0
    if target == "host" or target in BOARDS:
        mem = m["memory"]
        assert mem["measured_high_water"] == mem["planned_total"] <= mem["budget"]
    if target in BOARDS:
        # a board runs the host's engine: the same predictions, the same accuracy
        assert run["accuracy"] == host_run["runs"]["adapted"]["accuracy"]
        link = m["plan"]["link"]
        assert link["source"] == "board"
        if "window=3" in target:
            assert (link["window"], link["max_payload"]) == (3, 256)
        else:
            assert (link["window"], link["max_payload"]) == (8, 1024)


def test_stream_segments_name_the_users_shaded_on_accuracy_png():
    from edgelearn.adapt.report import spans
    from edgelearn.adapt.streams import load_stream

    x, y, ds, seg = load_stream("new_user", 64, seed=0, limit=300, segments=True)
    assert len(seg) == 300
    assert set(seg) == {"whisper voices", "unseen accent en-gb-x-gbcwmd"}
    runs = spans(seg)
    assert runs[0][0] == 1 and runs[-1][1] == 301
    assert all(a[1] == b[0] and a[2] != b[2] for a, b in zip(runs, runs[1:]))
