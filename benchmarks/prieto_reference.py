"""PyTorch re-implementations of the pieces of Prieto et al. 2025 (LucasPrietoAl/grokking-at-the-edge-of-numerical-
stability) that jgrok reproduces, written from reading the source, for the parity tests (tests/test_prieto.py):

- ``MLP``: ``models.MLP`` as ``utils.get_model`` builds it for the modular tasks (Linear layers without biases,
  ReLU between them, torch's default Linear init);
- ``features``: the one-hot(a) ++ one-hot(b) rows of ``datasets.AlgorithmicDataset``;
- ``stablemax_cross_entropy``, ``cross_entropy(precision)``: ``utils.stablemax_cross_entropy`` (float64) and
  ``utils.cross_entropy_float{16,32,64}``;
- ``OrthoGrad``: ``orthograd.OrthoGrad``'s gradient projection in front of a wrapped optimiser.

Not the source's code: the same computations, each written once here.
"""

from __future__ import annotations

import torch


class MLP(torch.nn.Module):
    def __init__(self, n_in: int, hidden: list[int], n_out: int, bias: bool = False):
        super().__init__()
        sizes = [n_in, *hidden, n_out]
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b, bias=bias) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        x = x.flatten(start_dim=1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def features(a, b, p: int, dtype=torch.float32):
    """Rows one_hot(a, p) ++ one_hot(b, p)."""
    eye = torch.eye(p, dtype=dtype)
    return torch.cat([eye[torch.as_tensor(a)], eye[torch.as_tensor(b)]], dim=1)


def to_jgrok_params(model: MLP) -> dict:
    """{jgrok path: numpy array}: hidden/i/kernel = layers[i].weight.T, head/kernel = the last weight.T."""
    out = {}
    n = len(model.layers)
    for i, layer in enumerate(model.layers):
        name = "head" if i == n - 1 else f"hidden/{i}"
        out[f"{name}/kernel"] = layer.weight.detach().T.numpy().copy()
        if layer.bias is not None:
            out[f"{name}/bias"] = layer.bias.detach().numpy().copy()
    return out


def _s(x, eps=1e-30):
    return torch.where(x < 0, 1 / (1 - x + eps), x + 1)


def stablemax_cross_entropy(logits, labels):
    """Mean of -log(s(z_y) / sum_j s(z_j)), computed in float64; returns float64."""
    z = logits.to(torch.float64)
    s = _s(z)
    logp = torch.log(s / s.sum(dim=-1, keepdim=True))
    return -logp.gather(-1, labels.long()[:, None]).mean()


def cross_entropy(logits, labels, precision: int):
    """Mean softmax cross-entropy with the log-softmax taken in float16/32/64 (the source returns the float64 one
    cast to float32, the others in their own dtype)."""
    dtype = {16: torch.float16, 32: torch.float32, 64: torch.float64}[precision]
    logp = torch.log_softmax(logits.to(dtype), dim=-1)
    loss = -logp.gather(-1, labels.long()[:, None]).mean()
    return loss.to(torch.float32) if precision == 64 else loss


class OrthoGrad(torch.optim.Optimizer):
    """Project every parameter's gradient orthogonally to the parameter, rescale it to its old norm, then let the
    wrapped optimiser (built from ``base_cls(params, **kwargs)``) step."""

    def __init__(self, params, base_cls, **kwargs):
        super().__init__(params, {})
        self.base = base_cls(self.param_groups, **kwargs)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                w, g = p.view(-1), p.grad.view(-1)
                g_perp = g - (torch.dot(w, g) / (torch.dot(w, w) + 1e-30)) * w
                p.grad.copy_((g_perp * (g.norm(2) / (g_perp.norm(2) + 1e-30))).view_as(p.grad))
        return self.base.step(closure)
