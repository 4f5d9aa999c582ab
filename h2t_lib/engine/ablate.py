"""The paper's ablations (Tables 4, 5, 6) as equal-budget runs: ``python -m h2t_lib ablate --data DIR``.

Every row trains the same small model family for the same number of steps on the same
synthetic data, with one thing changed, and is evaluated on the same test images:

* Table 4: MMD loss (Eq. 20), pose query enhancer (PQE, Sec. 3.4) and keypoint-guided feature
  fusion (KGFF) switched on and off, the paper's five rows. "PQE off" means the coarse
  prediction p^(1) is the output (``use_pqe=False``); "KGFF off" means the PQE queries come
  from the plain feature vector f_i (``use_kgff=False``).
* Table 5: backbone (ResNet-18 / ResNet-34, standing in for the paper's ResNet-34 / ResNet-50)
  x token width c_e (32 / 64 / 128, the paper's 128 / 256 / 512 divided by 4).
* Table 6: hand-level (2) vs joint-level (42) tokens at c_e = 64, for both backbones.

The base model is the ``tiny`` preset (64 px crops) at c_e = 64; a run is ``epochs x steps``
of ``batch`` images (the paper's step decay scaled to the run, or ``--schedule cosine``: warm-up and
cosine, the recipe of the shipped model). The base row is trained with extra seeds too, so the table
says how much two runs that differ only in their seed differ: a difference smaller than that spread
is not a finding.

From scratch, a CPU budget leaves the coarse stage at the mean pose in every row, so the tables
measure only the refiner. A ResNet usually starts from pretrained (e.g. ImageNet) weights (the paper
does not say what its ResNet starts from); nothing can be downloaded here, so
``--preset cpu --init-backbone data/checkpoints/h2t_cpu.pt`` (ours) starts every row's backbone from
the shipped model's and everything else fresh (rows with another backbone, Tables 5-6's ResNet-34,
are skipped). That backbone was trained inside the full model, which may favour the full model's rows.

Runs that finished keep ``<out>/<run>/result.json``; running the command again skips them,
so a killed ablation continues where it stopped; ``--shard K/N`` runs every N-th run only, so N
processes can share the work (run once more without it to write the table). The table is written
(atomically) as ``--json`` (default ``<out>/ablations.json``) in the format notebook 09 reads.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Optional

from h2t_lib.utils import atomic_write_json, is_fast

#: the base model of every row: the tiny preset at c_e = 64
BASE = {"dim": 64}

#: (table, row label, ModelConfig overrides on top of BASE, LossConfig overrides)
ROWS = [
    ("4", "MMD - / PQE - / KGFF -", {"use_pqe": False, "use_kgff": False}, {"use_mmd": False}),
    ("4", "MMD + / PQE - / KGFF -", {"use_pqe": False, "use_kgff": False}, {}),
    ("4", "MMD + / PQE + / KGFF -", {"use_kgff": False}, {}),
    ("4", "MMD - / PQE + / KGFF +", {}, {"use_mmd": False}),
    ("4", "MMD + / PQE + / KGFF +", {}, {}),
    *[("5", f"{bb} / c_e {d}", {"backbone": bb, "dim": d}, {})
      for bb in ("resnet18", "resnet34") for d in (32, 64, 128)],
    *[("6", f"{tok} tokens / {bb}", {"backbone": bb, "tokens": tok}, {})
      for tok in ("hand", "joint") for bb in ("resnet18", "resnet34")],
]


@dataclasses.dataclass
class Budget:
    """What every run gets: ``epochs x steps`` updates of ``batch`` images, evaluated on ``num_test``."""

    epochs: int = 4
    steps: int = 50
    batch: int = 16
    num_test: int = 500
    extra_seeds: int = 2  # additional runs of the base row, to measure the seed-to-seed spread
    preset: str = "tiny"  # model preset of every row ("tiny" at c_e 64, or "cpu" as it is)
    schedule: str = "step"  # "step" (the paper's decay, scaled) | "cosine" (warm-up + cosine, the shipped recipe)
    init_backbone: Optional[str] = None  # backbone weights for every row (TrainConfig.init_backbone); Table 4 only

    @classmethod
    def fast(cls) -> "Budget":
        return cls(epochs=1, steps=2, batch=4, num_test=8, extra_seeds=1)

    def describe(self) -> str:
        from h2t_lib.model.config import ModelConfig

        size = ModelConfig.preset(self.preset).image_size
        init = f", backbone from {self.init_backbone}" if self.init_backbone else ", from scratch"
        return (f"{self.epochs} x {self.steps} steps of {self.batch} images per run "
                f"({self.epochs * self.steps * self.batch} images), {self.preset} preset at {size} px, "
                f"{self.schedule} schedule{init}")

    def base_model(self) -> dict:
        """ModelConfig overrides every row starts from: c_e = 64 for the tiny preset, none for the others."""
        return dict(BASE) if self.preset == "tiny" else {}


def run_key(model_over: dict, loss_over: dict, seed: int, base: Optional[dict] = None, preset: str = "tiny") -> str:
    """A folder name that identifies a configuration (rows with the same config share one run)."""
    from h2t_lib.model.config import ModelConfig

    ref = ModelConfig.preset(preset)
    base = BASE if base is None else base
    m = {k: v for k, v in {**base, **model_over}.items() if getattr(ref, k) != v}  # only what differs
    loss_over = {k: v for k, v in loss_over.items() if v is not True}  # use_mmd=True is the default
    parts = [f"{k}={m[k]}" for k in sorted(m)] + [f"loss.{k}={loss_over[k]}" for k in sorted(loss_over)]
    return "_".join(p.replace("resnet", "r").replace("use_", "") for p in parts) + f"_seed{seed}"


def train_and_evaluate(data_dir, run_dir, model_over: dict, loss_over: dict, seed: int, budget: Budget,
                       device: str = "auto") -> dict:
    """One run: train (or reuse a finished ``result.json``), evaluate on the test split, return the result."""
    from h2t_lib.engine.evaluate import evaluate, load_model
    from h2t_lib.data.loading import open_dataset
    from h2t_lib.engine.train import TrainConfig, train
    from h2t_lib.engine.config import _scaled_step

    run_dir = Path(run_dir)
    done = run_dir / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    total = budget.epochs * budget.steps
    cosine = {"lr_schedule": "cosine", "warmup_steps": min(100, total // 10)} if budget.schedule == "cosine" else {}
    loss = {"root_weight": 10.0, **loss_over} if budget.schedule == "cosine" else dict(loss_over)  # the cpu recipe's
    cfg = TrainConfig(
        name="ablation", model_preset=budget.preset, model={**budget.base_model(), **model_over}, loss=loss,
        epochs=budget.epochs, steps_per_epoch=budget.steps, batch_size=budget.batch,
        lr_step=_scaled_step(budget.epochs), val_split="", seed=seed, num_workers=0,
        log_every=max(1, budget.steps // 5), init_backbone=budget.init_backbone, **cosine,
    )
    t0 = time.time()
    train(cfg, data_dir, run_dir, resume=(run_dir / "last.pt").exists(), device=device, progress=False,
          verbose=False)
    minutes = (time.time() - t0) / 60
    model, _ = load_model(run_dir / "last.pt", device=device)
    test = open_dataset(data_dir, "test", image_size=model.cfg.image_size)
    if budget.num_test and len(test) > budget.num_test:
        import torch.utils.data as tud

        test = tud.Subset(test, range(budget.num_test))
    train_set = open_dataset(data_dir, "train", image_size=model.cfg.image_size)  # for the mean-pose row
    res = evaluate(model, test, train_dataset=train_set, root_source="gt")
    n = res["num_stages"]
    final, coarse = res["rows"][n - 1], res["rows"][0]
    result = {
        "config": {**budget.base_model(), **model_over}, "loss": dict(loss_over), "seed": seed,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "mpjpe_s": round(final["single"], 2), "mpjpe_i": round(final["interacting"], 2),
        "mpjpe": round(final["all"], 2), "coarse_mpjpe": round(coarse["all"], 2),
        "num_test": res["num_samples"], "minutes": round(minutes, 2), "device": _device_name(device),
        "mean_pose_mpjpe": next((round(r["all"], 2) for r in res["rows"] if r["name"].startswith("reference: mean")), None),
    }
    atomic_write_json(done, result)
    return result


def seed_spread(values) -> float:
    """Half the range (max - min) / 2 of the base row's final MPJPE over its seeds."""
    return (max(values) - min(values)) / 2 if len(values) > 1 else 0.0


