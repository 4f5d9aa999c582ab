"""The main job end to end: ``python -m h2t_lib demo`` (what ``make demo`` runs).

1. Render a synthetic two-hand set (train and test splits, fixed seeds) into ``runs/demo_data``;
   skipped when it is already there and complete.
2. Load the shipped checkpoint ``data/checkpoints/h2t_cpu.pt`` of the checkout, found from any working
   directory (trained with the ``cpu`` preset, see docs/results.md); without it, train a short ``cpu``
   run instead (said so).
3. Evaluate it on the test split: MPJPE of every stage and the two reference rows.
4. Fine-tune it for a few minutes on the demo's training split (a new sample of the same
   distribution), learning rate warmed up from zero; the log and the loss curve land in
   ``runs/demo_finetune`` (the demo's own folder: an earlier demo's run there is replaced). The
   shipped model's own training curve (stored in the checkpoint) is printed and plotted too (its
   last leg's: docs/results.md lists every leg); the fine-tune continues from where that ended, so
   its loss moves little and the demo says whether the change exceeds the step-to-step noise.
5. Evaluate again and print both tables.

Under 15 minutes on a 2-core CPU; ``H2T_FAST=1`` shrinks every step to seconds.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from h2t_lib.utils import SHIPPED_CHECKPOINT as SHIPPED, atomic_write_json, check_writable, is_fast


@dataclasses.dataclass
class DemoConfig:
    """Sizes of the demo (full, or shrunk by H2T_FAST=1)."""

    num_train: int = 1000
    num_test: int = 400
    render_size: int = 256  # rendered image size (the loader crops the hands and resizes to the model's input)
    train_seed: int = 301  # data seeds differ from the shipped model's training, validation and test data (docs/results.md)
    test_seed: int = 302
    finetune_epochs: int = 4
    finetune_steps: int = 40  # steps of 32 images per epoch
    finetune_lr: float = 1e-4
    fallback_epochs: int = 4  # epochs of the short run when no checkpoint is shipped
    fallback_steps: int = 40

    @classmethod
    def fast(cls) -> "DemoConfig":
        return cls(num_train=16, num_test=8, render_size=64, finetune_epochs=2, finetune_steps=2,
                   fallback_epochs=1, fallback_steps=2)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def _marker(data_dir: Path, split: str) -> Path:
    return data_dir / f".demo_{split}_complete.json"


def ensure_split(data_dir: Path, split: str, num: int, size: int, seed: int, progress: bool = True,
                 style: str | None = None) -> bool:
    """Render one split unless a complete one with the same parameters is there. True if rendered.

    style: the renderer's look (None: ``synth.DEFAULT_STYLE``); a split rendered in another look or an
    earlier revision of it (``synth.LOOK_REVISION``), or before the look was recorded (the first look,
    v1), is rendered again."""
    from h2t_lib.data import synth

    style = synth.check_style(style or synth.DEFAULT_STYLE)
    want = {"split": split, "num": num, "size": size, "seed": seed, "style": style,
            "revision": synth.LOOK_REVISION[style]}
    marker = _marker(data_dir, split)
    ann = data_dir / "annotations" / "all" / f"InterHand2.6M_{split}_data.json"
    if marker.exists() and ann.exists():
        try:
            if json.loads(marker.read_text()) == want:
                return False
        except (OSError, ValueError):
            pass
    synth.write_dataset(data_dir, split=split, num=num, size=size, seed=seed, progress=progress, style=style)
    atomic_write_json(marker, want)
    return True


# ---------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------
def _loss_trend(history: dict) -> str:
    """The running loss at the start vs the end of a run, judged against its step-to-step noise."""
    steps = np.array([s["total"] for s in history.get("steps", [])])
    if len(steps) < 4:
        return "too few steps to show a trend"
    k = max(2, len(steps) // 4)
    first, last = steps[:k], steps[-k:]
    diff = float(last.mean() - first.mean())
    noise = float(np.sqrt(first.var(ddof=1) / k + last.var(ddof=1) / k))  # std error of the difference
    verdict = "down" if diff < -2 * noise else "up" if diff > 2 * noise else "flat within the noise"
    return (f"running loss {first.mean():.2f} (first {k} log points) -> {last.mean():.2f} (last {k}): "
            f"{verdict} (change {diff:+.2f} +- {noise:.2f})")


def prior_training(extra: dict) -> str | None:
    """How much the loaded model was trained, in words, from what its checkpoint records: its image
    presentations (``presentations``, ours, written when it was shipped) and its ``legs``; None when
    it records neither (e.g. the short run the demo trains without a shipped model)."""
    legs = extra.get("legs") or []
    n = extra.get("presentations")
    if n:
        return f"{n / 1000:.0f}k image presentations" + (f" in {len(legs)} legs" if len(legs) > 1 else "")
    return f"{len(legs)} training legs" if len(legs) > 1 else None


def mpjpe_change(before: dict, after: dict, steps: int, num_train: int, prior: str | None = None) -> str:
    """One sentence: did the final stage's error change beyond the noise, and if not, why not.

    before / after: :func:`h2t_lib.engine.evaluate.evaluate` results on the same test samples. The noise is the
    standard error of the paired per-sample difference (mm); "improved" needs a fall of 2 of them.
    prior: how much the starting model was trained (:func:`prior_training`); None: not known.
    """
    b = np.asarray(before["per_sample"]["error"][before["num_stages"] - 1], dtype=float)
    a = np.asarray(after["per_sample"]["error"][after["num_stages"] - 1], dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    if d.size < 2:
        return "too few test samples to tell a change from noise"
    diff, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))
    head = f"change {diff:+.2f} mm +- {se:.2f} (standard error over {d.size} test samples, paired): "
    if diff < -2 * se:
        return head + "the fine-tuning improved the final stage."
    own = f"the shipped model's own training ({prior}, docs/results.md)" if prior else "the starting model's own training"
    why = (f"{steps} steps of a small learning rate on {num_train} images of the same renderer are little next to {own}; "
           "the demo shows the loop running, a longer run (python -m h2t_lib train --init ... --epochs N) is what moves "
           "the numbers.")
    if diff > 2 * se:
        return head + "worse after fine-tuning: " + why
    return head + "no change beyond the noise: " + why


def main_job(data_dir="runs/demo_data", out_dir="runs/demo_finetune", ckpt=SHIPPED, device="auto",
             fast=None, progress=True) -> dict:
    """Steps 1-5 of the module docstring; returns {"before": eval dict, "after": eval dict, "history": ...}."""
    from h2t_lib.engine.evaluate import evaluate, format_table, load_model
    from h2t_lib.data.loading import open_dataset
    from h2t_lib.engine.train import TrainConfig, train
    from h2t_lib.utils import resolve_device

    fast = is_fast() if fast is None else fast
    cfg = DemoConfig.fast() if fast else DemoConfig()
    data_dir, out_dir, ckpt = check_writable(data_dir, folder=True), check_writable(out_dir, folder=True), Path(ckpt)
    device = resolve_device(device)
    t_start = time.time()

    print(f"[1/5] synthetic data in {data_dir} ({cfg.num_train} train + {cfg.num_test} test images, {cfg.render_size} px)")
    for split, num, seed in (("train", cfg.num_train, cfg.train_seed), ("test", cfg.num_test, cfg.test_seed)):
        t0 = time.time()
        rendered = ensure_split(data_dir, split, num, cfg.render_size, seed, progress=progress)
        print(f"      {split}: " + (f"rendered in {time.time() - t0:.0f} s" if rendered else "already complete, skipped"))

    print(f"[2/5] model: {ckpt}")
    if ckpt.exists():
        model, extra = load_model(ckpt, device=device)
        init = ckpt
        print(f"      loaded ({model.cfg.name} preset, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters)")
        shipped_history = extra.get("history")
        if shipped_history and shipped_history.get("epochs"):
            # how it was trained: the log stored in the checkpoint, as a curve and in two lines
            from h2t_lib.engine.log import plot_history

            rows = shipped_history["epochs"]
            final = f"val_mpjpe_stage{model.cfg.effective_stages}"
            print(f"      its training (log stored in the checkpoint): {len(rows)} epochs, {rows[-1]['step']} steps; "
                  f"loss {rows[0]['train_total']:.1f} -> {rows[-1]['train_total']:.1f}; "
                  f"val MPJPE {rows[0].get(final, float('nan')):.1f} -> {rows[-1].get(final, float('nan')):.1f} mm")
            print(f"      {_loss_trend(shipped_history)}")
            out_dir.mkdir(parents=True, exist_ok=True)
            plot_history(shipped_history, out_dir / "shipped_training_curve.png")
            print(f"      its training curve: {out_dir / 'shipped_training_curve.png'}")
    else:
        print(f"      {ckpt} is not there (see docs/results.md for how to train it); training a short "
              f"{'tiny' if fast else 'cpu'} run instead")
        short = TrainConfig.preset("tiny" if fast else "cpu", epochs=cfg.fallback_epochs,
                                   steps_per_epoch=cfg.fallback_steps, lr_step=max(1, cfg.fallback_epochs - 1))
        train(short, data_dir, out_dir / "from_scratch", device=str(device), progress=progress, overwrite=True)
        init = out_dir / "from_scratch" / "last.pt"
        model, extra = load_model(init, device=device)

    S = model.cfg.image_size
    test_set = open_dataset(data_dir, "test", S)
    train_set = open_dataset(data_dir, "train", S)
    print(f"[3/5] evaluating on {len(test_set)} test samples")
    before = evaluate(model, test_set, train_dataset=train_set, device=device, progress=progress)
    print(format_table(before))

    print(f"[4/5] fine-tuning for {cfg.finetune_epochs} x {cfg.finetune_steps} steps (lr {cfg.finetune_lr:g}) -> {out_dir}")
    ft = TrainConfig.preset(
        "cpu", init=str(init), model_preset=None, epochs=cfg.finetune_epochs, steps_per_epoch=cfg.finetune_steps, lr=cfg.finetune_lr,
        lr_step=cfg.finetune_epochs, warmup_steps=cfg.finetune_steps, max_val_samples=min(200, cfg.num_test), log_every=5 if not fast else 1,
        batch_size=32 if not fast else 4,
    )
    history = train(ft, data_dir, out_dir, device=str(device), progress=progress, overwrite=True)
    print(f"      {_loss_trend(history)}; loss curve: {out_dir / 'loss_curve.png'}")

    print("[5/5] evaluating the fine-tuned model")
    tuned, _ = load_model(out_dir / "last.pt", device=device)
    after = evaluate(tuned, test_set, train_dataset=train_set, device=device, progress=progress)
    print("\nshipped model:" if ckpt.exists() else "\nshort run:")
    print(format_table(before))
    print("\nafter fine-tuning:")
    print(format_table(after))
    fb, fa = before["rows"][before["num_stages"] - 1]["all"], after["rows"][after["num_stages"] - 1]["all"]
    steps = cfg.finetune_epochs * cfg.finetune_steps
    print(f"\nfinal-stage MPJPE {fb:.2f} -> {fa:.2f} mm after {steps} fine-tuning steps; {_loss_trend(history)}")
    print(mpjpe_change(before, after, steps, cfg.num_train, prior_training(extra)))
    print(f"\ndemo done in {(time.time() - t_start) / 60:.1f} min")
    return {"before": before, "after": after, "history": history}


def add_arguments(p) -> None:
    p.add_argument("--data", default="runs/demo_data", help="where the synthetic data goes (default: runs/demo_data)")
    p.add_argument("--out", default="runs/demo_finetune", help="fine-tuning run directory (default: runs/demo_finetune)")
    p.add_argument("--ckpt", default=None,
                   help="the model to start from (default: the shipped data/checkpoints/h2t_cpu.pt of the h2t checkout)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    main_job(args.data, args.out, args.ckpt or SHIPPED, device=args.device, progress=not args.quiet)
    return 0
