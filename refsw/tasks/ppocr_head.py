"""Part 2 of the shipped ``ppocr_det`` split network as a torch module.

The PP-OCRv4 detector after the cut (the neck outputs p2o.Add.277/271/265/259,
strides 4, 8, 16, 32) is small: nearest upsampling of the three coarse maps to
stride 4, concatenation, then the DB head (3x3 conv, batch norm, ReLU, two 2x2
transposed convs with batch norm and ReLU between them, sigmoid). This module
rebuilds it from the weights of the ONNX file in the rapidocr-onnxruntime wheel
(nothing is downloaded), so that a feature codec can be trained through part 2
(distillation on the probability map). onnxruntime stays the reference: a test
checks that both give the same map.
"""
from __future__ import annotations

import functools

import numpy as np

#: cut tensors of ppocr_det, finest first (stride 4, 8, 16, 32)
CUT = ("p2o.Add.277", "p2o.Add.271", "p2o.Add.265", "p2o.Add.259")


@functools.lru_cache(maxsize=1)
def head_weights(path=None) -> dict:
    """{name: np.ndarray} of the part-2 layers, read from the ONNX graph's constants."""
    import onnx
    from onnx import numpy_helper
    from .split import ppocr_model_path
    g = onnx.load(str(path or ppocr_model_path())).graph
    consts = {}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    consts.update({i.name: numpy_helper.to_array(i) for i in g.initializer})
    down, nodes = set(CUT), []
    for n in g.node:
        if any(i in down for i in n.input):
            nodes.append(n)
            down.update(n.output)
    ops = [n.op_type for n in nodes]
    want = ["Resize", "Resize", "Resize", "Concat", "Conv", "BatchNormalization", "Relu", "ConvTranspose", "Add",
            "BatchNormalization", "Relu", "ConvTranspose", "Add", "Sigmoid"]
    if ops != want:
        raise ValueError(f"ppocr_det part 2 has the layers {ops}, expected {want}")
    scales = [tuple(consts[n.input[2]].tolist()) for n in nodes[:3]]
    if scales != [(1, 1, 8, 8), (1, 1, 4, 4), (1, 1, 2, 2)] or list(nodes[3].input) != [
            nodes[0].output[0], nodes[1].output[0], nodes[2].output[0], CUT[0]]:
        raise ValueError("ppocr_det part 2: unexpected upsampling or concatenation")
    w = {"conv": consts[nodes[4].input[1]]}
    for key, n in (("bn0", nodes[5]), ("bn1", nodes[9])):
        w[key] = [consts[i] for i in n.input[1:5]]           # scale, bias, mean, var
        w[key + "_eps"] = next(a.f for a in n.attribute if a.name == "epsilon")
    w["up0"], w["up0_b"] = consts[nodes[7].input[1]], consts[nodes[8].input[1]]
    w["up1"], w["up1_b"] = consts[nodes[11].input[1]], consts[nodes[12].input[1]]
    return w


def build_head():
    """torch.nn.Module: f(p2, p3, p4, p5) -> probability map (1 channel, the input's resolution)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    w = head_weights()

    class PpOcrHead(nn.Module):
        def __init__(self):
            super().__init__()
            def t(a):
                return nn.Parameter(torch.from_numpy(np.ascontiguousarray(a)).float(), requires_grad=False)
            self.conv = t(w["conv"])
            self.up0, self.up0_b = t(w["up0"]), t(w["up0_b"].reshape(-1))
            self.up1, self.up1_b = t(w["up1"]), t(w["up1_b"].reshape(-1))
            for k in ("bn0", "bn1"):
                s, b, m, v = (torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in w[k])
                k_ = s / torch.sqrt(v + w[k + "_eps"])
                self.register_buffer(k + "_mul", k_.view(1, -1, 1, 1))
                self.register_buffer(k + "_add", (b - m * k_).view(1, -1, 1, 1))

        def forward(self, p2, p3, p4, p5):
            x = torch.cat([F.interpolate(p5, scale_factor=8, mode="nearest"),
                           F.interpolate(p4, scale_factor=4, mode="nearest"),
                           F.interpolate(p3, scale_factor=2, mode="nearest"), p2], dim=1)
            x = F.relu(F.conv2d(x, self.conv, padding=1) * self.bn0_mul + self.bn0_add)
            x = F.conv_transpose2d(x, self.up0, self.up0_b, stride=2)
            x = F.relu(x * self.bn1_mul + self.bn1_add)
            return torch.sigmoid(F.conv_transpose2d(x, self.up1, self.up1_b, stride=2))

    return PpOcrHead().eval()
