"""The benchmark command: `--quick` runs end to end; thop counts attention; the batch search; bad arguments."""
import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from h2t_lib.engine import bench
from h2t_lib.apps import cli


def test_quick_run_table_json_and_params_match_a_direct_count(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = cli.main(["bench", "--quick", "--device", "cpu", "--threads", "1", "--repeats", "1", "--warmup", "0",
                   "--max-batch", "2", "--note", "test run", "--json", str(out)])
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    specs = bench.model_specs(quick=True)
    result = json.loads(out.read_text())
    assert [r["key"] for r in result["rows"]] == list(specs)
    assert result["meta"]["device"] == "cpu" and result["meta"]["torch"] == torch.__version__
    assert result["meta"]["note"] == "test run" and result["meta"]["quick"] is True

    table = bench.format_table(result["rows"])
    assert table in stdout
    lines = table.splitlines()
    assert len(lines) == 2 + len(specs) and len({len(line) for line in lines}) == 1  # aligned columns
    md = out.with_suffix(".md").read_text()

    size = result["meta"]["image_size"]
    for row, spec in zip(result["rows"], specs.values()):
        assert "error" not in row, row
        assert any(line.startswith(spec.label) for line in lines[2:]) and f"| {spec.label} |" in md
        for key in ("params", "params_thop", "gflops", "gflops_torch", "fps", "fps_best", "peak_mem_mb",
                    "max_batch", "throughput", "throughput_best", "peak_mem_max_mb"):
            assert isinstance(row[key], (int, float)) and row[key] > 0, (spec.key, key, row[key])
        assert 1 <= row["max_batch"] <= 2
        # the params column is a direct count of the model's parameters ...
        model = bench.build_model(row, size)
        direct = sum(p.numel() for p in model.parameters())
        assert row["params"] == direct
        cells = [c for c in lines[2 + list(specs).index(spec.key)][len(spec.label):].split()]
        assert cells[1] == f"{direct / 1e6:.2f}"
        # ... and thop's count plus what it is reported to have missed adds up to it
        assert row["params_thop"] + sum(row["thop_missed"].values()) == direct
        # thop (with our attention rules) and torch's own FLOP counter roughly agree
        assert 0.8 < row["gflops"] / row["gflops_torch"] < 1.25, spec.key


class _Attn(nn.Module):
    def __init__(self, e=16, heads=2, kv_len=7):
        super().__init__()
        self.proj = nn.Linear(8, e)
        self.mha = nn.MultiheadAttention(e, heads, batch_first=True)
        self.enc = nn.TransformerEncoderLayer(e, heads, dim_feedforward=32, batch_first=True)
        self.memory = nn.Parameter(torch.randn(1, kv_len, e))  # held directly: thop cannot see it

    def forward(self, x):  # x (B, L, 8)
        q = self.proj(x)
        m = self.memory.expand(x.shape[0], -1, -1)
        y, _ = self.mha(q, m, m, need_weights=False)
        return self.enc(y)


def test_thop_rules_count_attention_like_torch_flop_counter():
    model = _Attn().eval()
    x = torch.randn(3, 5, 8)
    prof = bench.profile_thop(model, (x,))
    assert not any(hasattr(m, "total_ops") for m in model.modules())  # thop's counters are cleaned off
    torch_gflops = bench.torch_gflops(model, (x,))  # autograd on, "math" attention: all matmuls seen
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert counter.get_total_flops() < torch_gflops * 1e9  # (the fused CPU attention kernel is not counted)
    torch_flops = torch_gflops * 1e9
    # thop counts the two affine LayerNorms (4 x tokens x E each), which the torch counter leaves out
    norms = 2 * 4 * (3 * 5 * 16)
    assert 2 * prof["macs"] == pytest.approx(torch_flops + 2 * norms, rel=1e-6)
    plain = sum(p.numel() for p in model.parameters())
    assert prof["missed"] == {"memory": 7 * 16}
    assert prof["params"] == plain - 7 * 16
    # without our rules thop would have counted no attention at all
    import thop

    macs_plain_thop, _ = thop.profile(_Attn().eval(), inputs=(x,), verbose=False)
    assert macs_plain_thop < prof["macs"] / 2


def test_thop_rule_for_transposed_convolutions_matches_torch_counter():
    deconv = nn.Sequential(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, bias=False), nn.Conv2d(4, 3, 3))
    x = torch.randn(2, 8, 5, 5)
    prof = bench.profile_thop(deconv, (x,))
    assert 2 * prof["macs"] == pytest.approx(bench.torch_gflops(deconv, (x,)) * 1e9, rel=1e-9)
    assert prof["macs"] == 2 * 8 * 25 * 4 * 16 + 2 * 3 * 8 * 8 * 4 * 9  # input-side count for the deconvolution


def test_batch_search_doubles_then_bisects():
    calls = []

    def fits_upto(limit):
        def fits(b):
            calls.append(b)
            return b <= limit
        return fits

    assert bench.search_max_batch(fits_upto(37), cap=64) == (37, False)
    assert calls[:7] == [1, 2, 4, 8, 16, 32, 64]
    assert bench.search_max_batch(fits_upto(1000), cap=48) == (48, True)  # 1..32, then the cap itself
    assert bench.search_max_batch(fits_upto(0), cap=64) == (0, False)
    lo, capped = bench.search_max_batch(fits_upto(37), cap=64, exact=False)
    assert 37 - 37 // 8 <= lo <= 37 and not capped


@pytest.mark.parametrize("argv, message", [
    (["--quick", "--models", "nope"], "unknown model"),
    (["--quick", "--image-size", "50"], "multiple of 32"),
    (["--quick", "--device", "cpu", "--amp"], "CUDA only"),
    (["--quick", "--repeats", "0"], "--repeats"),
    (["--quick", "--device", "tpu"], "--device"),
])
def test_bad_arguments_are_one_clear_line(argv, message, capsys):
    assert cli.main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
