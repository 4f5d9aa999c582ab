"""h2t_lib.course: the notebooks' data renders quietly on first use (nbval from a fresh clone)."""
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
