"""Post-training quantization of float SNNs to the integer format of docs/fixed-point.md (L2).

    qnet, report = quantize_network(net, calib_x)
    report = evaluate(net, qnet, x_test, y_test, report=report)
"""

from edgelearn.quant.calibrate import quantize_network, QuantReport, LayerReport
from edgelearn.quant.report import evaluate, predict, format_report

__all__ = ["quantize_network", "QuantReport", "LayerReport", "evaluate", "predict",
           "format_report"]
