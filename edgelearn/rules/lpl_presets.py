"""Named LPL settings for a deployed hidden layer (``--lpl-rule NAME`` on the command line).

All share the deployment's filters and time constants (``lpl_rate.deploy_default``: input and
output filters of 20 steps, running mean and variance over 2000 steps, dithered stochastic
rounding); they differ in which terms of the rule are on:

    lpl              predictive + Hebbian (weight 0.03), eta 1e-7: the paper's terms
                     (``lpl_rate.deploy_default``)
    homeostasis      only the homeostatic term (lam_hom 0.25, eta 3e-7), each neuron's target
                     its mean on the training data
    lpl+homeostasis  the terms of ``lpl`` and of ``homeostasis`` together (eta 3e-7)
    slow+homeostasis the homeostasis of ``homeostasis`` with a strong predictive (slowness)
                     term, pred 100, no Hebbian term (eta 3e-7: the slowness term moves
                     weights at an effective rate eta * pred = 3e-5)

A rule whose homeostatic target is per neuron (``Params.stores_target``) starts from the
rule's statistics on training data (:func:`needs_reference`; edgelearn.rules.lpl_reference,
edgelearn.adapt.reference): a deployment measures them once and uploads them with the weights.
Which preset to use for which shift, with the measured figures: docs/learning-rules.md
section 9.
"""

from __future__ import annotations

import dataclasses

from edgelearn.errors import ParameterError
from edgelearn.rules import lpl_rate

HOMEOSTASIS_ETA = 3e-7
HOMEOSTASIS_WEIGHT = 0.25
SLOWNESS_WEIGHT = 100.0


def _homeostasis(base: lpl_rate.Params, **terms: float) -> lpl_rate.Params:
    """``base`` with the homeostatic term on (per-neuron target) and ``terms`` overriding the
    LPL weights (pred, lam) it keeps otherwise."""
    return dataclasses.replace(base, eta=HOMEOSTASIS_ETA, lam_hom=HOMEOSTASIS_WEIGHT,
                               rate_target=None, **terms)


def preset(name: str) -> lpl_rate.Params:
    """The parameters of preset ``name`` (one of :data:`NAMES`)."""
    base = lpl_rate.deploy_default()
    if name == "lpl":
        return base
    if name == "homeostasis":
        return _homeostasis(base, pred=0.0, lam=0.0)
    if name == "lpl+homeostasis":
        return _homeostasis(base)
    if name == "slow+homeostasis":
        return _homeostasis(base, pred=SLOWNESS_WEIGHT, lam=0.0)
    raise ParameterError(f"unknown LPL preset {name!r}; choose one of {', '.join(NAMES)}")


NAMES = ("lpl", "homeostasis", "lpl+homeostasis", "slow+homeostasis")


def needs_reference(params: lpl_rate.Params) -> bool:
    """Whether a deployment starts the rule from training-data statistics: homeostasis
    towards a per-neuron target (``rate_target=None``)."""
    return params.stores_target
