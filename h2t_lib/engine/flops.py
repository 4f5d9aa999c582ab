"""Parameters and FLOPs of a model for the benchmark (:mod:`h2t_lib.engine.bench`): *thop* (``thop.profile``,
as the paper) with rules for attention, the token MLPs and transposed convolutions, and
``torch.utils.flop_counter`` as a cross-check. GFLOPs = 2 x multiply-accumulates (MACs) at batch 1.
"""
from __future__ import annotations

import torch
from torch import nn


def _seq_dims(t, batch_first: bool):
    """(batch, length) of a (B, L, E) / (L, B, E) / unbatched (L, E) tensor."""
    if t.dim() == 2:
        return 1, t.shape[0]
    return (t.shape[0], t.shape[1]) if batch_first else (t.shape[1], t.shape[0])


def _mha_macs(m, q_len: int, k_len: int, batch: int) -> int:
    """MACs of nn.MultiheadAttention: Q/K/V and output projections + Q K^T + attention x V."""
    e = m.embed_dim
    proj = q_len * e * e + k_len * e * m.kdim + k_len * e * m.vdim + q_len * e * e
    return batch * (proj + 2 * q_len * k_len * e)


def _count_mha(m, x, y):
    q = x[0] if len(x) > 0 else (y[0] if isinstance(y, tuple) else y)  # kwargs-only calls: fall back to the output
    b, lq = _seq_dims(q, m.batch_first)
    lk = _seq_dims(x[1], m.batch_first)[1] if len(x) > 1 else lq
    m.total_ops += torch.DoubleTensor([_mha_macs(m, lq, lk, b)])


def _ffn_norm_macs(layer, tokens: int, num_norms: int) -> int:
    e, f = layer.linear1.in_features, layer.linear1.out_features
    return tokens * (2 * e * f) + num_norms * 4 * tokens * e  # two linears + affine LayerNorms (thop's norm rule)


def _count_encoder_layer(m, x, y):
    """nn.TransformerEncoderLayer as a whole (its eval fast path skips its children's hooks)."""
    b, l = _seq_dims(x[0] if x else y, m.self_attn.batch_first)
    m.total_ops += torch.DoubleTensor([_mha_macs(m.self_attn, l, l, b) + _ffn_norm_macs(m, b * l, 2)])


def _count_decoder_layer(m, x, y):
    bf = m.self_attn.batch_first
    b, l = _seq_dims(x[0] if x else y, bf)
    lm = _seq_dims(x[1], bf)[1] if len(x) > 1 else l
    macs = _mha_macs(m.self_attn, l, l, b) + _mha_macs(m.multihead_attn, l, lm, b) + _ffn_norm_macs(m, b * l, 3)
    m.total_ops += torch.DoubleTensor([macs])


def _count_zero(m, x, y):
    """Modules with parameters but no multiply-accumulates (a lookup): params counted, 0 MACs."""


def _count_groupnorm(m, x, y):
    m.total_ops += torch.DoubleTensor([2 * x[0].numel()])


def _count_grouped_linear(m, x, y):
    """Handformer2T's GroupedLinear (T Linears in one bmm): in_dim MACs per output element, like nn.Linear."""
    m.total_ops += torch.DoubleTensor([y.numel() * m.weight.shape[1]])


def _count_conv_transpose(m, x, y):
    """Transposed convolution: every input element meets k*k*out/groups weights. (thop's own rule counts
    k*k*in/groups per *output* element, stride^2 times too many for a stride-2 deconvolution.)"""
    k = 1
    for size in m.kernel_size:
        k *= size
    m.total_ops += torch.DoubleTensor([x[0].numel() * (m.out_channels // m.groups) * k])


def thop_custom_ops() -> dict:
    """The ``custom_ops`` we give thop: attention (thop has no rule for it) and Handformer2T's grouped
    linear layers (the token MLPs, Eq. 6), so neither counts as zero; and transposed convolutions
    (the heatmap baseline's deconvolutions), which thop's own rule over-counts by stride^2."""
    ops = {
        nn.MultiheadAttention: _count_mha,
        nn.TransformerEncoderLayer: _count_encoder_layer,
        nn.TransformerDecoderLayer: _count_decoder_layer,
        nn.Embedding: _count_zero,
        nn.GroupNorm: _count_groupnorm,
        nn.ConvTranspose1d: _count_conv_transpose,
        nn.ConvTranspose2d: _count_conv_transpose,
        nn.ConvTranspose3d: _count_conv_transpose,
    }
    try:
        from h2t_lib.model.tokenizer import GroupedLinear
    except ImportError:  # pragma: no cover - the model package is incomplete
        pass
    else:
        ops[GroupedLinear] = _count_grouped_linear
    return ops


def _thop_gaps(model, layer_info: dict, prefix: str = "") -> dict:
    """Where thop's parameter count falls short of the plain one: {parameter or module path: missing count}."""
    gaps = {}
    for pname, p in model.named_parameters(recurse=False):  # held directly by a container module
        gaps[prefix + pname] = p.numel()
    for name, (_, params, sub) in layer_info.items():
        child = getattr(model, name)
        plain = sum(p.numel() for p in child.parameters())
        if plain == int(params):
            continue
        if sub:  # thop went into the children: find which
            gaps.update(_thop_gaps(child, sub, f"{prefix}{name}."))
        else:  # no rule for this module (or it never ran in the forward)
            gaps[f"{prefix}{name}"] = plain - int(params)
    return gaps


def has_thop() -> bool:
    """thop is optional (a machine with its own torch may lack it): without it the thop columns are n/a."""
    try:
        import thop  # noqa: F401
    except ImportError:
        return False
    return True


#: the table's and the JSON's note when thop is missing
NO_THOP = ("thop is not installed here: params M (thop) and GFLOPs are n/a; GFLOPs (torch) "
           "(torch.utils.flop_counter) is the FLOP count (pip install thop for the thop columns)")


def profile_thop(model, inputs) -> dict:
    """thop params and MACs of one forward (``inputs`` at batch 1), plus what thop missed.
    Raises ImportError without thop (:func:`has_thop`)."""
    import thop

    macs, params, info = thop.profile(model, inputs=inputs, custom_ops=thop_custom_ops(), verbose=False,
                                      ret_layer_info=True)
    for m in model.modules():  # thop leaves its counters on modules it had no rule for
        m._buffers.pop("total_ops", None)
        m._buffers.pop("total_params", None)
    return {"macs": float(macs), "params": int(params), "missed": _thop_gaps(model, info)}


def torch_gflops(model, inputs) -> float:
    """Cross-check of thop: GFLOPs of one forward by ``torch.utils.flop_counter.FlopCounterMode``, which
    counts the matrix products and convolutions at the ATen level (functional ones too: ``bmm``,
    ``matmul``; not ``grid_sample``) and no element-wise ops. Run with autograd on and the "math"
    attention kernel, so attention runs as countable matrix products (the fused CPU kernel is not counted)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(*inputs)
    return counter.get_total_flops() / 1e9
