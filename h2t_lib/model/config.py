"""Model configuration: one plain dataclass, presets from a CPU toy to the paper's Table 5 grid.

``ModelConfig.preset(name)`` gives a ready config; variants are one changed field away::

    cfg = ModelConfig.preset("tiny")
    joint_cfg = dataclasses.replace(cfg, tokens="joint")          # Table 6
    coarse_only = dataclasses.replace(cfg, use_pqe=False)         # Table 4, row 2
    no_kgff = dataclasses.replace(cfg, use_kgff=False)            # Table 4, row 3

Notation follows the paper (Sec. 3). The backbone (a torchvision ResNet) has four
*levels* ``layer1..layer4`` with strides 4, 8, 16, 32. Stage ``i`` of the model
(``i = 1`` is the coarse predictor, ``i = 2..N`` the refiner stages) reads the
feature map ``F_i`` of backbone level ``levels[i - 1]`` (later stages reuse the last
entry). By default ``levels = (4, 3, 2)``: the coarse predictor sees the deepest,
most semantic map (the paper's "only f_1 is used"), and each refinement goes one
level finer, where the 3x3 keypoint patches (Fig. 3) cover less of the image.

Per-level widths are 4-tuples indexed by level (``feat_len[3]`` is level 4):

* ``feat_len``      c_i*  length of the extractor feature f_i (Eq. 5)
* ``feat_channels`` c~_i  channels kept whole and flattened in f_i,2 (Eq. 3)
* ``kpt_channels``  c~_i  channels sampled around the keypoints by KGFF (Sec. 3.4)

``validate()`` (run on construction) checks they fit: ``c_i* >= c_i + h_i w_i c~_i``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

#: channels of the four ResNet levels (layer1..layer4) per backbone
BACKBONE_CHANNELS = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
}
#: stride of the four levels with respect to the input image
LEVEL_STRIDES = (4, 8, 16, 32)
TOKEN_KINDS = ("hand", "joint")
ROOT_SOURCES = ("gt", "pred")
#: where the wrists' crop pixel comes from (ours): the hand tokens (RootHead) or a stride-8 heatmap head
WRIST_HEADS = ("tokens", "heatmap")

#: the paper's model sizes in millions of parameters (Table 5: hand tokens; Table 6: joint tokens, d = 256)
PAPER_SIZES_M = {
    ("r34-d128", "hand"): 24.9,
    ("r34-d256", "hand"): 31.7,
    ("r34-d512", "hand"): 46.9,
    ("r50-d128", "hand"): 29.1,
    ("r50-d256", "hand"): 35.9,
    ("r50-d512", "hand"): 51.1,
    ("r34-d256", "joint"): 95.1,
    ("r50-d256", "joint"): 99.4,
}

#: fields that do not shape the weights (ignored when matching a checkpoint to a config; the
#: seed only draws values, and those are stored in the checkpoint)
RUNTIME_FIELDS = ("name", "backbone_weights", "root_source", "dropout", "seed")


@dataclass
class ModelConfig:
    """Everything that defines a Handformer2T (see the module docstring for the notation).

    Used in notebooks 03 and 06.
    """

    name: str = "custom"  # the preset this config started from (informational, used in messages)
    # --- input and backbone (Sec. 3.1)
    image_size: int = 256  # S: input crops are (3, S, S), values in [0, 1]
    backbone: str = "resnet50"  # "resnet18" | "resnet34" | "resnet50" (torchvision, never downloaded)
    backbone_weights: Optional[str] = None  # path of a torchvision ResNet state dict (e.g. ImageNet), or None
    levels: tuple = (4, 3, 2)  # backbone level read by stage 1, 2, ... (later stages reuse the last)
    feat_len: tuple = (0, 2560, 2560, 2560)  # c_i* per level 1..4 (Eq. 5); 0 = level unused
    feat_channels: tuple = (0, 1, 4, 4)  # c~_i of Eq. 3 per level
    kpt_channels: tuple = (0, 2, 2, 2)  # c~_i of the KGFF patches per level (Sec. 3.4)
    patch_size: int = 3  # KGFF patch (the paper fixes 3x3)
    # --- tokens and transformer (Sec. 3.2-3.4)
    dim: int = 256  # c_e: token width
    tokens: str = "hand"  # "hand" (2 tokens, the paper's) | "joint" (42 tokens, Table 6)
    num_stages: int = 2  # N: 1 coarse + (N - 1) refiner stages
    num_layers: int = 3  # L: MHSA layers of the coarse predictor (Eq. 9)
    num_heads: int = 8
    ffn_mult: int = 4  # feed-forward width = ffn_mult * dim in every attention layer
    query_hidden: int = 1280  # hidden width of the KGFF query MLPs (Eq. 16)
    head_hidden: int = 256  # hidden width of the output heads (Eq. 12) and the root head
    dropout: float = 0.0
    # --- switches (Table 4) and behaviour
    use_pqe: bool = True  # False: coarse prediction only (N is then effectively 1)
    use_kgff: bool = True  # False: PQE queries come from f_i instead of keypoint-guided features
    detach_between_stages: bool = True  # stage i sees p^(i-1) without its gradient (as Poseur)
    refine_residual: bool = False  # True: stage i predicts p^(i-1) + delta (the paper: p^(i) directly), the delta
    #                                starting near zero (a refiner that starts as the identity)
    root_source: str = "gt"  # what KGFF projects with when root_cam is given: "gt" (it) or "pred"
    # --- our wrist head (not in the paper, which projects with the ground-truth root)
    wrist_head: str = "tokens"  # the wrists' crop pixel from "tokens" (RootHead on the hand tokens) or "heatmap"
    #                             (WristHeatmapHead: stride-8 maps of levels 2 + 3); the depth always from RootHead
    wrist_width: int = 64  # channels of the heatmap head's neck
    hand_presence: bool = False  # ours: a logit per hand, "this hand is in the image", from its token (BCE; as
    #                              InterNet's hand-type head); it makes the tokens tell a right hand from a left
    # --- scales
    norm_mm: float = 200.0  # heads predict coordinates / norm_mm; sigma u is in these units
    root_extent_mm: float = 300.0  # assumed metric width of the crop, sets the root head's depth scale
    seed: int = 0  # draws the fixed random channel / element indices (and the initial weights)

    def __post_init__(self):
        for name in ("levels", "feat_len", "feat_channels", "kpt_channels"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, tuple(value))
        self.validate()

    # ------------------------------------------------------------------ derived
    @property
    def num_joint_tokens(self) -> int:
        """Tokens per image: 2 (one per hand) or 42 (one per joint)."""
        return 2 if self.tokens == "hand" else 42

    @property
    def effective_stages(self) -> int:
        """Stages that actually run: N, or 1 when the pose query enhancer is switched off."""
        return self.num_stages if self.use_pqe else 1

    @property
    def channels(self) -> tuple:
        """c_i of the four backbone levels."""
        return BACKBONE_CHANNELS[self.backbone]

    def stage_level(self, stage: int) -> int:
        """Backbone level (1..4) read by stage ``stage`` (0-based: 0 = coarse predictor)."""
        return self.levels[min(stage, len(self.levels) - 1)]

    def used_levels(self) -> tuple:
        """Sorted backbone levels read by the stages that run."""
        return tuple(sorted({self.stage_level(i) for i in range(self.effective_stages)}))

    def level_size(self, level: int) -> int:
        """h_i = w_i of a level's feature map for this image size."""
        return self.image_size // LEVEL_STRIDES[level - 1]

    def feature_parts(self, level: int) -> tuple:
        """Lengths (c_i, h_i w_i c~_i, rest) of f_i,1, f_i,2, f_i,3 for a level (Eq. 2-4)."""
        c = self.channels[level - 1]
        hw = self.level_size(level) ** 2
        n2 = hw * self.feat_channels[level - 1]
        return c, n2, self.feat_len[level - 1] - c - n2

    # ------------------------------------------------------------------ checks
    def validate(self) -> "ModelConfig":
        """Raise ValueError naming the problem and the fix; return self when all is well."""

        def bad(msg):
            raise ValueError(f"ModelConfig({self.name!r}): {msg}")

        if self.backbone not in BACKBONE_CHANNELS:
            bad(f"backbone={self.backbone!r} is not supported; use one of {sorted(BACKBONE_CHANNELS)}")
        if self.tokens not in TOKEN_KINDS:
            bad(f"tokens={self.tokens!r}; use 'hand' (the paper's two tokens) or 'joint' (42 tokens, Table 6)")
        if self.root_source not in ROOT_SOURCES:
            bad(f"root_source={self.root_source!r}; use 'gt' or 'pred'")
        if self.wrist_head not in WRIST_HEADS:
            bad(f"wrist_head={self.wrist_head!r}; use one of {WRIST_HEADS}")
        if self.wrist_head == "heatmap" and int(self.wrist_width) < 1:
            bad(f"wrist_width={self.wrist_width} must be >= 1")
        if not isinstance(self.image_size, int) or self.image_size < 32 or self.image_size % 32:
            bad(f"image_size={self.image_size} must be a multiple of 32 (the ResNet's total stride), e.g. 64, 128, 256")
        for name in ("dim", "num_stages", "num_heads", "ffn_mult", "query_hidden", "head_hidden", "patch_size"):
            if int(getattr(self, name)) < 1:
                bad(f"{name}={getattr(self, name)} must be >= 1")
        if self.num_layers < 0:
            bad(f"num_layers={self.num_layers} must be >= 0")
        if self.dim % self.num_heads:
            bad(f"dim={self.dim} must be divisible by num_heads={self.num_heads}")
        if self.patch_size % 2 == 0:
            bad(f"patch_size={self.patch_size} must be odd so the patch is centred on the keypoint")
        if not 0.0 <= self.dropout < 1.0:
            bad(f"dropout={self.dropout} must be in [0, 1)")
        if self.norm_mm <= 0 or self.root_extent_mm <= 0:
            bad("norm_mm and root_extent_mm must be positive (millimetres)")
        for name in ("feat_len", "feat_channels", "kpt_channels"):
            if len(getattr(self, name)) != 4:
                bad(f"{name} must have 4 entries, one per backbone level layer1..layer4, got {getattr(self, name)}")
        if not self.levels or any(lv not in (1, 2, 3, 4) for lv in self.levels):
            bad(f"levels={self.levels}: entries must be backbone levels 1..4 (layer1..layer4)")
        for level in self.used_levels():
            i = level - 1
            c, n2, n3 = self.feature_parts(level)
            hw = self.level_size(level) ** 2
            ct = self.feat_channels[i]
            if not 0 <= ct <= c:
                bad(f"feat_channels[level {level}]={ct} must be between 0 and c_i={c}")
            if n3 < 0:
                bad(
                    f"feat_len[level {level}]={self.feat_len[i]} is shorter than c_i + h_i w_i c~_i = "
                    f"{c} + {hw}*{ct} = {c + n2} (Eq. 3-5 at image_size={self.image_size}); "
                    f"raise feat_len to >= {c + n2} or lower feat_channels"
                )
            if n3 > (c - ct) * hw:
                bad(
                    f"feat_len[level {level}]={self.feat_len[i]} asks for {n3} extra elements (Eq. 4) but only "
                    f"{(c - ct) * hw} are left in the feature map; lower feat_len or raise feat_channels"
                )
        if self.wrist_head == "heatmap" and max(self.used_levels()) < 3:
            bad(f"wrist_head='heatmap' reads backbone levels 2 and 3, but the stages read only up to level "
                f"{max(self.used_levels())} (levels={self.levels}); add level 3 or use wrist_head='tokens'")
        if self.effective_stages > 1 and self.use_kgff:
            for s in range(1, self.effective_stages):
                level = self.stage_level(s)
                k = self.kpt_channels[level - 1]
                if not 1 <= k <= self.channels[level - 1]:
                    bad(f"kpt_channels[level {level}]={k} must be between 1 and c_i={self.channels[level - 1]}")
        return self

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown ModelConfig fields {unknown}: the config was written by another h2t version; "
                f"known fields are {sorted(known)}"
            )
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides) -> "ModelConfig":
        """A named preset (see ``PRESETS``), optionally with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
        cfg = PRESETS[name]()
        return dataclasses.replace(cfg, **overrides) if overrides else cfg

    def arch_dict(self) -> dict:
        """The fields that shape the weights (used to match a checkpoint to a config)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}


