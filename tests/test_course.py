"""h2t_lib.course: the notebooks' data renders quietly on first use (nbval from a fresh clone)."""
import pytest

from h2t_lib import course


def test_first_use_renders_without_output(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("H2T_COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("H2T_FAST", "1")
    monkeypatch.setitem(course.SPLITS, "test", (2, 2, 202))
    ds = course.dataset("test")                 # renders the split: first use
    out, err = capfd.readouterr()
    assert len(ds) == 2 and (tmp_path / "data" / "annotations").is_dir()
    assert out == "" and err == ""              # no progress bar: a checked notebook cell stays unchanged
    assert len(course.dataset("test")) == 2     # second use reads what is there, also quietly
    assert capfd.readouterr() == ("", "")


def test_a_split_in_another_look_is_rendered_again(tmp_path):
    import json

    from h2t_lib.data import synth
    from h2t_lib.apps.demo import _marker, ensure_split

    kw = dict(num=2, size=48, seed=5, progress=False)
    jpegs = lambda: {p.name: p.read_bytes() for p in (tmp_path / "images" / "test").rglob("*.jpg")}
    assert ensure_split(tmp_path, "test", style="v1", **kw)           # rendered
    assert not ensure_split(tmp_path, "test", style="v1", **kw)       # there already
    v1 = jpegs()
    assert ensure_split(tmp_path, "test", **kw)                       # the default look: rendered again
    v2 = jpegs()
    assert len(v1) == 2 and v1.keys() == v2.keys() and all(v1[k] != v2[k] for k in v1)
    marker = json.loads(_marker(tmp_path, "test").read_text())
    assert marker["style"] == synth.DEFAULT_STYLE == "v2"
    del marker["style"]                                               # a split rendered before the look was recorded
    _marker(tmp_path, "test").write_text(json.dumps(marker))
    assert ensure_split(tmp_path, "test", **kw) and jpegs() == v2     # rendered again, in the default look
    marker = json.loads(_marker(tmp_path, "test").read_text())
    assert marker["revision"] == synth.LOOK_REVISION["v2"] == 2
    marker["revision"] = 1                                            # the v2 before round 6 (its backgrounds)
    _marker(tmp_path, "test").write_text(json.dumps(marker))
    for f in (tmp_path / "images" / "test").rglob("*.jpg"):
        f.write_bytes(b"stale")
    assert ensure_split(tmp_path, "test", **kw) and jpegs() == v2     # rendered again
    assert not ensure_split(tmp_path, "test", **kw)
    with pytest.raises(ValueError, match="'v9'"):
        ensure_split(tmp_path, "test", style="v9", **kw)
