"""RealNVP, RLE, MMD and the total loss of Handformer2T (Sec. 3.5)."""
import math
from types import SimpleNamespace

import pytest
import torch

from h2t_lib.losses import (
    LAPLACE_AMP,
    Handformer2TLoss,
    LossConfig,
    RealNVP,
    l1_pose_loss,
    mmd_loss,
    rle_loss,
    root_loss,
)
from h2t_lib.skeleton import HAND_SLICE, NUM_JOINTS, ROOT_INDEX, root_relative


def std_normal_log_density(x):
    return torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1)


def random_flow(seed=0, hidden=16, std=0.2):
    """A RealNVP in float64 with random (far from identity, but tame) parameters."""
    torch.manual_seed(seed)
    flow = RealNVP(3, hidden=hidden, layers=6).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return flow


def identity_flow():
    """RealNVP with s = t = 0 exactly: log_prob is the standard normal log-density."""
    flow = RealNVP(3, hidden=8, layers=2)
    with torch.no_grad():
        for net in [*flow.scale_nets, *flow.shift_nets]:
            net[4].weight.zero_()
            net[4].bias.zero_()
    return flow


# ----------------------------------------------------------------------------- RealNVP
def test_log_det_matches_autograd_jacobian():
    flow = random_flow()
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for i in range(len(x)):
        xi = x[i]
        jac_inv = torch.autograd.functional.jacobian(lambda v: flow.inverse(v[None])[0], xi)  # (3, 3)
        sign, logabs = torch.linalg.slogdet(jac_inv)
        assert sign != 0
        assert flow.log_det(xi[None])[0].item() == pytest.approx(logabs.item(), abs=1e-10)
        jac_fwd = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0], xi)
        assert flow.forward_with_log_det(xi[None])[1][0].item() == pytest.approx(
            torch.linalg.slogdet(jac_fwd)[1].item(), abs=1e-10
        )
    # a non-trivial flow: the log-determinants are far from 0
    assert flow.log_det(x).abs().max() > 0.1