# ---------------------------------------------------------------------- presets
def _tiny() -> ModelConfig:
    # ResNet-18 at 64 px: maps 16, 8, 4, 2 px; forward + backward of a batch of 8 in well under a second on CPU.
    return ModelConfig(
        name="tiny", image_size=64, backbone="resnet18", levels=(4, 3),
        feat_len=(0, 0, 512, 768), feat_channels=(0, 0, 4, 16), kpt_channels=(0, 0, 2, 2),
        dim=32, num_stages=2, num_layers=1, num_heads=2, ffn_mult=2, query_hidden=64, head_hidden=64,
        norm_mm=200.0,
    )


def _cpu() -> ModelConfig:
    # ResNet-18 at 128 px, cut after layer3 (maps 32, 16, 8 px): trainable on a 2-core laptop in
    # about half an hour, and small enough to ship (fp16 weights under 20 MB). Stage 1 reads layer3,
    # the two refiner stages layer2 and layer1 (one level finer each: our choice, the paper names no levels).
    return ModelConfig(
        name="cpu", image_size=128, backbone="resnet18", levels=(3, 2, 1),
        feat_len=(1024, 1024, 1024, 0), feat_channels=(0, 2, 8, 0), kpt_channels=(2, 2, 2, 0),
        dim=128, num_stages=3, num_layers=2, num_heads=4, ffn_mult=2, query_hidden=256, head_hidden=128,
    )


def _paper_grid(backbone: str, dim: int):
    def make() -> ModelConfig:
        return ModelConfig(
            name=f"r{backbone[-2:]}-d{dim}", image_size=256, backbone=backbone, levels=(4, 3, 2),
            dim=dim, num_heads=8,
        )

    return make


PRESETS = {
    "tiny": _tiny,
    "cpu": _cpu,
    "paper": _paper_grid("resnet50", 256),  # an alias: the paper's main model is R50 with d = 256
    **{f"r{b[-2:]}-d{d}": _paper_grid(b, d) for b in ("resnet34", "resnet50") for d in (128, 256, 512)},
}
