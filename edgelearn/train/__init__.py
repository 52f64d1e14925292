"""Surrogate-gradient BPTT trainer for the network IR (L2, numpy only; torch never needed).

    forward(net, x) -> Trace                         record per-layer inputs, I, U, S [T, B, n]
    backward(net, trace, labels | dL/dout, cfg) -> Gradients   (trace may be measured on a device)
    train(net, train_ds, cfg, val_ds=None, progress=True) -> (net, history)
    evaluate(net, ds, readout=None) -> accuracy;  predict(net, x[N, T, C]) -> logits [N, n_out]
"""

from edgelearn.train.bptt import (Gradients, LayerTrace, Trace, backward, cross_entropy,
                                  forward, loss_value, pseudo_spike, reduce_time, surrogate)
from edgelearn.train.config import READOUTS, TrainConfig
from edgelearn.train.init import decay, init_network
from edgelearn.train.loop import check_dataset, evaluate, net_readout, predict, train
from edgelearn.train.optim import Adam, parameters, with_parameters

__all__ = [
    "Adam", "Gradients", "LayerTrace", "READOUTS", "Trace", "TrainConfig", "backward",
    "check_dataset", "cross_entropy", "decay", "evaluate", "forward", "init_network",
    "loss_value", "net_readout", "parameters", "predict", "pseudo_spike", "reduce_time",
    "surrogate", "train", "with_parameters",
]