def test_flow_is_invertible():
    flow = random_flow(seed=3)
    z = torch.randn(100, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x, ld_fwd = flow.forward_with_log_det(z)
    assert (x - z).abs().max() > 0.1  # it does transform
    torch.testing.assert_close(flow.inverse(x), z, rtol=0, atol=1e-10)
    torch.testing.assert_close(flow(flow.inverse(z)), z, rtol=0, atol=1e-10)
    torch.testing.assert_close(flow.log_det(x), -ld_fwd, rtol=0, atol=1e-10)  # det of the inverse = 1/det


def test_log_prob_at_init_is_standard_normal():
    torch.manual_seed(0)
    flow = RealNVP()  # the real init: tiny xavier weights, near identity
    x = torch.randn(200, 3) * 2
    torch.testing.assert_close(flow.log_prob(x), std_normal_log_density(x), rtol=0.02, atol=0.02)
    exact = identity_flow()
    torch.testing.assert_close(exact.log_prob(x), std_normal_log_density(x), rtol=0, atol=1e-5)


def test_log_prob_integrates_to_one():
    """A random (clearly non-Gaussian) flow's density integrates to 1 on a 3-D grid."""
    flow = random_flow(seed=0)
    n, lo, hi = 49, -8.0, 8.0
    ax = torch.linspace(lo, hi, n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    with torch.no_grad():
        lp = flow.log_prob(grid)
    assert (lp - std_normal_log_density(grid)).abs().median() > 1.0  # not the prior
    mass = lp.exp().sum().item() * ((hi - lo) / (n - 1)) ** 3
    assert mass == pytest.approx(1.0, abs=0.01)


def test_flow_sample_and_bad_input():
    flow = RealNVP()
    a = flow.sample(7, generator=torch.Generator().manual_seed(5))
    b = flow.sample(7, generator=torch.Generator().manual_seed(5))
    assert a.shape == (7, 3) and torch.equal(a, b)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        flow.log_prob(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="dim >= 2"):
        RealNVP(dim=1)


# ----------------------------------------------------------------------------- RLE
def test_rle_matches_hand_formula():
    """With an exact-identity flow the loss is the written-out formula (signs: an NLL)."""
    flow = identity_flow()
    g = torch.Generator().manual_seed(0)
    B, J, s = 3, 5, 100.0
    gt = torch.randn(B, J, 3, generator=g) * 50
    mu = gt + torch.randn(B, J, 3, generator=g) * 10
    sigma = torch.rand(B, J, 1, generator=g) * 0.2 + 0.02
    valid = torch.ones(B, J)
    valid[0, 1] = 0
    got = rle_loss(mu, sigma, gt, valid, flow, s)

    want = 0.0
    for b in range(B):
        for j in range(J):
            if not valid[b, j]:
                continue
            sig = sigma[b, j, 0].item()
            for c in range(3):
                e = (gt[b, j, c] - mu[b, j, c]).item() / s
                bar = -e / sig
                # flow NLL in coordinate space: -log N(bar) + log sigma
                want += 0.5 * bar * bar + 0.5 * math.log(2 * math.pi) + math.log(sig)
                # Laplace residual NLL: log(sigma / a) + |e| / (sqrt(2) sigma)
                want += math.log(sig / LAPLACE_AMP) + abs(e) / (math.sqrt(2) * sig)
    assert got.item() == pytest.approx(want / B, rel=1e-5)


def test_rle_decreases_as_mu_approaches_gt():
    torch.manual_seed(0)
    flow = RealNVP()
    g = torch.Generator().manual_seed(1)
    gt = torch.randn(4, NUM_JOINTS, 3, generator=g) * 50
    offset = torch.randn(4, NUM_JOINTS, 3, generator=g) * 40
    sigma = torch.full((4, NUM_JOINTS, 1), 0.05)
    valid = torch.ones(4, NUM_JOINTS)
    with torch.no_grad():
        path = [gt + (1 - t) * offset for t in torch.linspace(0, 1, 11)]
        losses = [rle_loss(mu, sigma, gt, valid, flow, 200.0).item() for mu in path]
    assert all(a > b for a, b in zip(losses, losses[1:])), losses


def test_rle_prefers_a_well_chosen_sigma():
    """Residuals of Laplace scale b: the loss is lower at sigma = b/sqrt(2) than at 10x or 0.1x that."""
    torch.manual_seed(0)
    flow = RealNVP()
    b, s = 0.05, 200.0
    gt = torch.zeros(8, NUM_JOINTS, 3)
    mu = torch.distributions.Laplace(0.0, b * s).sample(gt.shape)
    valid = torch.ones(8, NUM_JOINTS)

    def at(sig):
        return rle_loss(mu, torch.full((8, NUM_JOINTS, 1), sig), gt, valid, flow, s).item()

    good = at(b / math.sqrt(2))
    assert good < at(10 * b / math.sqrt(2))
    assert good < at(0.1 * b / math.sqrt(2))


def test_rle_sigma_per_joint_broadcasts_like_per_coordinate():
    torch.manual_seed(0)
    flow = RealNVP()
    gt = torch.randn(2, 6, 3) * 30
    mu = gt + torch.randn(2, 6, 3) * 5
    sigma = torch.rand(2, 6, 1) * 0.1 + 0.01
    valid = torch.ones(2, 6)
    a = rle_loss(mu, sigma, gt, valid, flow, 200.0)
    b = rle_loss(mu, sigma.expand(2, 6, 3).clone(), gt, valid, flow, 200.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)
    # coordinates are divided by scale_mm first: the same in other units
    c = rle_loss(mu / 200.0, sigma, gt / 200.0, valid, flow, 1.0)
    assert a.item() == pytest.approx(c.item(), rel=1e-5)


def test_rle_masked_joints_do_not_matter():
    torch.manual_seed(0)
    flow = RealNVP()
    g = torch.Generator().manual_seed(3)
    B = 3
    gt = torch.randn(B, NUM_JOINTS, 3, generator=g) * 50
    mu = (gt + torch.randn(B, NUM_JOINTS, 3, generator=g) * 10).requires_grad_()
    sigma = (torch.rand(B, NUM_JOINTS, 1, generator=g) * 0.1 + 0.02).requires_grad_()
    valid = (torch.rand(B, NUM_JOINTS, generator=g) > 0.3).float()
    inv = valid == 0
    assert inv.any() and (~inv).any()
    loss = rle_loss(mu, sigma, gt, valid, flow, 200.0)
    loss.backward()
    # zero gradient at masked joints, nonzero at valid ones
    assert mu.grad[inv].abs().max() == 0 and sigma.grad[inv].abs().max() == 0
    assert (mu.grad[~inv].abs().sum(-1) > 0).all()
    # changing masked values (even to inf / nan / non-positive sigma) changes nothing
    mu2, sigma2, gt2 = mu.detach().clone(), sigma.detach().clone(), gt.clone()
    mu2[inv] = float("inf")
    gt2[inv] = float("nan")
    sigma2[inv] = -1.0
    mu2.requires_grad_()
    loss2 = rle_loss(mu2, sigma2, gt2, valid, flow, 200.0)
    assert loss2.item() == loss.item()
    loss2.backward()
    assert torch.isfinite(mu2.grad).all() and mu2.grad[inv].abs().max() == 0
    # whereas a valid joint does matter
    mu3 = mu.detach().clone()
    mu3[~inv] += 5.0
    assert rle_loss(mu3, sigma, gt, valid, flow, 200.0).item() != pytest.approx(loss.item(), rel=1e-6)


def test_rle_gradient_reaches_mu_sigma_and_flow():
    torch.manual_seed(0)
    flow = RealNVP()
    gt = torch.randn(2, 4, 3) * 40
    mu = (gt + 20).requires_grad_()
    sigma = torch.full((2, 4, 1), 0.05, requires_grad=True)
    rle_loss(mu, sigma, gt, torch.ones(2, 4), flow, 200.0).backward()
    assert mu.grad.abs().sum() > 0 and sigma.grad.abs().sum() > 0
    assert all(p.grad is not None for p in flow.parameters())
    assert sum(p.grad.abs().sum() for p in flow.parameters()) > 0
    # pulled towards gt: the gradient step reduces |mu - gt|
    assert (mu.grad > 0).all()


def test_rle_bad_shapes():
    flow = RealNVP()
    mu = torch.zeros(2, 42, 3)
    with pytest.raises(ValueError, match="sigma must have shape"):
        rle_loss(mu, torch.ones(2, 42), mu, torch.ones(2, 42), flow, 200.0)
    with pytest.raises(ValueError, match="gt must have the shape"):
        rle_loss(mu, torch.ones(2, 42, 1), mu[:1], torch.ones(2, 42), flow, 200.0)
    with pytest.raises(ValueError, match="valid must have shape"):
        rle_loss(mu, torch.ones(2, 42, 1), mu, torch.ones(2, 21), flow, 200.0)


def test_rle_toy_optimisation_recovers_noise_scale():
    """Learn a shared mu and sigma (and the flow) for fixed targets with Laplace noise of scale b.

    The Laplace residual has scale sqrt(2)*sigma, so the optimum is sigma = b / sqrt(2)
    (once the flow fits the residuals its term no longer depends on sigma).
    """
    torch.manual_seed(0)
    b, B, J = 0.05, 128, 4
    targets = torch.distributions.Laplace(0.0, b).sample((B, J, 3))  # gt = 0 + noise
    log_sigma = torch.full((1,), math.log(0.2), requires_grad=True)
    mu = torch.full((1, J, 3), 0.1, requires_grad=True)
    flow = RealNVP()
    opt = torch.optim.Adam([log_sigma, mu, *flow.parameters()], lr=0.02)
    valid = torch.ones(B, J)
    losses = []
    for _ in range(300):
        loss = rle_loss(mu.expand(B, J, 3), log_sigma.exp().expand(B, J, 1), targets, valid, flow, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 10
    assert sum(losses[-20:]) / 20 < sum(losses[:20]) / 20
    ratio = log_sigma.exp().item() * math.sqrt(2) / b
    assert 0.8 < ratio < 1.25, ratio
    assert mu.detach().abs().max() < b / 2  # the mean goes to the noise's centre


# ----------------------------------------------------------------------------- MMD
def reference_mmd(x, y, bandwidths):
    """Eq. 20 with the biased estimator, loop by loop."""

    def k(a, b):
        d2 = sum((a[c] - b[c]) ** 2 for c in range(len(a))) / len(a)
        return sum(math.exp(-d2 / (2 * h * h)) for h in bandwidths)

    n = len(x)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n)) / n**2
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n)) / n**2
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(n)) / n**2
    return xx + yy - 2 * xy


