"""sapkit.io.output_paths: the plan's refusals, resolved paths, and the guard on atomic writes."""

from __future__ import annotations

import pytest

from sapkit.errors import OutputPathError
from sapkit.io.atomic import atomic_write_text
from sapkit.io.output_paths import OutputPlan, active_plan, file_stem_problem


@pytest.mark.parametrize("value, problem", [
    ("p01_s0", None), ("a.b-c_1", None), ("", "is empty"), ("../x", "path part"), ("a/b", "path part"),
    ("a\\b", "path part"), ("a..b", "path part"), (".hidden", "starts with '.'"), ("a\tb", "control character"),
    ("a\x00b", "control character"), ("x" * 201, "longer than 200"),
])
def test_file_stems(value, problem):
    found = file_stem_problem(value)
    assert (found is None) if problem is None else (problem in found), found


def test_an_output_file_that_is_an_input_is_refused_through_a_link(tmp_path):
    (tmp_path / "gt.nii.gz").write_bytes(b"gt")
    (tmp_path / "link.json").symlink_to(tmp_path / "gt.nii.gz")
    plan = OutputPlan("sapkit evaluate")
    plan.reads(tmp_path / "gt.nii.gz", "the --gt mask")
    plan.writes(tmp_path / "link.json", "--json")
    with pytest.raises(OutputPathError, match=r"--json .*link\.json would overwrite input file\(s\) .*gt\.nii\.gz.*: "
                                              r"the --gt mask; choose another file"):
        plan.check()


def test_output_folders_that_are_inputs_or_inside_a_whole_input(tmp_path):
    (tmp_path / "in" / "deep").mkdir(parents=True)
    (tmp_path / "in.csv").write_text("x")
    cases = [(tmp_path / "in", r"--out .*in is the input DICOM folder; choose a new folder"),
             (tmp_path / "in" / "deep" / "out", r"--out .*out lies inside the input DICOM folder"),
             (tmp_path / "in.csv", r"--out .*in\.csv is an input file \(the stations CSV\)")]
    for out, message in cases:
        plan = OutputPlan("sapkit preprocess")
        plan.reads_folder(tmp_path / "in", "DICOM folder", whole=True)
        plan.reads(tmp_path / "in.csv", "the stations CSV")
        plan.writes_folder(out, "--out")
        with pytest.raises(OutputPathError, match=message):
            plan.check()
    plan = OutputPlan("sapkit preprocess")
    plan.reads_folder(tmp_path / "in", "DICOM folder", whole=True)
    plan.writes_folder(tmp_path / "out", "--out")
    assert plan.check() is plan


def test_an_output_that_leaves_its_folder(tmp_path):
    plan = OutputPlan("sapkit predict")
    plan.writes_in(tmp_path / "out", ["../x_prob.nii.gz"], "--out")
    with pytest.raises(OutputPathError, match=r"--out: the output .*x_prob\.nii\.gz leaves the output folder"):
        plan.check()
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "a_prob.nii.gz").symlink_to(tmp_path / "elsewhere.nii.gz")
    plan = OutputPlan("sapkit predict")
    plan.writes_in(tmp_path / "out2", ["a_prob.nii.gz"], "--out")
    with pytest.raises(OutputPathError, match="leaves the output folder .* symbolic link"):
        plan.check()


def test_a_symbolic_link_loop_is_one_error(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OutputPathError, match="symbolic-link loop"):
        OutputPlan("x").writes(tmp_path / "a" / "f.json", "--json")


def test_the_active_plan_guards_every_atomic_write(tmp_path):
    (tmp_path / "in.txt").write_text("input")
    plan = OutputPlan("sapkit test")
    plan.reads(tmp_path / "in.txt", "the input")
    plan.writes_folder(tmp_path / "out", "--out")
    plan.writes(tmp_path / "report.json", "--json")
    with plan.check().active():
        assert active_plan() is plan
        atomic_write_text(tmp_path / "out" / "sub" / "a.txt", "ok")  # anywhere inside an output folder
        atomic_write_text(tmp_path / "report.json", "{}")
        with pytest.raises(OutputPathError, match=r"refusing to write .*in\.txt: it is an input of sapkit test"):
            atomic_write_text(tmp_path / "in.txt", "overwritten")
        with pytest.raises(OutputPathError, match=r"refusing to write .*stray\.txt: it lies outside the outputs"):
            atomic_write_text(tmp_path / "stray.txt", "x")
    assert active_plan() is None
    assert (tmp_path / "in.txt").read_text() == "input" and not (tmp_path / "stray.txt").exists()
    atomic_write_text(tmp_path / "stray.txt", "no plan, no guard")
