"""Training throughput: ``python -m h2t_lib train-speed --preset cpu --data DIR --threads 1 2``.

Where does a training step's time go? For each torch thread count it measures, in images/s:

* **backbone**: forward + backward of the bare ResNet trunk the model uses (the levels its stages
  read), on an in-memory batch: the ceiling, as every Handformer2T step runs this trunk;
* **model step**: forward + loss (Eq. 21 + our terms) + backward + Adam step of the whole model, same batch;
* **data**: the training loader alone (decode, crop, augment) with ``--workers`` DataLoader workers;
  with ``--render``, samples rendered on the fly (``train --render``) instead of read from ``--data``;
* **train loop**: the two together, as ``train`` runs them (loader -> step).

``model step / backbone`` says how much the tokenizers, transformer and refiner stages add;
``train loop / model step`` how much the data pipeline costs. A benchmark, not a test: the numbers
depend on the machine and on what else runs on it (printed with the CPU name).
Results: a table on stdout and ``--json OUT``.
"""
from __future__ import annotations

import time

import torch



def _rate(fn, batch: int, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return batch * steps / (time.perf_counter() - t0)


def loader_speed(dataset, batch: int, batches: int, workers: int, group: int = 1, device="cpu") -> dict:
    """Images per second of the training loader over ``dataset``, as ``train`` builds it; with no workers
    also per CPU-second (this process's CPU time, so other load on the machine does not count).

    ``batches`` batches of ``batch`` after one untimed batch (the workers' start), a fresh loader with
    ``workers`` workers, the order of :class:`~h2t_lib.data.loading.EpochSampler` with ``group`` (a
    render's ``reuse`` samples together). Returns {"images", "wall_s", "cpu_s", "img_per_s",
    "img_per_cpu_s", "workers", "batch", "group"} (the CPU figures None with workers: they prefetch).
    Raises ValueError when the dataset has fewer than (batches + 1) x batch samples.
    """
    from h2t_lib.data.loading import EpochDataset, EpochSampler, make_loader

    if len(dataset) < (batches + 1) * batch:
        raise ValueError(f"loader_speed: {len(dataset)} samples, fewer than (batches + 1) x batch = {(batches + 1) * batch}")
    sampler = EpochSampler(len(dataset), seed=0, group=group)
    loader = make_loader(EpochDataset(dataset), batch, False, torch.device(device), workers, sampler=sampler,
                         drop_last=True, persistent=False)
    it = iter(loader)
    next(it)
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(batches):
        next(it)
    wall, cpu = time.perf_counter() - t0, (time.process_time() - c0 if workers == 0 else None)
    del it
    n = batches * batch
    return {"images": n, "wall_s": wall, "cpu_s": cpu, "img_per_s": n / wall,
            "img_per_cpu_s": n / cpu if cpu else None, "workers": workers, "batch": batch, "group": group}


def measure(train_cfg, data_dir, threads: int, steps: int, workers: int, render: bool = False,
            precision: str = "fp32") -> dict:
    """images/s of the four parts above for one thread count (see the module docstring).

    ``render``: the data are rendered on the fly (:class:`h2t_lib.data.stream.SynthStream`, ``data_dir`` unused).
    ``precision``: "fp32" or "bf16" (the backbone and the model under autocast, the loss in float32, as ``train``).
    """
    from h2t_lib.data.loading import EpochDataset, make_loader, open_dataset
    from h2t_lib.losses import Handformer2TLoss
    from h2t_lib.model import Handformer2T
    from h2t_lib.model.backbone import ResNetBackbone
    from h2t_lib.engine.train import TrainStep
    from h2t_lib.utils import autocast, resolve_precision

    torch.set_num_threads(threads)
    _, dtype = resolve_precision(precision, "cpu")
    torch.manual_seed(0)
    cfg = train_cfg.model_config()
    B, S = train_cfg.batch_size, cfg.image_size
    if render:
        from h2t_lib.data.stream import SynthStream

        base = SynthStream(max(B * (steps + 2), 64), S, seed=train_cfg.seed, augment=train_cfg.augment)
    else:
        base = open_dataset(data_dir, train_cfg.train_split, S, augment=train_cfg.augment, seed=train_cfg.seed)
    dataset = EpochDataset(base)
    loader = make_loader(dataset, B, True, torch.device("cpu"), workers, drop_last=True, persistent=False)
    batch = next(iter(loader))
    image = batch["image"].contiguous(memory_format=torch.channels_last)

    trunk = ResNetBackbone(cfg.backbone, num_levels=max(cfg.used_levels())).to(memory_format=torch.channels_last)

    def backbone_step():
        with autocast("cpu", dtype):
            maps = trunk(image)
        sum(m.float().mean() for m in maps).backward()

    model = Handformer2T(cfg).to(memory_format=torch.channels_last)
    criterion = Handformer2TLoss(cfg, train_cfg.loss_config())
    opt = torch.optim.Adam(list(model.parameters()) + list(criterion.parameters()), lr=1e-4)
    train_step = TrainStep(model, criterion, dtype, root_noise_px=train_cfg.root_noise_px)

    def model_step(b=batch):
        loss = train_step(b)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    batches = None  # the loader's iterator, made on first use and again at the end of an epoch

    def data_step():
        nonlocal batches
        if batches is None:
            batches = iter(loader)
        try:
            return next(batches)
        except StopIteration:
            batches = iter(loader)
            return next(batches)

    res = {"threads": threads, "precision": precision, "batch": B, "image_size": S, "workers": workers, "render": bool(render),
           "backbone": _rate(backbone_step, B, steps), "model_step": _rate(model_step, B, steps),
           "data": _rate(data_step, B, steps), "train_loop": _rate(lambda: model_step(data_step()), B, steps)}
    return res


def format_table(rows: list) -> str:
    head = "| threads | precision | backbone fwd+bwd | model step | data (workers) | train loop | model / backbone |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r.get('precision', 'fp32')} | {r['backbone']:.1f} | {r['model_step']:.1f} | {r['data']:.1f} ({r['workers']}) "
                     f"| {r['train_loop']:.1f} | {r['model_step'] / r['backbone']:.2f} |")
    source = ", data rendered on the fly" if rows[0].get("render") else ""
    return "\n".join(lines) + "\nimages/s, batch {batch} at {image_size} px, CPU".format(**rows[0]) + source
