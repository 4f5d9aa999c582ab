"""Training losses of Handformer2T (paper Sec. 3.5, Eq. 18-21).

* **RLE** -- residual log-likelihood estimation (Li et al., ICCV 2021; Eq. 18-19). Each stage
  i predicts a mean ``p`` and a scale ``u`` (= sigma) per joint. The density of the ground
  truth is modelled as ``x = u * x_bar + p`` where ``x_bar`` follows a learned distribution
  built from a small normalising flow (:class:`RealNVP`) plus a fixed Laplace "residual".
  The loss is the negative log-likelihood of the ground truth under that density. One flow
  per stage (Eq. 19). The flows are trained with the network and never run at inference.
* **MMD** -- maximum mean discrepancy (Eq. 20) between the batch's coarse predictions
  ``p^(1)`` and its ground truths, a distribution-level term that speeds up the coarse stage.
* **Root** -- an L1 term on the predicted wrist positions. Not in the paper: our model has a
  small root head so ``predict`` can run without a ground-truth root depth. By default
  (``root_space="uvz"``) it is measured in the head's own parametrisation: the wrist's crop
  pixel (divided by the crop size S) and its log-depth, so that the 2D position KGFF needs is
  not drowned by the (ill-posed) absolute depth; ``root_space="cam"`` is the L1 on camera mm.

Total (Eq. 21 plus the root term)::

    total = sum_i RLE_i + mmd_weight * MMD(p^(1), p^g) + root_weight * root [+ heatmap_weight * heatmap]

The last, bracketed term is ours and training-only (:class:`KeypointHeatmapTerm`, off by default and
in the ``paper`` preset): a soft-argmax 2D term on the backbone maps. Our terms live in
:mod:`h2t_lib.losses.ours` (the wrist term, the heatmap terms) and are importable from here.

Units: the network's keypoints are root-relative millimetres; every loss first divides
coordinates by ``scale_mm`` (``ModelConfig.norm_mm``), so ``u`` / sigma lives in these
normalised units (sigma = 0.05 with norm_mm = 200 means about 10 mm).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from h2t_lib.losses.ours import (ROOT_SPACES, ROOTS, JointHeatmapTerm, KeypointHeatmapTerm,  # noqa: F401 (re-exported)
                                 _valid_mask, gaussian_heatmaps, hands_absent, heatmap_mse, root_loss)
from h2t_lib.skeleton import NUM_JOINTS, root_relative

#: amplitude of the standard normal density at 0, 1/sqrt(2 pi): RLE's Laplace residual uses it
LAPLACE_AMP = 1.0 / math.sqrt(2.0 * math.pi)
#: smallest sigma the losses accept (RLE adds 1e-9; we clamp to the same floor)
SIGMA_EPS = 1e-9
#: default Gaussian-kernel bandwidths of the MMD term (per-coordinate RMS distance, normalised units)
DEFAULT_MMD_BANDWIDTHS = (0.05, 0.1, 0.2, 0.4, 0.8)


# -----------------------------------------------------------------------------
# RealNVP: the flow of RLE
# -----------------------------------------------------------------------------
def _mlp(dim: int, hidden: int, tanh: bool) -> nn.Sequential:
    """Linear-LeakyReLU-Linear-LeakyReLU-Linear(-Tanh): one scale (tanh) or translation net."""
    layers = [nn.Linear(dim, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(), nn.Linear(hidden, dim)]
    if tanh:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class RealNVP(nn.Module):
    """A RealNVP normalising flow on R^dim (Dinh et al. 2017) with a standard normal prior.

    ``forward`` maps a standard normal sample ``z`` to the residual space ``x_bar``
    (the paper's ``x_bar = phi(z_bar)``); ``inverse`` maps back. Each of the ``layers``
    affine coupling layers keeps the coordinates where its binary mask ``m`` is 1 and
    transforms the others with a scale ``s`` and a translation ``t`` computed from the
    kept ones (masks alternate, e.g. [0,0,1], [1,1,0], ... in 3D)::

        forward:  y = m*x + (1-m) * (x * exp(s(m*x)) + t(m*x))
        inverse:  x = m*y + (1-m) * (y - t(m*y)) * exp(-s(m*y))

    so each layer's Jacobian is triangular with log|det| = sum((1-m) * s) (forward).
    ``log_prob(x) = log N(inverse(x); 0, I) + log|det d inverse / dx|``.

    The nets' weights start tiny (xavier, gain 0.01) and the last layers' biases at zero,
    so the flow starts as (almost exactly) the identity: ``log_prob`` is then the standard
    normal log-density.

    Used in notebook 06.
    """

    def __init__(self, dim: int = 3, hidden: int = 64, layers: int = 6):
        super().__init__()
        if dim < 2:
            raise ValueError(f"RealNVP needs dim >= 2 (a coupling layer splits the coordinates), got dim={dim}")
        if hidden < 1 or layers < 1:
            raise ValueError(f"RealNVP needs hidden >= 1 and layers >= 1, got hidden={hidden}, layers={layers}")
        self.dim = dim
        first = (torch.arange(dim) >= dim - dim // 2).float()  # dim=3: [0, 0, 1]
        masks = torch.stack([first if k % 2 == 0 else 1.0 - first for k in range(layers)])  # (layers, dim)
        self.register_buffer("masks", masks)
        self.scale_nets = nn.ModuleList(_mlp(dim, hidden, tanh=True) for _ in range(layers))
        self.shift_nets = nn.ModuleList(_mlp(dim, hidden, tanh=False) for _ in range(layers))
        for net in [*self.scale_nets, *self.shift_nets]:
            for m in net:
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight, gain=0.01)
            nn.init.zeros_(net[4].bias)  # the output layer: s = t = 0 up to ~1e-3 at init

    def _coupling(self, k: int, kept: torch.Tensor):
        """Scale and shift of layer k from the kept coordinates; both zero on the kept ones."""
        free = 1.0 - self.masks[k]
        return self.scale_nets[k](kept) * free, self.shift_nets[k](kept) * free

    def _check(self, x: torch.Tensor, name: str) -> None:
        if not torch.is_tensor(x) or x.shape[-1:] != (self.dim,):
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"RealNVP({self.dim}) expects a tensor {name} of shape (..., {self.dim}), got {shape}")

    def forward_with_log_det(self, z: torch.Tensor):
        """z (..., dim) -> (x (..., dim), log|det dx/dz| (...))."""
        self._check(z, "z")
        x, log_det = z, z.new_zeros(z.shape[:-1])
        for k in range(len(self.masks)):
            m = self.masks[k]
            s, t = self._coupling(k, x * m)
            x = x * m + (1.0 - m) * (x * torch.exp(s) + t)
            log_det = log_det + s.sum(-1)
        return x, log_det

    def inverse_with_log_det(self, x: torch.Tensor):
        """x (..., dim) -> (z (..., dim), log|det dz/dx| (...)): the layers undone in reverse order."""
        self._check(x, "x")
        z, log_det = x, x.new_zeros(x.shape[:-1])
        for k in reversed(range(len(self.masks))):
            m = self.masks[k]
            s, t = self._coupling(k, z * m)
            z = z * m + (1.0 - m) * (z - t) * torch.exp(-s)
            log_det = log_det - s.sum(-1)
        return z, log_det

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Prior sample z (..., dim) -> residual x_bar (..., dim)."""
        return self.forward_with_log_det(z)[0]

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Residual x_bar (..., dim) -> prior space z (..., dim)."""
        return self.inverse_with_log_det(x)[0]

    def log_det(self, x: torch.Tensor) -> torch.Tensor:
        """log|det d inverse(x) / dx|, shape (...)."""
        return self.inverse_with_log_det(x)[1]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log G_phi(x) (change of variables), x (..., dim) -> (...)."""
        z, log_det = self.inverse_with_log_det(x)
        log_prior = -0.5 * (z * z).sum(-1) - 0.5 * self.dim * math.log(2.0 * math.pi)  # log N(z; 0, I)
        return log_prior + log_det

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples (n, dim) of the learned residual distribution (for plots)."""
        device = self.masks.device if generator is None else generator.device
        z = torch.randn(n, self.dim, generator=generator, device=device)  # (n, dim) ~ N(0, I)
        return self(z.to(self.masks.device))


# -----------------------------------------------------------------------------
# RLE loss (Eq. 18-19)
# -----------------------------------------------------------------------------

def rle_loss(mu, sigma, gt, valid, flow: RealNVP, scale_mm: float) -> torch.Tensor:
    """Residual log-likelihood loss of one stage (Eq. 18), summed over valid joints / batch size.

    Args:
        mu: (B, J, 3) predicted root-relative joints, mm.
        sigma: (B, J, 1) one positive scale per joint, as the paper's ``u`` (broadcast to the
            three coordinates), or (B, J, 3) one per coordinate (as RLE's own code); in
            normalised units (coordinates divided by ``scale_mm``).
        gt: (B, J, 3) ground-truth root-relative joints, mm.
        valid: (B, J) 0/1: invalid joints contribute nothing and receive zero gradient.
        flow: the stage's :class:`RealNVP` (dim 3).
        scale_mm: coordinate scale; ``mu`` and ``gt`` are divided by it first.

    With ``x_bar = (mu - gt) / sigma`` per joint, the loss is the sum of two negative
    log-likelihoods of the ground truth, each in coordinate space and each with its
    change-of-variables term ``log sigma`` (this is how RLE's reference implementation
    realises Eq. 18, ``-log L - log G + log u``)::

        flow term:      sum_c log(sigma_c) - log G_phi(x_bar)                 (G_phi = the flow, 3-D)
        Laplace term:   sum_c log(sigma_c / a) + |gt_c - mu_c| / (sqrt(2) sigma_c),   a = 1/sqrt(2 pi)

    The Laplace residual has scale sqrt(2)*sigma, so for Laplace-distributed errors of scale
    ``b`` the optimum is sigma = b / sqrt(2) (the flow term, once the flow fits the
    residuals, no longer depends on sigma). RLE's code subtracts the flow's 3-D log-density
    once per coordinate; we subtract it once per joint, as the likelihood of a 3-vector asks.
    No detach anywhere: as in RLE, the flow sees ``x_bar`` computed from ``mu`` and ``sigma``,
    so the flow term trains the flow *and* pulls ``mu``, ``sigma`` towards likely residuals.

    Used in notebook 06.
    """
    if not (torch.is_tensor(mu) and torch.is_tensor(sigma) and torch.is_tensor(gt)):
        raise ValueError("rle_loss: mu, sigma and gt must be torch tensors")
    if mu.ndim != 3 or mu.shape[-1] != flow.dim:
        raise ValueError(f"rle_loss: mu must have shape (B, J, {flow.dim}), got {tuple(mu.shape)}")
    if gt.shape != mu.shape:
        raise ValueError(f"rle_loss: gt must have the shape of mu {tuple(mu.shape)}, got {tuple(gt.shape)}")
    if sigma.shape not in (mu.shape[:2] + (1,), mu.shape):
        raise ValueError(
            f"rle_loss: sigma must have shape {tuple(mu.shape[:2]) + (1,)} (one per joint) or {tuple(mu.shape)} "
            f"(one per coordinate), got {tuple(sigma.shape)}"
        )
    if not scale_mm > 0:
        raise ValueError(f"rle_loss: scale_mm must be positive, got {scale_mm}")
    B = mu.shape[0]
    v = _valid_mask(valid, mu.shape[:2]).to(mu.device)[..., None]  # (B, J, 1)
    # Masked joints get harmless stand-ins (residual 0, sigma 1): no NaN/inf can leak from
    # them and torch.where sends them exactly zero gradient.
    dt = flow.masks.dtype  # compute in the flow's precision (float32 even under autocast)
    mu_n = torch.where(v, mu.to(dt) / scale_mm, 0.0)  # (B, J, 3)
    gt_n = torch.where(v, gt.to(dt) / scale_mm, 0.0)  # (B, J, 3)
    sig = torch.where(v, sigma.to(dt), 1.0).clamp_min(SIGMA_EPS).expand_as(mu_n)  # (B, J, 3)

    bar = (mu_n - gt_n) / sig  # (B, J, 3) normalised residual x_bar
    with torch.autocast(device_type=bar.device.type, enabled=False):
        log_phi = flow.log_prob(bar.reshape(-1, flow.dim)).reshape(bar.shape[:2])  # (B, J)
    log_sig = torch.log(sig)  # (B, J, 3)
    flow_nll = log_sig.sum(-1) - log_phi  # (B, J)
    laplace_nll = (log_sig - math.log(LAPLACE_AMP) + (gt_n - mu_n).abs() / (math.sqrt(2.0) * sig)).sum(-1)  # (B, J)
    per_joint = torch.where(v[..., 0], flow_nll + laplace_nll, 0.0)  # (B, J)
    return per_joint.sum() / B


def l1_pose_loss(mu, gt, valid, scale_mm: float) -> torch.Tensor:
    """Plain L1 between one stage's joints and the ground truth (ours: the pose term of an L1 warm-up).

    mu, gt: (B, J, 3) root-relative mm; valid: (B, J) 0/1. Returns the sum over valid joints and the
    three coordinates of ``|mu - gt| / scale_mm``, divided by the batch size (the normalisation of
    :func:`rle_loss`). RLE's own code warms up nothing; an L1 start is a common remedy when a
    likelihood loss begins far from the data (its sigma then learns nothing useful).
    """
    if mu.shape != gt.shape or mu.ndim != 3:
        raise ValueError(f"l1_pose_loss: mu and gt must be (B, J, 3) of one shape, got {tuple(mu.shape)}, {tuple(gt.shape)}")
    v = _valid_mask(valid, mu.shape[:2]).to(mu.device)[..., None]  # (B, J, 1)
    err = (mu.float() - gt.float()).abs() / scale_mm  # (B, J, 3)
    return torch.where(v, err, 0.0).sum() / mu.shape[0]


# -----------------------------------------------------------------------------
# MMD loss (Eq. 20)
# -----------------------------------------------------------------------------
def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidths=DEFAULT_MMD_BANDWIDTHS) -> torch.Tensor:
    """Sum over bandwidths h of exp(-||a_i - b_j||^2 / (2 h^2 D)): a (n, D), b (m, D) -> (n, m).

    The squared distance is averaged over the D coordinates, so ``h`` reads as a
    per-coordinate RMS distance in the inputs' units, whatever D is.

    Used in notebook 06.
    """
    d2 = (a[:, None, :] - b[None, :, :]).pow(2).mean(-1)  # (n, m), exact 0 on identical rows
    return sum(torch.exp(-d2 / (2.0 * h * h)) for h in bandwidths)


def mmd_loss(x, y, bandwidths=DEFAULT_MMD_BANDWIDTHS, valid=None) -> torch.Tensor:
    """Squared maximum mean discrepancy between the sets x and y (Eq. 20), biased estimator.

    Args:
        x, y: (B, D) the two samples (here: flattened normalised root-relative poses, D = 126).
        bandwidths: Gaussian-kernel bandwidths; the kernel is their sum, a common choice that
            is less sensitive to the data's spread than one bandwidth (ours: the paper gives none;
            these were not tuned; see :func:`gaussian_kernel`).
        valid: optional (B, D) 0/1; entries where it is 0 are set to 0 in *both* x and y,
            so unlabelled joints neither count nor receive gradient.

    ``MMD^2 = mean k(x_i, x_i') + mean k(y_j, y_j') - 2 mean k(x_i, y_j)`` with the means over
    all pairs, diagonal included (the biased "V-statistic"): it is >= 0 and exactly 0 when
    the two sets are identical (the unbiased estimator can go negative).

    Used in notebook 06.
    """
    if not (torch.is_tensor(x) and torch.is_tensor(y)) or x.ndim != 2 or x.shape != y.shape:
        sx = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        sy = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
        raise ValueError(f"mmd_loss: x and y must be tensors of the same shape (B, D), got {sx} and {sy}")
    if len(bandwidths) == 0 or any(not h > 0 for h in bandwidths):
        raise ValueError(f"mmd_loss: bandwidths must be a non-empty list of positive numbers, got {bandwidths}")
    dt = torch.promote_types(x.dtype, torch.float32)  # at least float32 (exp of distances)
    x, y = x.to(dt), y.to(dt)
    if valid is not None:
        v = _valid_mask(valid, x.shape).to(x.device)
        x, y = torch.where(v, x, 0.0), torch.where(v, y, 0.0)
    kxx = gaussian_kernel(x, x, bandwidths).mean()
    kyy = gaussian_kernel(y, y, bandwidths).mean()
    kxy = gaussian_kernel(x, y, bandwidths).mean()
    return kxx + kyy - 2.0 * kxy


# -----------------------------------------------------------------------------
# Total loss (Eq. 21)
# -----------------------------------------------------------------------------
@dataclass
class LossConfig:
    """Weights and flow sizes of the training loss."""

    mmd_weight: float = 10.0  # lambda_1 of Eq. 21 (paper: 10)
    use_mmd: bool = True  # False = the "no MMD" ablation (MMD still reported, without gradient)
    root_weight: float = 1.0  # weight of our wrist-position L1 term (not in the paper)
    flow_hidden: int = 64  # width of the RealNVP scale / translation nets
    flow_layers: int = 6  # coupling layers per flow
    mmd_bandwidths: tuple = DEFAULT_MMD_BANDWIDTHS  # per-coordinate RMS distances, normalised units
    root_space: str = "uvz"  # the root term's space: "uvz" (crop pixel / S + log depth, ours) | "cam" (L1 in mm / norm_mm)
    heatmap_weight: float = 0.0  # our training-only 2D term on the backbone maps (KeypointHeatmapTerm); 0 = off (the paper)
    stage_weights: tuple | None = None  # ours: weight of each stage's pose term (N numbers); None = all 1 (Eq. 19)
    l1_warmup_steps: int = 0  # ours: optimiser steps whose pose term is a plain L1 instead of RLE; 0 = RLE throughout
    wrist_heatmap_weight: float = 1.0  # ours, wrist_head="heatmap" only: MSE of the wrist heatmaps (WristHeatmapHead)
    presence_weight: float = 1.0  # ours, hand_presence=True only: BCE of the hand-in-image logits
    joint_heatmap_weight: float = 0.0  # ours, training-only: MSE of 42 joint heatmaps read off the wrist head's neck
    heatmap_sigma: float = 1.0  # std of the Gaussian heatmap targets, in map cells (8 px at stride 8)

    def __post_init__(self):
        if self.root_space not in ROOT_SPACES:
            raise ValueError(f"LossConfig: root_space={self.root_space!r}; use one of {ROOT_SPACES}")
        if min(self.mmd_weight, self.root_weight, self.heatmap_weight, self.wrist_heatmap_weight,
               self.joint_heatmap_weight, self.presence_weight) < 0 or not self.heatmap_sigma > 0:
            raise ValueError(
                f"LossConfig: weights must be >= 0 and heatmap_sigma > 0, got mmd_weight={self.mmd_weight}, "
                f"root_weight={self.root_weight}, heatmap_weight={self.heatmap_weight}, wrist_heatmap_weight="
                f"{self.wrist_heatmap_weight}, joint_heatmap_weight={self.joint_heatmap_weight}, presence_weight="
                f"{self.presence_weight}, heatmap_sigma={self.heatmap_sigma}"
            )
        if self.flow_hidden < 1 or self.flow_layers < 1:
            raise ValueError(
                f"LossConfig: flow_hidden and flow_layers must be >= 1, got {self.flow_hidden}, {self.flow_layers}"
            )
        self.mmd_bandwidths = tuple(float(h) for h in self.mmd_bandwidths)
        if self.stage_weights is not None:
            self.stage_weights = tuple(float(w) for w in self.stage_weights)
            if not self.stage_weights or any(w < 0 for w in self.stage_weights):
                raise ValueError(f"LossConfig: stage_weights must be numbers >= 0 (one per stage), got {self.stage_weights}")
        if int(self.l1_warmup_steps) < 0:
            raise ValueError(f"LossConfig: l1_warmup_steps must be >= 0, got {self.l1_warmup_steps}")
        if not self.mmd_bandwidths or any(h <= 0 for h in self.mmd_bandwidths):
            raise ValueError(f"LossConfig: mmd_bandwidths must be positive numbers, got {self.mmd_bandwidths}")



class Handformer2TLoss(nn.Module):
    """Eq. 21 plus our root term, with one RealNVP flow per stage (Eq. 19).

    It has trainable parameters (the flows): give ``criterion.parameters()`` to the
    optimizer together with the model's, and move it to the model's device.

    ``model_cfg`` needs only ``num_stages`` (N) and ``norm_mm`` (coordinate scale);
    missing attributes default to 3 and 200.0. When it has ``effective_stages`` (the stages
    that actually run: 1 with ``use_pqe=False``), that count is used instead of ``num_stages``.

    ``forward(out, batch)`` with ``out = {"p": [N x (B,42,3)] root-relative mm,
    "u": [N x (B,42,1)] sigma, "root": (B,2,3) wrists in camera mm}`` and ``batch`` holding
    ``joints_cam`` (B,42,3) mm and ``joint_valid`` (B,42) returns scalar tensors
    ``{"total", "rle", "mmd", "root"}``:

    * ``rle``: sum over stages of :func:`rle_loss` (each stage with its own flow), each stage times its
      ``stage_weights`` number (ours; all 1 by default, as Eq. 19); for the first ``l1_warmup_steps``
      optimiser steps (ours; 0 by default) :func:`l1_pose_loss` stands in for RLE under the same key,
    * ``mmd``: :func:`mmd_loss` between the coarse predictions ``p[0]`` and the ground
      truth, flattened (B, 126), divided by norm_mm, invalid joints zeroed in both,
    * ``root``: :func:`root_loss` between ``out["root"]`` and the GT wrists ``joints_cam[:, [20, 41]]``
      over hands whose wrist is valid, summed / batch size; in the ``uvz`` space (default) it also
      reads the batch's ``focal``, ``princpt`` and ``image`` (for S). This root head is our addition
      beyond the paper, so that prediction can run without a ground-truth root depth.
    * ``total = rle + mmd_weight * mmd + root_weight * root`` (mmd only if ``use_mmd``).

    Used in notebook 06.
    """

    def __init__(self, model_cfg=None, loss_cfg: LossConfig | None = None):
        super().__init__()
        self.loss_cfg = loss_cfg if loss_cfg is not None else LossConfig()
        # stages that actually run (ModelConfig.effective_stages: 1 when PQE is off), else num_stages
        self.num_stages = int(getattr(model_cfg, "effective_stages", getattr(model_cfg, "num_stages", 3)))
        self.scale_mm = float(getattr(model_cfg, "norm_mm", 200.0))
        if self.num_stages < 1:
            raise ValueError(f"Handformer2TLoss: model_cfg.num_stages must be >= 1, got {self.num_stages}")
        if not self.scale_mm > 0:
            raise ValueError(f"Handformer2TLoss: model_cfg.norm_mm must be positive, got {self.scale_mm}")
        c = self.loss_cfg
        self.flows = nn.ModuleList(
            RealNVP(3, hidden=c.flow_hidden, layers=c.flow_layers) for _ in range(self.num_stages)
        )
        self.stage_weights = c.stage_weights or (1.0,) * self.num_stages
        if len(self.stage_weights) != self.num_stages:
            raise ValueError(f"LossConfig.stage_weights has {len(self.stage_weights)} numbers for "
                             f"{self.num_stages} stages; give one per stage, e.g. {(1.0,) * self.num_stages}")
        self.heatmap = None
        if c.heatmap_weight > 0:
            if not hasattr(model_cfg, "used_levels"):
                raise ValueError("LossConfig.heatmap_weight > 0 needs the model's ModelConfig (its backbone levels)")
            self.heatmap = KeypointHeatmapTerm([model_cfg.channels[lv - 1] for lv in model_cfg.used_levels()])
        self.joint_heatmap = None
        if c.joint_heatmap_weight > 0:
            if getattr(model_cfg, "wrist_head", "tokens") != "heatmap":
                raise ValueError("LossConfig.joint_heatmap_weight > 0 reads the wrist head's neck: it needs a model "
                                 "with wrist_head='heatmap' (--set model.wrist_head=heatmap)")
            self.joint_heatmap = JointHeatmapTerm(model_cfg.wrist_width, c.heatmap_sigma)

    def _check(self, out: dict, batch: dict):
        for key in ("p", "u"):
            if key not in out:
                raise ValueError(f"Handformer2TLoss: the model output has no {key!r} (expected keys p, u, root)")
            if len(out[key]) != self.num_stages:
                raise ValueError(
                    f"Handformer2TLoss: out[{key!r}] has {len(out[key])} stages but the loss was built for "
                    f"{self.num_stages}; build it with the model's config: Handformer2TLoss(model.cfg, loss_cfg)"
                )
        for key in ("joints_cam", "joint_valid"):
            if key not in batch:
                raise ValueError(f"Handformer2TLoss: the batch has no {key!r} (a dataset sample dict is expected)")
        p0, gt = out["p"][0], batch["joints_cam"]
        if not torch.is_tensor(gt) or gt.ndim != 3 or gt.shape[1:] != (NUM_JOINTS, 3):
            shape = tuple(gt.shape) if torch.is_tensor(gt) else type(gt).__name__
            raise ValueError(f"Handformer2TLoss: batch['joints_cam'] must be (B, {NUM_JOINTS}, 3) mm, got {shape}")
        if p0.shape != gt.shape:
            raise ValueError(
                f"Handformer2TLoss: predictions {tuple(p0.shape)} and batch['joints_cam'] {tuple(gt.shape)} differ"
            )
        dev = self.flows[0].masks.device
        if p0.device != dev:
            raise ValueError(
                f"Handformer2TLoss: the predictions are on {p0.device} but the loss (its flows) on {dev}; "
                f"move it with criterion.to(device)"
            )

    def forward(self, out: dict, batch: dict, step: int | None = None) -> dict:
        """``step``: the optimiser step (training only); below ``l1_warmup_steps`` the pose term is L1."""
        self._check(out, batch)
        c, s = self.loss_cfg, self.scale_mm
        device = out["p"][0].device
        gt = batch["joints_cam"].to(device).float()  # (B, 42, 3) camera mm
        valid = _valid_mask(batch["joint_valid"].to(device), gt.shape[:2], "batch['joint_valid']")  # (B, 42)
        gt_rel = root_relative(gt)  # (B, 42, 3) root-relative mm
        B = gt.shape[0]
        size = batch["image"].shape[-1] if torch.is_tensor(batch.get("image")) else None  # the crop side S, px

        # Eq. 19: every stage against the same ground truth, each with its own flow (weights: ours, 1 = paper).
        if step is not None and step < c.l1_warmup_steps:  # ours: an L1 warm-up, the flows wait
            stage_terms = [l1_pose_loss(p, gt_rel, valid, s) for p in out["p"]]
        else:
            stage_terms = [rle_loss(p, u, gt_rel, valid, flow, s) for p, u, flow in zip(out["p"], out["u"], self.flows)]
        rle = sum(w * t for w, t in zip(self.stage_weights, stage_terms))

        # Eq. 20 on the coarse stage: flattened (B, 126) poses, invalid joints zeroed in both.
        v3 = valid[..., None].expand(-1, -1, 3).reshape(B, -1)  # (B, 126)
        x = (out["p"][0].float() / s).reshape(B, -1)
        y = (gt_rel / s).reshape(B, -1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and c.use_mmd):
            mmd = mmd_loss(x, y, c.mmd_bandwidths, valid=v3)

        # Our root head: L1 on the two wrists (camera mm / norm_mm), over valid wrists.
        root_pred = out.get("root")
        if root_pred is None:
            if c.root_weight > 0:
                raise ValueError(
                    "Handformer2TLoss: the model output has no 'root' but root_weight > 0; "
                    "set LossConfig(root_weight=0) for a model without a root head"
                )
            root = gt.new_zeros(())
        else:
            if root_pred.shape != (B, 2, 3):
                raise ValueError(
                    f"Handformer2TLoss: out['root'] must be (B, 2, 3) = ({B}, 2, 3), got {tuple(root_pred.shape)}"
                )
            focal, princpt = batch.get("focal"), batch.get("princpt")
            root = root_loss(root_pred, gt[:, ROOTS], valid[:, ROOTS],
                             None if focal is None else focal.to(device), None if princpt is None else princpt.to(device),
                             size, c.root_space, s)

        total = rle + c.root_weight * root
        if c.use_mmd:
            total = total + c.mmd_weight * mmd
        terms = {"total": total, "rle": rle, "mmd": mmd, "root": root}
        if self.heatmap is not None:
            if "fmaps" not in out or "joints_img" not in batch:
                raise ValueError("Handformer2TLoss: heatmap_weight > 0 needs out['fmaps'] and batch['joints_img']")
            terms["heatmap"] = self.heatmap(out["fmaps"], batch["joints_img"].to(device), valid, size)
            terms["total"] = terms["total"] + c.heatmap_weight * terms["heatmap"]
        absent = hands_absent(valid, batch.get("hand_type"))[:, ROOTS]  # (B, 2): the hand is not in the image
        if "wrist_heatmaps" in out:  # our wrist head: Gaussians at the two wrists, zeros for an absent hand
            if "joints_img" not in batch or size is None:
                raise ValueError("Handformer2TLoss: the wrist heatmaps need batch['joints_img'] and batch['image']")
            jimg = batch["joints_img"].to(device)
            terms["wrist_heatmap"] = heatmap_mse(out["wrist_heatmaps"], jimg[:, ROOTS], valid[:, ROOTS], absent, size,
                                                 c.heatmap_sigma)
            terms["total"] = terms["total"] + c.wrist_heatmap_weight * terms["wrist_heatmap"]
        if "presence" in out:  # ours: is each hand in the image (BCE on the (B, 2) logits)
            present = (~absent).float()  # (B, 2)
            terms["presence"] = nn.functional.binary_cross_entropy_with_logits(out["presence"].float(), present)
            terms["total"] = terms["total"] + c.presence_weight * terms["presence"]
        if self.joint_heatmap is not None:
            terms["joint_heatmap"] = self.joint_heatmap(out["wrist_neck"], batch["joints_img"].to(device), valid, size,
                                                        batch.get("hand_type"))
            terms["total"] = terms["total"] + c.joint_heatmap_weight * terms["joint_heatmap"]
        return terms
