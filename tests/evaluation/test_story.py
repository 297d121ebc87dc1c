"""The run's own story (issue 25 item 3): the closing text changes when another init wins."""

from __future__ import annotations

import pandas as pd

from fake_run import write_fake_eval
from sapkit.evaluation.story import metric_leads, paired_differences, run_headline, run_story
from sapkit.io.run_paths import RunDir


def test_the_text_follows_the_winner(tmp_path):
    sap_run = write_fake_eval(tmp_path / "runs" / "sap_wins", leader="sap")
    scratch_run = write_fake_eval(tmp_path / "runs" / "scratch_wins", leader="scratch")
    sap_text, scratch_text = run_story(sap_run), run_story(scratch_run)
    assert sap_text != scratch_text
    assert "**SAP led**" in sap_text and "**scratch led**" not in sap_text
    assert "**scratch led**" in scratch_text and "**SAP led**" not in scratch_text
    # SAP leading on F2 and the Dice metrics is what the paper found; scratch leading is not
    assert sap_text.count("**Matches the paper**") == 3 and "**Differs from the paper**" in sap_text  # fp: SSL led there
    assert "**Matches the paper**" not in scratch_text and scratch_text.count("**Differs from the paper**") == 4
    assert run_headline(sap_run).startswith("SAP led on 4 of 4 key metrics")
    assert run_headline(scratch_run).startswith("scratch led on 4 of 4 key metrics")
    assert "as in the paper" in run_headline(sap_run) and "unlike the paper (SAP led there)" in run_headline(scratch_run)


def test_numbers_come_from_the_tables(tmp_path):
    run = write_fake_eval(tmp_path / "run", leader="sap")
    patients = pd.read_csv(RunDir(run).eval_table("patients"))
    comparisons = pd.read_csv(RunDir(run).eval_table("comparisons"))
    f2 = metric_leads(patients, comparisons)[0]
    assert f2.metric == "f2" and f2.leader == "sap"
    assert f2.medians["sap"] == patients[patients.init == "sap"].f2.median()
    row = comparisons[(comparisons.metric == "f2") & (comparisons.b == f2.runner_up)].iloc[0]
    assert (f2.p_value, f2.p_bonferroni) == (row.p_value, row.p_bonferroni) and f2.significant
    assert f2.difference == paired_differences(patients)[("f2", "sap", f2.runner_up)]
    text = run_story(run)
    assert f"{f2.medians['sap']:.3f}" in text and f"{f2.difference:+.3f}" in text
    fp = next(lead for lead in metric_leads(patients, comparisons) if lead.metric == "fp")
    assert fp.leader == "sap" and min(fp.medians.values()) == fp.medians["sap"]  # fewer is better


def test_a_pair_without_sap_is_tested_here(tmp_path):
    run = write_fake_eval(tmp_path / "run", leader="ssl")
    patients = pd.read_csv(RunDir(run).eval_table("patients"))
    f2 = metric_leads(patients, pd.read_csv(RunDir(run).eval_table("comparisons")))[0]
    assert f2.leader == "ssl"
    if f2.runner_up != "sap":  # comparisons.csv only holds SAP's pairs: the story tests this one itself
        assert f2.p_bonferroni != f2.p_bonferroni and 0 < f2.p_value < 1


def test_seed_study_and_missing_evaluation(tmp_path):
    run = write_fake_eval(tmp_path / "runs" / "demo", leader="sap")
    assert "sapkit seeds" in run_story(run)
    study = tmp_path / "runs" / "seed_study" / "seed_study.md"
    study.parent.mkdir()
    study.write_text("# seeds\n")
    assert str(study) in run_story(run)
    fresh = tmp_path / "runs" / "fresh"
    fresh.mkdir()
    assert "notebook 05" in run_story(fresh) and run_headline(fresh) is None
    assert "No training log" in run_story(fresh, stage="skeleton")


