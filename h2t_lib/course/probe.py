"""Can one token hold a hand? A linear probe from a hand token to that hand's 63 coordinates.

The coarse predictor squeezes a whole hand (21 joints x 3 coordinates) into one token of width d
(the paper's central bet, Sec. 3.2). :func:`hand_tokens` collects the tokens E_{1,L} (after the
final LayerNorm, what the output head reads) of a dataset; :func:`linear_probe` fits a ridge
regression token -> 63 root-relative coordinates on one split and measures it on another, beside
two references: the mean training pose (the probe learnt nothing) and the model's own output head
(an MLP on the same token).
"""
from __future__ import annotations

import numpy as np

from h2t_lib import skeleton as sk


def hand_tokens(model, dataset, batch_size: int = 16) -> dict:
    """Run ``model`` over ``dataset`` and return, per sample and hand (right, left):

    {"tokens": (M, 2, d) coarse-stage hand tokens E_{1,L} after the LayerNorm; "target": (M, 2, 63)
    root-relative ground truth (mm); "coarse": (M, 2, 63) the model's own p^(1); "valid": (M, 2) bool,
    a hand counts when all its 21 joints are annotated}. Hand-level tokens only (T = 2).

    Used in notebook 04.
    """
    import torch

    from h2t_lib.model.batch import gt_roots

    if model.cfg.num_joint_tokens != 2:
        raise ValueError("the probe reads hand-level tokens (cfg.tokens='hand'); this model has "
                         f"{model.cfg.num_joint_tokens} tokens")
    store = {}
    hook = model.stages[0].norm.register_forward_hook(lambda _m, _i, out: store.__setitem__("E", out))
    toks, tgts, coarse, valid = [], [], [], []
    was_training = model.training
    model.eval()
    try:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
        with torch.no_grad():
            for batch in loader:
                out = model(batch["image"], batch["focal"], batch["princpt"], root_cam=gt_roots(batch))
                toks.append(store["E"].float().numpy())
                coarse.append(out["p"][0].float().numpy().reshape(-1, 2, 63))
                tgts.append(sk.root_relative(batch["joints_cam"].double().numpy()).reshape(-1, 2, 63))
                valid.append((batch["joint_valid"].numpy().reshape(-1, 2, 21) > 0.5).all(-1))
    finally:
        hook.remove()
        model.train(was_training)
    return {"tokens": np.concatenate(toks), "target": np.concatenate(tgts),
            "coarse": np.concatenate(coarse), "valid": np.concatenate(valid)}


def _rows(d: dict):
    """(K, d) tokens and (K, 63) targets of the valid hands, and the model's p^(1) for them."""
    v = d["valid"]
    return d["tokens"][v].astype(np.float64), d["target"][v], d["coarse"][v].astype(np.float64)


def _mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean joint error (mm) of (K, 63) root-relative hands, the wrist (0 by construction) left out."""
    e = np.linalg.norm((pred - gt).reshape(-1, 21, 3), axis=-1)
    keep = np.arange(21) != sk.ROOT_INDEX["right"]
    return float(e[:, keep].mean())


def ridge_fit(X: np.ndarray, Y: np.ndarray, alpha: float):
    """Ridge regression with an unpenalised intercept: returns (W (d, k), b (k,))."""
    mx, my = X.mean(0), Y.mean(0)
    Xc = X - mx
    W = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ (Y - my))
    return W, my - mx @ W


def linear_probe(train: dict, test: dict, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0)) -> dict:
    """Fit token -> 63 coordinates on ``train`` (from :func:`hand_tokens`), pick the ridge strength by
    leave-one-out error on ``train``, and measure on ``test``.

    Returns {"probe", "mean_pose", "head"}: mean joint error (mm) on the test hands of the probe, of
    the mean training hand, and of the model's own coarse head; "alpha": the strength chosen;
    "num_train", "num_test": hands; "dim": token width.

    Used in notebook 04.
    """
    Xtr, Ytr, _ = _rows(train)
    Xte, Yte, head = _rows(test)
    if len(Xtr) < 2 or len(Xte) < 1:
        raise ValueError(f"need at least 2 training hands and 1 test hand, got {len(Xtr)} and {len(Xte)}")
    Xc = Xtr - Xtr.mean(0)
    best = None
    for a in alphas:  # leave-one-out residuals of ridge in closed form: r_i / (1 - H_ii)
        H = Xc @ np.linalg.solve(Xc.T @ Xc + a * np.eye(Xc.shape[1]), Xc.T) + 1.0 / len(Xc)
        W, b = ridge_fit(Xtr, Ytr, a)
        r = (Ytr - (Xtr @ W + b)) / np.clip(1.0 - np.diag(H), 1e-6, None)[:, None]
        loo = _mpjpe(Ytr - r, Ytr)
        if best is None or loo < best[0]:
            best = (loo, a)
    W, b = ridge_fit(Xtr, Ytr, best[1])
    return {"probe": _mpjpe(Xte @ W + b, Yte), "mean_pose": _mpjpe(np.broadcast_to(Ytr.mean(0), Yte.shape), Yte),
            "head": _mpjpe(head, Yte), "alpha": best[1], "num_train": len(Xtr), "num_test": len(Xte),
            "dim": Xtr.shape[1]}
