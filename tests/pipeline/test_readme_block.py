import json

import pytest
import yaml

from sapkit.errors import SapkitError
from sapkit.io.run_paths import RunDir
from sapkit.pipeline.readme_block import END, START, update_readme


def _run(tmp_path):
    run = RunDir(tmp_path / "demo")
    run.eval_dir.mkdir(parents=True, exist_ok=True)
    run.notebooks_dir.mkdir(exist_ok=True)
    run.table1_md.write_text("| metric | sap |\n|---|---|\n| F2 | 0.500 |\n")
    run.eval_table("comparisons").write_text(
        "metric,a,b,test,statistic,p_value,p_bonferroni,n\nf2,sap,scratch,wilcoxon,3.0,0.01,0.02,18\n")
    run.eval_table("patients").write_text(
        "scan_id,init,f2,dice_mean\np1,sap,0.5,0.4\np1,scratch,0.2,0.3\np2,sap,0.7,0.6\np2,scratch,0.3,0.6\n")
    run.config_yaml.write_text(yaml.safe_dump({"profile": "demo", "seed": 42}))
    run.versions_json.write_text(json.dumps({"python": "3.11.7", "torch": "2.13.0", "gpu": None}))
    run.splits_json.write_text(json.dumps({"k": 3, "tuning_fold": 2}))
    run.notebook_marker("04_lesion_finetuning").write_text(json.dumps({"seconds": 330}))
    run.notebook_marker("00_data").write_text(json.dumps({"seconds": 12}))
    return run.path


def test_results_block_is_replaced_and_the_rest_kept(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{START}\nold numbers\n{END}\nafter\n")
    update_readme(readme, _run(tmp_path))
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    assert "old numbers" not in text and "| F2 | 0.500 |" in text
    assert "| F2 (patient level) | sap vs scratch | 18 | +0.350 | 0.01 | 0.02 |" in text  # median of (0.3, 0.4)
    assert "Minutes per notebook: 00_data 0.2 min, 04_lesion_finetuning 5.5 min." in text and "`demo` profile" in text
    update_readme(readme, _run(tmp_path))  # idempotent
    assert readme.read_text() == text


def test_missing_markers_or_run(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SapkitError, match="lacks the markers"):
        update_readme(readme, _run(tmp_path))
    readme.write_text(f"{START}\n{END}\n")
    with pytest.raises(SapkitError, match="run the series first"):
        update_readme(readme, tmp_path / "nothing")