def test_learning_story_from_the_logs(tmp_path):
    rd = RunDir(tmp_path / "run")
    for init, start in (("scratch", 0.9), ("ssl", 0.8), ("sap", 0.5)):
        for fold in (0, "tune"):
            md = rd.lesion(init, fold)
            md.path.mkdir(parents=True)
            pd.DataFrame({"epoch": [0, 1, 2], "loss": [None, start, start / 2],
                          "val_dice_mean": [0.0, None, 1 - start], "seconds": [0, 1, 1]}).to_csv(md.log_csv, index=False)
    text = run_story(rd.config_yaml.parent, stage="lesion")
    assert "after the first epoch (mean over folds): **SAP lowest** (SAP 0.500, SSL 0.800, scratch 0.900)" in text
    assert "**SAP highest** (SAP 0.500, SSL 0.200, scratch 0.100)" in text
    for md in (rd.lesion("sap", 0), rd.lesion("sap", "tune")):  # now SAP starts highest, SSL lowest
        pd.DataFrame({"epoch": [0, 1], "loss": [None, 2.0], "val_dice_mean": [0.0, 0.05], "seconds": [0, 1]}).to_csv(md.log_csv, index=False)
    assert "**SSL lowest** (SSL 0.800, scratch 0.900, SAP 2.000)" in run_story(rd.config_yaml.parent, stage="lesion")


def test_learning_story_of_short_runs_and_ties(tmp_path):
    rd = RunDir(tmp_path / "run")
    for init in ("scratch", "sap"):
        md = rd.lesion(init, 0)
        md.path.mkdir(parents=True)
        pd.DataFrame({"epoch": [0, 1], "loss": [None, 1.0 if init == "sap" else 1.5],
                      "val_dice_mean": [0.0, 0.0], "seconds": [0, 1]}).to_csv(md.log_csv, index=False)
    text = run_story(rd.config_yaml.parent, stage="lesion")
    assert "**SAP lowest**" in text and "no init ahead (" in text and "at the last epoch" not in text  # one epoch
    rd.ssl.path.mkdir()
    pd.DataFrame({"epoch": [0, 1], "loss": [None, 2.8], "val_loss": [2.9, 2.7]}).to_csv(rd.ssl.log_csv, index=False)
    assert run_story(rd.config_yaml.parent, stage="ssl").startswith(
        "The SSL model's training loss was 2.800 (epoch 1, its only value). Its loss on the validation scans went "
        "from 2.900 (epoch 0) to 2.700 (epoch 1).")


def test_equal_medians_are_no_lead(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.eval_dir.mkdir(parents=True)
    rows = [{"init": init, "scan_id": f"p{i}", "f2": 1.0 if init != "sap" else 0.0, "dice_mean": 0.0, "global_dice": 0.0,
             "fp": 0.0 if init != "sap" else 57.0} for i in range(2) for init in ("scratch", "ssl", "sap")]
    pd.DataFrame(rows).to_csv(rd.eval_table("patients"), index=False)
    text = run_story(rd.config_yaml.parent)
    assert "**scratch led**" not in text and "**SSL led**" not in text and "scratch and SSL share the best median (1.000), then SAP 0.000" in text
    assert "scratch, SSL and SAP share the best median (0.000)" in text  # in the kit's init order
    assert run_headline(rd.config_yaml.parent) == "No init led on any of the 4 key metrics: the best medians are shared."


def test_a_model_that_never_took_off_is_named(tmp_path):
    """Loss ≥ 0.95 at the end with validation lesion Dice 0: the all-background plateau (docs/reproducibility.md §5)."""
    from sapkit.training.plateau import stuck_models

    rd = RunDir(tmp_path / "run")
    logs = {("scratch", 0): ([1.3, 0.80], 0.25), ("sap", 0): ([1.0, 0.76], 0.30), ("sap", 1): ([1.34, 1.001], 0.0),
            ("ssl", 1): ([1.2, 0.93], 0.0)}  # ssl: Dice 0 but a loss that moved off the plateau — not stuck
    for (init, fold), (loss, val) in logs.items():
        md = rd.lesion(init, fold)
        md.path.mkdir(parents=True)
        pd.DataFrame({"epoch": [0, 1, 2], "loss": [None, *loss], "val_dice_mean": [0.0, None, val],
                      "val_dice_lesion": [0.0, None, val]}).to_csv(md.log_csv, index=False)
    stuck = stuck_models(rd.lesion_dir)
    assert stuck[["init", "fold"]].values.tolist() == [["sap", "1"]] and stuck.last_loss.tolist() == [1.001]
    text = run_story(rd.config_yaml.parent, stage="lesion")
    assert "**Never took off: SAP fold 1 (loss 1.001)**" in text and "scratch fold" not in text
    pd.DataFrame({"epoch": [0, 1, 2], "loss": [None, 1.34, 0.80], "val_dice_mean": [0.0, None, 0.2],
                  "val_dice_lesion": [0.0, None, 0.2]}).to_csv(rd.lesion("sap", 1).log_csv, index=False)
    assert "Never took off" not in run_story(rd.config_yaml.parent, stage="lesion")
