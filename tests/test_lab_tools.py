"""Fast checks of tools/lab_screenshots.py (no browser, no JupyterLab server started)."""
import importlib.util
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab():
    spec = importlib.util.spec_from_file_location("lab_screenshots", ROOT / "tools" / "lab_screenshots.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_exe(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_chromium_explicit_env_and_path(lab, tmp_path, monkeypatch):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CHROMIUM", raising=False)
    with pytest.raises(lab.Missing, match="apt-get install chromium"):
        lab.find_chromium()
    with pytest.raises(lab.Missing, match="not an executable"):
        lab.find_chromium(str(tmp_path / "nope"))
    fake = _fake_exe(tmp_path / "my-chrome")
    assert lab.find_chromium(str(fake)) == str(fake)
    monkeypatch.setenv("CHROMIUM", str(fake))
    assert lab.find_chromium() == str(fake)
    monkeypatch.delenv("CHROMIUM")
    on_path = _fake_exe(empty / "chromium")
    assert lab.find_chromium() == str(on_path)


def test_lab_settings_switch_off_autosave_and_windowing(lab, tmp_path):
    lab.write_lab_settings(tmp_path)
    docman = json.loads((tmp_path / "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings").read_text())
    tracker = json.loads((tmp_path / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings").read_text())
    assert docman == {"autosave": False}
    assert tracker["windowingMode"] == "none"
    assert len(list(tmp_path.rglob("*.jupyterlab-settings"))) == len(lab.LAB_SETTINGS)


def test_shrink_png_only_when_too_big(lab, tmp_path):
    from PIL import Image

    small, big = tmp_path / "small.png", tmp_path / "big.png"
    Image.new("RGB", (64, 64), (255, 255, 255)).save(small)
    before = small.read_bytes()
    lab.shrink_png(small, limit=10_000)
    assert small.read_bytes() == before  # under the limit: untouched

    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > 200_000
    lab.shrink_png(big, limit=200_000)
    assert big.stat().st_size <= 200_000
    with Image.open(big) as im:
        assert im.size in {(300, 300), (225, 225)}


def test_free_port_is_bindable(lab):
    import socket

    port = lab.free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_cli_errors_before_starting_anything(lab, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CHROMIUM", raising=False)
    not_nb = tmp_path / "x.txt"
    not_nb.write_text("")
    assert lab.main([str(not_nb), "--out", str(tmp_path / "out")]) == 2
    nb = tmp_path / "n.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert lab.main([str(nb), "--out", str(tmp_path / "out")]) == 2
    assert "No Chromium found".lower() in capsys.readouterr().err.lower()
    assert not (tmp_path / "out").exists()
    assert sorted(os.listdir(tmp_path)) == ["n.ipynb", "x.txt"]  # nothing written, no server started
