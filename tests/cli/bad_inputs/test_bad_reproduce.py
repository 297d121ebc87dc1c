"""Malformed inputs for ``sapkit reproduce``: unknown notebooks, run folders inside a file, values out of
range.

See ``bad_input_catalogue`` for what every case must do.
"""

from __future__ import annotations


from bad_input_catalogue import catalogue_tests, cli_call, registry

CASES, CLI_CASES, case, cli_case = registry()


@case
def reproduce_unknown_notebook(root):
    return cli_call("reproduce", ["--profile", "smoke", "--run-dir", str(root / "run"), "--notebooks", "06_survival"]), \
        r"unknown notebook\(s\) \['06_survival'\]; choose from 00_data, 01_skeleton_labelling"


@cli_case
def reproduce_run_dir_inside_a_file(root):
    (root / "afile").write_text("x")
    return ["reproduce", "--profile", "smoke", "--run-dir", str(root / "afile" / "run")], \
        r"--run-dir .*afile/run lies inside a file", []


@cli_case
def reproduce_overlap_of_one(root):
    return ["reproduce", "--profile", "smoke", "--run-dir", str(root / "run"), "-p", "infer.overlap=1.0"], \
        r"'infer\.overlap' must be in \[0\.0, 1\.0\), got 1\.0", [root / "run" / "notebooks"]


(test_bad_input_raises_clear_error_and_leaves_inputs_untouched,
 test_bad_input_on_the_command_line_exits_with_one_message) = catalogue_tests(CASES, CLI_CASES)
