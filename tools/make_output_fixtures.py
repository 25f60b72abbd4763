"""Models with several named outputs, for tests/export.rs (tests/fixtures/outputs/).

A tiny 2D classifier returning a dict, HuggingFace's style (``{"logits": [B, 3], "features":
[B, 6]}``), traced to TorchScript (``dict_outputs.pt``, ``strict=False``), and the same model
returning a tuple exported to ONNX with named outputs (``named_outputs.onnx``, outputs
``logits`` and ``features``); an input ``x.npy`` and Captum's saliency of each output's column 2
(``saliency_logits2.npy``, ``saliency_features2.npy``). Run:
``. tools/env.sh && python tools/make_output_fixtures.py`` (needs onnx, onnxscript, captum).
"""

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from captum.attr import Saliency

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "outputs"


class TwoHeads(nn.Module):
    def __init__(self, as_dict):
        super().__init__()
        self.as_dict = as_dict
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        features = self.act(self.conv(x)).mean(dim=(2, 3))
        logits = self.fc(features)
        return {"logits": logits, "features": features} if self.as_dict else (logits, features)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(3)
    model = TwoHeads(as_dict=True).eval()
    x = torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    np.save(OUT / "x.npy", x.numpy())
    traced = torch.jit.trace(model, x.clone().requires_grad_(True), strict=False)
    traced.save(str(OUT / "dict_outputs.pt"))
    as_tuple = TwoHeads(as_dict=False).eval()
    as_tuple.load_state_dict(model.state_dict())
    batch = torch.export.Dim("batch", min=1, max=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(as_tuple, (torch.cat([x, x]),), dynamo=True,
                                    input_names=["input"], output_names=["logits", "features"],
                                    dynamic_shapes=({0: batch},), optimize=False)
    program.save(str(OUT / "named_outputs.onnx"), external_data=False)
    for key in ["logits", "features"]:
        head = lambda t, key=key: model(t)[key]  # noqa: E731
        np.save(OUT / f"saliency_{key}2.npy",
                Saliency(head).attribute(x.clone(), target=2, abs=False).detach().numpy())
    print("written to", OUT)


if __name__ == "__main__":
    main()
