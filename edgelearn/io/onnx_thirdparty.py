"""Recognise third-party step graphs (placeholder until the pattern matcher lands)."""

from __future__ import annotations


class NotRecognised(Exception):
    """The graph does not map onto edgelearn's neuron model; the message says why."""


def recognise(model, what: str = "model"):
    raise NotRecognised("graph has no edgelearn metadata and third-party recognition is not "
                        "implemented yet")