def test_mmd_matches_reference_and_is_symmetric():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64) * 0.3
    y = torch.randn(5, 4, generator=g, dtype=torch.float64) * 0.3 + 0.1
    bw = (0.1, 0.5)
    got = mmd_loss(x, y, bw)
    assert got.item() == pytest.approx(reference_mmd(x.tolist(), y.tolist(), bw), rel=1e-5)
    assert mmd_loss(y, x, bw).item() == pytest.approx(got.item(), rel=1e-6)


def test_mmd_zero_for_identical_sets_and_grows_with_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 126, generator=g) * 0.3
    assert mmd_loss(x, x.clone()).item() == 0.0
    direction = torch.randn(126, generator=g)
    direction = direction / direction.norm() * math.sqrt(126)  # unit RMS per coordinate
    values = [mmd_loss(x, x + d * direction).item() for d in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)]
    assert values[0] == 0.0
    assert all(a < b for a, b in zip(values, values[1:])), values
    # a different set of the same distribution is closer than a shifted one
    x2 = torch.randn(16, 126, generator=g) * 0.3
    assert mmd_loss(x, x2).item() < mmd_loss(x, x2 + 0.4 * direction).item()


def test_mmd_masked_entries():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(6, 10, generator=g) * 0.3).requires_grad_()
    y = torch.randn(6, 10, generator=g) * 0.3
    valid = (torch.rand(6, 10, generator=g) > 0.3).float()
    inv = valid == 0
    loss = mmd_loss(x, y, valid=valid)
    loss.backward()
    assert x.grad[inv].abs().max() == 0 and x.grad[~inv].abs().max() > 0
    x2, y2 = x.detach().clone(), y.clone()
    x2[inv] = 5.0
    y2[inv] = float("nan")
    assert mmd_loss(x2, y2, valid=valid).item() == pytest.approx(loss.item(), rel=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        mmd_loss(x, y[:3])
    with pytest.raises(ValueError, match="bandwidths"):
        mmd_loss(x, y, bandwidths=(0.1, -1.0))


# ----------------------------------------------------------------------------- total loss
def fake_batch(B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    joints = torch.randn(B, NUM_JOINTS, 3, generator=g) * 40
    joints[:, HAND_SLICE["right"]] += torch.tensor([-60.0, 0.0, 600.0])
    joints[:, HAND_SLICE["left"]] += torch.tensor([60.0, 10.0, 620.0])
    valid = torch.ones(B, NUM_JOINTS)
    valid[0, HAND_SLICE["left"]] = 0  # a right-hand-only sample
    joints[0, HAND_SLICE["left"]] = float("nan")  # whatever is stored there must not matter
    valid[1, 3] = 0
    focal = torch.tensor([[150.0, 150.0]]).repeat(B, 1)  # crop intrinsics of a 64-pixel crop
    princpt = torch.tensor([[31.5, 31.5]]).repeat(B, 1)
    return {"joints_cam": joints, "joint_valid": valid, "focal": focal, "princpt": princpt,
            "image": torch.zeros(B, 3, 64, 64)}


def fake_out(batch, num_stages=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    gt_rel = root_relative(torch.nan_to_num(batch["joints_cam"]))
    B = gt_rel.shape[0]
    p = [(gt_rel + torch.randn(gt_rel.shape, generator=g) * 10).requires_grad_() for _ in range(num_stages)]
    u = [torch.full((B, NUM_JOINTS, 1), 0.05).requires_grad_() for _ in range(num_stages)]
    roots = torch.nan_to_num(batch["joints_cam"])[:, [ROOT_INDEX["right"], ROOT_INDEX["left"]]]
    root = (roots + torch.randn(roots.shape, generator=g) * 20).requires_grad_()
    return {"p": p, "u": u, "root": root}


def test_total_loss_composition_and_backprop():
    torch.manual_seed(0)
    cfg = SimpleNamespace(num_stages=3, norm_mm=200.0)
    crit = Handformer2TLoss(cfg, LossConfig())
    batch = fake_batch()
    out = fake_out(batch)
    terms = crit(out, batch)
    assert set(terms) == {"total", "rle", "mmd", "root"}
    assert all(t.ndim == 0 and torch.isfinite(t) for t in terms.values())
    assert terms["total"].item() == pytest.approx(
        terms["rle"].item() + 10.0 * terms["mmd"].item() + terms["root"].item(), rel=1e-6
    )
    assert terms["mmd"].item() > 0 and terms["root"].item() > 0
    # RLE sums the stages, each with its own flow
    assert len(crit.flows) == 3 and crit.flows[0] is not crit.flows[1]
    terms["total"].backward()
    for t in [*out["p"], *out["u"], out["root"]]:
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    assert out["p"][0].grad[0, HAND_SLICE["left"]].abs().max() == 0  # the absent hand
    assert out["root"].grad[0, 1].abs().max() == 0  # its root too
    for flow in crit.flows:
        assert sum(p.grad.abs().sum() for p in flow.parameters()) > 0
    # the flows are parameters of the criterion (the optimizer must include them)
    assert sum(p.numel() for p in crit.parameters()) > 0


def test_total_loss_root_and_options():
    cfg = SimpleNamespace(num_stages=2, norm_mm=100.0)
    batch = fake_batch()
    out = fake_out(batch, num_stages=2)
    torch.manual_seed(0)
    terms = Handformer2TLoss(cfg, LossConfig(root_space="cam"))(out, batch)
    # root term by hand: L1 / norm_mm over valid wrists, summed / B
    gt_roots = batch["joints_cam"][:, [ROOT_INDEX["right"], ROOT_INDEX["left"]]]
    err = (out["root"] - gt_roots).abs().sum(-1) / 100.0  # (B, 2)
    err[0, 1] = 0.0  # sample 0 has no left hand
    assert terms["root"].item() == pytest.approx(err.sum().item() / 4, rel=1e-5)

    torch.manual_seed(0)
    no_mmd = Handformer2TLoss(cfg, LossConfig(use_mmd=False, root_weight=0.5, root_space="cam"))(out, batch)
    assert no_mmd["rle"].item() == pytest.approx(terms["rle"].item(), rel=1e-6)  # same flows (same seed)
    assert no_mmd["mmd"].item() == pytest.approx(terms["mmd"].item(), rel=1e-6)  # still reported...
    assert not no_mmd["mmd"].requires_grad  # ...but not trained
    assert no_mmd["total"].item() == pytest.approx(no_mmd["rle"].item() + 0.5 * no_mmd["root"].item(), rel=1e-6)


def test_stage_weights_and_l1_warmup_by_hand():
    """Ours: stage_weights scale each stage's RLE; below l1_warmup_steps the pose term is an L1."""
    cfg = SimpleNamespace(num_stages=3, norm_mm=200.0)
    batch = fake_batch()
    out = fake_out(batch)
    torch.manual_seed(0)
    crit = Handformer2TLoss(cfg, LossConfig(stage_weights=(2.0, 0.0, 1.0), l1_warmup_steps=5))
    gt_rel = root_relative(torch.nan_to_num(batch["joints_cam"]))
    valid = batch["joint_valid"]
    per_stage = [rle_loss(p, u, gt_rel, valid, f, 200.0) for p, u, f in zip(out["p"], out["u"], crit.flows)]
    after = crit(out, batch, step=5)
    assert after["rle"].item() == pytest.approx(2 * per_stage[0].item() + per_stage[2].item(), rel=1e-6)
    assert crit(out, batch)["rle"].item() == pytest.approx(after["rle"].item(), rel=1e-6)  # no step: RLE
    # L1 by hand: |p - gt| / 200 over valid joints, summed / B
    l1 = [((p - gt_rel).abs() / 200.0 * valid[..., None]).nan_to_num().sum().item() / 4 for p in out["p"]]
    assert l1_pose_loss(out["p"][1], gt_rel, valid, 200.0).item() == pytest.approx(l1[1], rel=1e-6)
    during = crit(out, batch, step=4)
    assert during["rle"].item() == pytest.approx(2 * l1[0] + l1[2], rel=1e-6)
    during["total"].backward()
    assert all(p.grad is None for p in crit.flows.parameters())  # the flows wait for RLE
    assert out["p"][1].grad.abs().max() == 0 and out["p"][0].grad.abs().sum() > 0  # weight 0: no gradient
    with pytest.raises(ValueError, match="stage_weights has 2 numbers for 3 stages"):
        Handformer2TLoss(cfg, LossConfig(stage_weights=(1, 1)))
    with pytest.raises(ValueError, match="l1_warmup_steps"):
        LossConfig(l1_warmup_steps=-1)


def test_root_term_in_the_heads_own_space():
    """root_space="uvz" (default): |uv - uv_gt| / S in crop pixels plus |log z - log z_gt|, by hand."""
    from h2t_lib.camera import cam_to_pixel

    batch = fake_batch()
    out = fake_out(batch, num_stages=2)
    terms = Handformer2TLoss(SimpleNamespace(num_stages=2, norm_mm=100.0), LossConfig())(out, batch)
    gt = batch["joints_cam"][:, [ROOT_INDEX["right"], ROOT_INDEX["left"]]].double()
    pred = out["root"].detach().double()
    f, c = batch["focal"].double(), batch["princpt"].double()
    err = ((cam_to_pixel(pred, f, c) - cam_to_pixel(gt, f, c)).abs().sum(-1) / 64.0
           + (pred[..., 2].log() - gt[..., 2].log()).abs())  # (B, 2)
    err[0, 1] = 0.0  # sample 0 has no left hand
    assert terms["root"].item() == pytest.approx(err.sum().item() / 4, rel=1e-5)
    # a wrist moved along its own viewing ray by 10 % costs exactly |log 1.1| (its pixel is unchanged)
    moved = out["root"].detach().clone()
    moved[1, 0] = gt[1, 0].float() * 1.1
    moved[1, 1] = gt[1, 1].float()
    one = root_loss(moved[1:2], gt[1:2].float(), torch.ones(1, 2), batch["focal"][:1], batch["princpt"][:1], 64)
    assert one.item() == pytest.approx(math.log(1.1), rel=1e-4)
    with pytest.raises(ValueError, match="needs the crop intrinsics"):
        root_loss(moved, gt.float(), torch.ones(4, 2), space="uvz")
    with pytest.raises(ValueError, match="root_space"):
        LossConfig(root_space="pixels")


def test_total_loss_uses_root_relative_gt():
    """Moving a whole hand in the camera frame changes only the root term."""
    torch.manual_seed(0)
    crit = Handformer2TLoss(None, LossConfig())  # defaults: 3 stages, 200 mm
    assert crit.num_stages == 3 and crit.scale_mm == 200.0
    batch = fake_batch()
    out = fake_out(batch)
    a = crit(out, batch)
    moved = dict(batch, joints_cam=batch["joints_cam"].clone())
    moved["joints_cam"][:, HAND_SLICE["right"]] += torch.tensor([30.0, -20.0, 100.0])
    b = crit(out, moved)
    assert b["rle"].item() == pytest.approx(a["rle"].item(), rel=1e-5)
    assert b["mmd"].item() == pytest.approx(a["mmd"].item(), rel=1e-5)
    assert b["root"].item() > a["root"].item()


def test_stage_count_follows_the_model_config():
    assert len(Handformer2TLoss(SimpleNamespace(num_stages=4)).flows) == 4
    # a model with the pose query enhancer off runs the coarse stage only
    no_pqe = SimpleNamespace(num_stages=3, effective_stages=1, norm_mm=200.0)
    crit = Handformer2TLoss(no_pqe)
    assert len(crit.flows) == 1
    batch = fake_batch()
    assert torch.isfinite(crit(fake_out(batch, num_stages=1), batch)["total"])


def test_total_loss_bad_input():
    crit = Handformer2TLoss(SimpleNamespace(num_stages=3, norm_mm=200.0))
    batch = fake_batch()
    with pytest.raises(ValueError, match="2 stages but the loss was built for 3"):
        crit(fake_out(batch, num_stages=2), batch)
    with pytest.raises(ValueError, match="no 'joint_valid'"):
        crit(fake_out(batch), {"joints_cam": batch["joints_cam"]})
    out = fake_out(batch)
    out["root"] = out["root"][:, :1]
    with pytest.raises(ValueError, match=r"out\['root'\]"):
        crit(out, batch)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        LossConfig(mmd_weight=-1)


def test_heatmap_term_soft_argmax_lands_on_the_cell_centre():
    from h2t_lib.losses import KeypointHeatmapTerm

    logits = torch.full((1, NUM_JOINTS, 8, 8), -50.0)
    logits[0, :, 2, 5] = 50.0  # every joint's mass in row 2, column 5 of an 8x8 map of a 64-pixel crop (stride 8)
    uv = KeypointHeatmapTerm.expected_pixels(logits, 64)
    torch.testing.assert_close(uv[0, 0], torch.tensor([5 * 8 + 3.5, 2 * 8 + 3.5]))
    # a flat map's expectation is the crop centre (S - 1) / 2
    torch.testing.assert_close(KeypointHeatmapTerm.expected_pixels(torch.zeros(1, 1, 4, 4), 64)[0, 0],
                               torch.tensor([31.5, 31.5]))


def test_heatmap_term_learns_a_fixed_batch_and_ignores_invalid_joints():
    from h2t_lib.model.config import ModelConfig
    from h2t_lib.losses import KeypointHeatmapTerm

    torch.manual_seed(0)
    fmaps = [torch.randn(2, 8, 16, 16, requires_grad=True)]
    gt = torch.rand(2, NUM_JOINTS, 2) * 63
    valid = torch.ones(2, NUM_JOINTS)
    valid[0, :21] = 0
    gt[1, 5] = torch.tensor([200.0, 10.0])  # outside the crop: dropped
    term = KeypointHeatmapTerm([8])
    loss = term(fmaps, gt, valid, 64)
    loss.backward()
    g = fmaps[0].grad
    assert g.abs().sum() > 0 and torch.isfinite(g).all()
    # the same loss whatever the invalid / outside joints' targets are
    gt2 = gt.clone()
    gt2[0, :21] = 7.0
    gt2[1, 5] = torch.tensor([-300.0, 5.0])
    assert term(fmaps, gt2, valid, 64).item() == pytest.approx(loss.item(), rel=1e-6)
    opt = torch.optim.Adam(term.parameters(), lr=0.05)
    first = loss.item()
    for _ in range(60):
        opt.zero_grad()
        l = term([f.detach() for f in fmaps], gt, valid, 64)
        l.backward()
        opt.step()
    assert l.item() < 0.5 * first  # it learns the fixed batch
    # built from the model config: one head per level the stages read, switched off by default
    cfg = ModelConfig.preset("cpu")
    crit = Handformer2TLoss(cfg, LossConfig(heatmap_weight=2.0))
    assert [h.in_channels for h in crit.heatmap.heads] == [64, 128, 256]  # layer1..layer3 of ResNet-18
    assert Handformer2TLoss(cfg, LossConfig()).heatmap is None


def test_total_loss_adds_the_weighted_heatmap_term():
    from h2t_lib.model.config import ModelConfig
    from h2t_lib.model import Handformer2T

    cfg = ModelConfig.preset("tiny")
    model = Handformer2T(cfg)
    torch.manual_seed(0)
    B = 2
    batch = fake_batch(B)
    batch["joint_valid"][0] = 1
    batch["joints_cam"] = torch.nan_to_num(batch["joints_cam"], 600.0)
    batch["joints_img"] = torch.rand(B, NUM_JOINTS, 2) * 63
    out = model(batch["image"], batch["focal"], batch["princpt"])
    assert [tuple(f.shape[1:]) for f in out["fmaps"]] == [(256, 4, 4), (512, 2, 2)]  # tiny reads layer3, layer4
    terms = Handformer2TLoss(cfg, LossConfig(heatmap_weight=3.0))(out, batch)
    base = terms["rle"] + 10.0 * terms["mmd"] + terms["root"]
    assert terms["total"].item() == pytest.approx((base + 3.0 * terms["heatmap"]).item(), rel=1e-5)
    assert terms["heatmap"].item() > 0
