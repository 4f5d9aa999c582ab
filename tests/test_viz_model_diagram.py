"""h2t_lib.course.model_diagram: the paper's Fig. 2 with shapes computed from the model."""
import dataclasses

import pytest

pytest.importorskip("matplotlib")

from h2t_lib.model.config import ModelConfig  # noqa: E402
from h2t_lib.model import Handformer2T  # noqa: E402
from h2t_lib.course.model_diagram import model_figure, model_shapes  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return Handformer2T(ModelConfig.preset("tiny"))


def test_shapes_follow_the_config(tiny):
    cfg = tiny.cfg
    sh = model_shapes(tiny, batch=2)
    assert sh["image"] == (2, 3, cfg.image_size, cfg.image_size)
    assert sh["coarse"]["E"] == (2, 2, cfg.dim)                       # two hand tokens of width d
    assert sh["coarse"]["p"] == (2, 42, 3) and sh["coarse"]["u"] == (2, 42, 1)
    assert len(sh["stages"]) == cfg.effective_stages - 1
    for lvl, L in sh["levels"].items():
        assert L["f"] == (2, cfg.feat_len[lvl - 1])                     # c_i* of Eq. 5
    for i, st in enumerate(sh["stages"], start=1):
        stage = tiny.stages[i]
        if stage.kgff is not None:                                      # Fig. 3: 9 J c~ + c per hand
            assert st["f_kpt"] == (2, 2, stage.kgff.out_dim)
        assert st["E_out"] == (2, 2, cfg.dim)
    assert tiny.training                                                # the mode is given back


def test_joint_tokens_change_the_shapes():
    cfg = dataclasses.replace(ModelConfig.preset("tiny"), tokens="joint")
    sh = model_shapes(Handformer2T(cfg))
    assert sh["coarse"]["E"][1] == 42


def test_figure_labels_every_stage_with_its_shapes(tiny):
    sh = model_shapes(tiny)
    text = "\n".join(t.get_text() for t in model_figure(sh).axes[0].texts)
    assert "(B, 2, %d)" % tiny.cfg.dim in text
    for s in range(2, tiny.cfg.effective_stages + 1):
        assert f"stage {s}" in text and f"p({s}) (B, 42, 3)" in text
