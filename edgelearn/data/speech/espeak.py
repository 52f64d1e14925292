"""Speak a word with the espeak-ng command-line program (Debian package ``espeak-ng``).

Only tools/make_dataset.py needs this; the shipped data set does not. The voice is
``<accent>+<variant>`` (``espeak-ng --voices`` lists accents, ``--voices=variant`` variants);
``speed`` is words per minute (-s), ``pitch`` 0-99 (-p), and ``pitch_range`` one of SSML's
prosody ranges ("x-low" .. "x-high") or None. Output is mono 16-bit PCM WAV at 22050 Hz,
returned as float in [-1, 1].
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np

from edgelearn.errors import DataError


def espeak_available() -> bool:
    """True if the espeak-ng program is on PATH."""
    return shutil.which("espeak-ng") is not None


PITCH_RANGES = ("x-low", "low", "medium", "high", "x-high")


def speak(text: str, accent: str, variant: str | None, speed: int, pitch: int,
          pitch_range: str | None = None, timeout: float = 20.0) -> tuple[np.ndarray, int]:
    """Audio (float64 [n] in [-1, 1]) and sample rate of ``text`` spoken by espeak-ng."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DataError("espeak-ng is not installed (Debian: apt-get install espeak-ng); it is "
                        "only needed to regenerate the speech data set")
    voice = accent if not variant else f"{accent}+{variant}"
    cmd = [exe, "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "--stdout"]
    if pitch_range is not None:
        if pitch_range not in PITCH_RANGES:
            raise DataError(f"pitch_range must be one of {PITCH_RANGES}, got {pitch_range!r}")
        cmd += ["-m", f'<speak><prosody range="{pitch_range}">{text}</prosody></speak>']
    else:
        cmd.append(text)
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"espeak-ng timed out for voice '{voice}' text {text!r}") from None
    if res.returncode != 0 or len(res.stdout) < 44:
        err = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DataError(f"espeak-ng failed for voice '{voice}' text {text!r}: "
                        f"{err[0] if err else 'no audio'}")
    try:
        with wave.open(io.BytesIO(res.stdout)) as wf:
            rate = wf.getframerate()
            width = wf.getsampwidth()
            frames = wf.readframes(wf.getnframes())
    except (wave.Error, EOFError) as exc:
        raise DataError(f"espeak-ng wrote unreadable audio for voice '{voice}': {exc}") from None
    if width != 2:
        raise DataError(f"espeak-ng wrote {8 * width}-bit audio, expected 16-bit")
    # espeak-ng writes a streaming header (n_frames may be 0x7fffffff): use what was read
    pcm = np.frombuffer(frames[: len(frames) // 2 * 2], dtype="<i2")
    return pcm.astype(np.float64) / 32768.0, int(rate)


def trim_silence(audio: np.ndarray, rate: int, threshold_db: float = -45.0,
                 frame_seconds: float = 0.005, margin_seconds: float = 0.01) -> np.ndarray:
    """Cut leading and trailing silence (frames whose RMS is below ``threshold_db`` dBFS).

    espeak-ng pads with silence whose length depends on the punctuation; left in, it would
    reveal the punctuation (and so the intonation) by the word's position.
    """
    frame = max(1, int(round(frame_seconds * rate)))
    n = audio.shape[0] // frame
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(20 * np.log10(rms + 1e-12) > threshold_db)
    if loud.size == 0:
        return audio[:0]
    margin = int(round(margin_seconds * rate))
    start = max(0, loud[0] * frame - margin)
    stop = min(audio.shape[0], (loud[-1] + 1) * frame + margin)
    return audio[start:stop]
