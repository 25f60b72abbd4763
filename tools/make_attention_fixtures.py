"""The transformer fixtures of tests/errors.rs and tests/export.rs (tests/fixtures/attention/).

A tiny ViT (tests/fixtures/attention/tiny_vit.py) traced under ``torch.no_grad()``, as a plain
``torch.jit.trace`` in an inference script does: its attention then records PyTorch's
inference fast path (``aten::_transformer_encoder_layer_fwd`` / ``_native_multi_head_attention``),
which has no derivative, so every gradient method must fail with a sentence that names it
(``vit_nograd.pt``). Also its weights (``tiny_vit_weights.pt``, a state_dict) and one input
(``x.npy``), and Captum 0.9's saliency of target 0 on the module (``saliency_target0.npy``), which a
correct re-export must reproduce. Run: ``. tools/env.sh && python tools/make_attention_fixtures.py``.
"""

import sys
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "attention"
sys.path.insert(0, str(OUT))
import tiny_vit  # noqa: E402


def main():
    model = tiny_vit.make_model()
    x = torch.rand((1, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    np.save(OUT / "x.npy", x.numpy())
    torch.save(model.state_dict(), OUT / "tiny_vit_weights.pt")
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
    traced.save(str(OUT / "vit_nograd.pt"))
    from captum.attr import Saliency
    saliency = Saliency(model).attribute(x.clone(), target=0, abs=False)
    np.save(OUT / "saliency_target0.npy", saliency.detach().numpy())
    nodes = {n.kind() for n in traced.inlined_graph.nodes()}
    fast = sorted(k for k in nodes if "native_multi_head" in k or "transformer_encoder" in k)
    print("fast-path ops in vit_nograd.pt:", fast)
    assert fast, "the no-grad trace should record the attention fast path"


if __name__ == "__main__":
    main()
