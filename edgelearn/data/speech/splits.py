"""Which espeak-ng voices speak which split of the speech-digits data set.

A voice is (accent, variant). The splits are disjoint by voice, and more:

- new_user: every voice of the held-out accent ``en-gb-x-gbcwmd`` (West Midlands) plus the two
  whisper variants in every accent. Nobody in train or test whispers or has that accent, so a
  network trained on train loses accuracy here: the gap on-device adaptation must close.
- test: the remaining accents with variants never used in train (unseen speakers).
- train: the remaining accents with the remaining variants.

``en-us-nyc`` sounds like ``en-us`` for 7 of 10 digits, so it is never the held-out accent:
it speaks train and test voices (test voices are unseen variants either way) and, whispering,
new_user voices (``en-us+whisper`` is new_user too, so nothing leaks).

Variants excluded everywhere (probed with espeak-ng 1.51): ``fast`` (same audio as no
variant), ``Mr`` (its file name has a space and falls back to the default), ``caleb`` and
``klatt6`` (byte-identical to ``klatt``), ``adam``, ``RicishayMax3``, ``steph3`` (near copies).
MBROLA voices are listed by espeak-ng but unusable (no mbrola binary) and never used.
"""

from __future__ import annotations

import numpy as np

from edgelearn.errors import DataError

SPLITS = ("train", "test", "new_user")

ACCENTS = ("en-gb", "en-us", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
           "en-us-nyc")
NEW_USER_ACCENT = "en-gb-x-gbcwmd"
WHISPER_VARIANTS = ("whisper", "whisperf")
EXCLUDED_VARIANTS = ("fast", "Mr", "caleb", "klatt6", "adam", "RicishayMax3", "steph3")
# "" means the accent's own voice (no +variant)
VARIANTS = (
    "", "Alex", "Alicia", "Andrea", "Andy", "Annie", "antonio", "aunty", "belinda", "benjamin",
    "boris", "david", "Demonic", "Denis", "Diogo", "ed", "edward", "edward2", "Gene", "Gene2",
    "gustave", "announcer", "Henrique", "Hugo", "iven", "iven2", "iven3", "iven4", "Jacky",
    "john", "kaukovalta", "Lee", "linda", "marcelo", "Marco", "Mario", "max", "Michael",
    "michel", "miguel", "Mike", "Nguyen", "pablo", "paul", "pedro", "quincy", "RicishayMax",
    "RicishayMax2", "rob", "robert", "robosoft", "robosoft2", "robosoft3", "robosoft4",
    "robosoft5", "robosoft6", "robosoft7", "robosoft8", "steph", "steph2", "Storm", "Tweaky",
    "UniRobot", "zac", "anika", "anikaRobot", "AnxiousAndy", "f2", "f3", "f4", "f5",
    "grandpa", "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "m2", "m3", "m4", "m5", "m6",
    "m7", "norbert", "sandro", "shelby", "travis", "victor", "m8", "f1", "croak", "m1",
    "grandma",
)


def voice_name(accent: str, variant: str) -> str:
    """The espeak-ng -v argument of a voice, e.g. 'en-gb+m3' or 'en-us'."""
    return f"{accent}+{variant}" if variant else accent


def split_voices(seed: int = 0, test_fraction: float = 0.2) -> dict[str, list[tuple[str, str]]]:
    """The (accent, variant) voices of each split; deterministic given ``seed``.

    A ``test_fraction`` of the (non-whisper) variants is drawn for test; train gets the rest.
    """
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng([seed, 0x5B1])
    order = rng.permutation(len(VARIANTS))
    n_test = max(1, int(round(test_fraction * len(VARIANTS))))
    test_vars = sorted(VARIANTS[i] for i in order[:n_test])
    train_vars = sorted(VARIANTS[i] for i in order[n_test:])
    out = {
        "train": [(a, v) for a in ACCENTS for v in train_vars],
        "test": [(a, v) for a in ACCENTS for v in test_vars],
        "new_user": ([(NEW_USER_ACCENT, v) for v in sorted(VARIANTS)]
                     + [(a, v) for a in ACCENTS + (NEW_USER_ACCENT,) for v in WHISPER_VARIANTS]),
    }
    return out