def ablate(data_dir, out_dir, budget: Budget | None = None, device: str = "auto", tables=("4", "5", "6"),
           json_path=None, progress: bool = True, shard=(0, 1)) -> Optional[dict]:
    """Run every row of the chosen tables (each configuration once) and write the table JSON.

    ``shard`` (k, n): run only every n-th configuration starting at k, and write no table (returns
    None); n processes with k = 0..n-1 share the work. Raises ValueError for ``init_backbone`` with
    tables other than 4 (they change the backbone)."""
    from tqdm.auto import tqdm

    from h2t_lib.model.config import ModelConfig

    budget = budget or (Budget.fast() if is_fast() else Budget())
    out_dir = Path(out_dir)
    rows = [r for r in ROWS if r[0] in tables]
    base = budget.base_model()
    skipped = []
    if budget.init_backbone:  # a trained backbone fits only the rows that keep the preset's backbone
        own = ModelConfig.preset(budget.preset).backbone
        skipped = [label for _, label, m, _ in rows if m.get("backbone", own) != own]
        rows = [r for r in rows if r[2].get("backbone", own) == own]

    def key_of(m, l, seed):
        return run_key(m, l, seed, base, budget.preset)

    keys = {}
    for _, _, m, l in rows:
        keys.setdefault(key_of(m, l, 0), (m, l, 0))
    for s in range(1, budget.extra_seeds + 1):
        keys.setdefault(key_of({}, {}, s), ({}, {}, s))
    k, n = shard
    mine = {key: v for i, (key, v) in enumerate(keys.items()) if i % n == k}
    results = {}
    for key, (m, l, seed) in tqdm(mine.items(), desc=f"ablation runs (shard {k + 1}/{n})", disable=not progress):
        results[key] = train_and_evaluate(data_dir, out_dir / key, m, l, seed, budget, device)
    if n > 1:
        return None
    base_seeds = [results[key_of({}, {}, s)]["mpjpe"] for s in range(budget.extra_seeds + 1)]
    devices = sorted({r.get("device") or _device_name(device) for r in results.values()})
    extra = (f" --preset {budget.preset}" if budget.preset != "tiny" else "") + (
        f" --schedule {budget.schedule}" if budget.schedule != "step" else "") + (
        f" --init-backbone {budget.init_backbone}" if budget.init_backbone else "")
    table = {
        "command": (f"python -m h2t_lib ablate --data {data_dir} --out {out_dir} --tables {','.join(tables)} "
                    f"--epochs {budget.epochs} --steps {budget.steps} --batch {budget.batch} "
                    f"--num-test {budget.num_test} --extra-seeds {budget.extra_seeds}{extra}"),
        "device": "; ".join(devices), "budget": budget.describe(),
        "base_seed_mpjpe": base_seeds, "seed_spread_mm": round(seed_spread(base_seeds), 2),
        # a run shared by several rows is reported with each row's own config (e.g. Table 5's
        # "resnet18 / c_e 64" names its backbone, Table 4's full model does not)
        "mean_pose_mpjpe": next(iter(results.values())).get("mean_pose_mpjpe"), "skipped": skipped,
        "rows": [{"table": t, "row": label, **results[key_of(m, l, 0)], "config": {**base, **m}, "loss": dict(l)}
                 for t, label, m, l in rows],
    }
    atomic_write_json(json_path or out_dir / "ablations.json", table)
    return table


def _device_name(device: str) -> str:
    import platform

    import torch

    from h2t_lib.utils import resolve_device

    d = resolve_device(device)
    if d.type == "cuda":
        return torch.cuda.get_device_name(d)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def format_table(table: dict) -> str:
    """The rows as a markdown table, grouped by the paper's table."""
    lines = [f"budget: {table['budget']}; device: {table['device']}",
             f"base row over seeds: {table['base_seed_mpjpe']} mm (spread +- {table['seed_spread_mm']} mm); "
             f"mean training pose: {table.get('mean_pose_mpjpe')} mm", "",
             "| table | row | params (M) | coarse MPJPE | MPJPE-S | MPJPE-I | MPJPE |",
             "|---|---|---|---|---|---|---|"]
    for r in table["rows"]:
        lines.append(f"| {r['table']} | {r['row']} | {r['params_m']:.2f} | {r['coarse_mpjpe']:.2f} | "
                     f"{r['mpjpe_s']:.2f} | {r['mpjpe_i']:.2f} | {r['mpjpe']:.2f} |")
    return "\n".join(lines)
