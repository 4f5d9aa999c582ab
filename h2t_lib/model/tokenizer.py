"""Hand-level tokenization (paper Sec. 3.2, Eq. 6) and its keypoint-level counterpart (Table 6).

    E_i^right = MLP_i^right(f_i),  E_i^left = MLP_i^left(f_i)   in R^{c_e}        (6)

:class:`HandTokenizer` gives 2 tokens (B, 2, c_e), right hand first (the joint order of
``h2t_lib.skeleton``); :class:`JointTokenizer` gives one token per joint (B, 42, c_e), each
from its own MLP, as keypoint-level transformers do. Both are a :class:`TokenMLP`: T
independent shallow MLPs evaluated at once (no Python loop over tokens).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from h2t_lib.skeleton import NUM_JOINTS


class GroupedLinear(nn.Module):
    """G independent ``nn.Linear(in_dim, out_dim)``: (B, T, in) -> (B, T, out), T a multiple of G.

    Group g applies to the T / G consecutive tokens g*T/G .. (g+1)*T/G - 1 (T = G: one Linear per
    token; G = 2 with 42 joint tokens: one Linear per hand). Initialised like ``nn.Linear``
    (uniform in +-1/sqrt(in_dim)), so G = T = 2 is exactly two Linears.
    """

    def __init__(self, groups: int, in_dim: int, out_dim: int):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(groups, in_dim, out_dim))  # (G, in, out)
        self.bias = nn.Parameter(torch.empty(groups, out_dim))  # (G, out)
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, n = x.shape
        G = self.groups
        if T % G:
            raise ValueError(f"GroupedLinear with {G} groups got {T} tokens (not a multiple)")
        xg = x.reshape(B, G, T // G, n).transpose(0, 1).reshape(G, B * (T // G), n)  # (G, B T/G, in)
        y = torch.baddbmm(self.bias[:, None, :], xg, self.weight)  # (G, B T/G, out): one batched matmul
        return y.reshape(G, B, T // G, -1).transpose(0, 1).reshape(B, T, -1)  # (B, T, out)


class TokenMLP(nn.Module):
    """G separate two-layer MLPs ``Linear -> GELU -> Linear`` over T tokens (G = T: one per token).

    ``shared_input=True``: every token reads the same vector x (B, in) -> (B, T, out) (then G = T);
    the first layers of the T MLPs are stored as one ``nn.Linear(in, T * hidden)`` (identical
    maths, one matmul). ``shared_input=False``: token t reads its own x[:, t] (B, T, in) -> (B, T, out),
    MLP g serving tokens g*T/G .. (g+1)*T/G - 1.
    """

    def __init__(self, num_tokens: int, in_dim: int, hidden: int, out_dim: int, shared_input: bool,
                 groups: Optional[int] = None):
        super().__init__()
        groups = num_tokens if groups is None else groups
        if shared_input and groups != num_tokens:
            raise ValueError("a TokenMLP with a shared input needs one MLP per token (groups == num_tokens)")
        self.num_tokens, self.hidden, self.shared_input = num_tokens, hidden, shared_input
        self.fc1 = nn.Linear(in_dim, num_tokens * hidden) if shared_input else GroupedLinear(groups, in_dim, hidden)
        self.act = nn.GELU()
        self.fc2 = GroupedLinear(groups, hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shared_input:
            h = self.fc1(x).view(x.shape[0], self.num_tokens, self.hidden)  # (B, T, hidden)
        else:
            h = self.fc1(x)  # (B, T, hidden)
        return self.fc2(self.act(h))  # (B, T, out)


class HandTokenizer(nn.Module):
    """Eq. 6: two shallow MLPs, f_i (B, c_i*) -> E_i (B, 2, c_e); token 0 = right hand, 1 = left hand.

    Used in notebook 03.
    """

    num_tokens = 2

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.mlp = TokenMLP(self.num_tokens, in_dim, dim, dim, shared_input=True)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.mlp(f)  # (B, 2, c_e)


class JointTokenizer(nn.Module):
    """Keypoint-level tokens (Table 6): 42 shallow MLPs, f_i (B, c_i*) -> E_i (B, 42, c_e), joint order.

    Used in notebook 03.
    """

    num_tokens = NUM_JOINTS

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.mlp = TokenMLP(self.num_tokens, in_dim, dim, dim, shared_input=True)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.mlp(f)  # (B, 42, c_e)


def build_tokenizer(kind: str, in_dim: int, dim: int) -> nn.Module:
    """``kind`` = cfg.tokens: "hand" -> :class:`HandTokenizer`, "joint" -> :class:`JointTokenizer`."""
    if kind == "hand":
        return HandTokenizer(in_dim, dim)
    if kind == "joint":
        return JointTokenizer(in_dim, dim)
    raise ValueError(f"tokens={kind!r}; use 'hand' or 'joint'")
