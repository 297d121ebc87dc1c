"""Malformed inputs for ``sapkit evaluate`` and the metrics behind it: bad tolerances, connectivities and
spacings, masks and probability maps on other grids or out of range, files that are not NIfTI, --json paths
it cannot write.

See ``bad_input_catalogue`` for what every case must do.
"""

from __future__ import annotations

import numpy as np

from sapkit.io.nifti import save_nifti

from bad_input_catalogue import (
    catalogue_tests, AFFINE, SHAPE, cli_call, nan_affine_nifti, zero_spacing_nifti, registry,
)

CASES, CLI_CASES, case, cli_case = registry()


def _masks():
    gt = np.zeros(SHAPE, np.uint8)
    gt[2:5, 2:5, 2:5] = 1
    return gt, gt.copy()


@case
def negative_tolerance_lesion_report(root):
    from sapkit.metrics import lesion_report

    gt, pred = _masks()
    return (lambda: lesion_report(gt, pred, spacing_mm=(2, 2, 3), tolerance_mm=-1.0)), r"tolerance_mm must be a finite number ≥ 0, got -1\.0"


@case
def negative_tolerance_nsd(root):
    from sapkit.metrics import normalized_surface_dice

    gt, pred = _masks()
    return (lambda: normalized_surface_dice(gt, pred, spacing_mm=(2, 2, 3), tolerance_mm=-2)), \
        r"tolerance_mm must be a finite number ≥ 0, got -2"


@case
def nan_tolerance_nsd(root):
    from sapkit.metrics import normalized_surface_dice

    gt, pred = _masks()
    return (lambda: normalized_surface_dice(gt, pred, spacing_mm=(2, 2, 3), tolerance_mm=float("nan"))), \
        r"tolerance_mm must be a finite number ≥ 0, got nan"


@case
def unknown_connectivity_lesion_report(root):
    from sapkit.metrics import lesion_report

    gt, pred = _masks()
    return (lambda: lesion_report(gt, pred, spacing_mm=(2, 2, 3), connectivity=4)), \
        r"connectivity must be one of \(6, 18, 26\) \(3D voxel neighbourhood\), got 4; the kit's default is 26"


@case
def unknown_hit_rule(root):
    from sapkit.metrics import lesion_report

    gt, pred = _masks()
    return (lambda: lesion_report(gt, pred, spacing_mm=(2, 2, 3), hit="dice:0.5")), \
        r"hit rule must be 'any' or 'iou:T' .*e\.g\. 'iou:0\.5'\), got 'dice:0\.5'"


@case
def masks_of_different_shape_lesion_report(root):
    from sapkit.metrics import lesion_report

    gt, _ = _masks()
    return (lambda: lesion_report(gt, gt[:, :, :-1], spacing_mm=(2, 2, 3))), \
        r"prediction shape \(12, 10, 13\) ≠ gt_mask shape \(12, 10, 14\); resample the prediction onto the GT grid"


@case
def masks_of_different_shape_nsd(root):
    from sapkit.metrics import normalized_surface_dice

    gt, _ = _masks()
    return (lambda: normalized_surface_dice(gt, gt[:-2], spacing_mm=(2, 2, 3))), \
        r"gt shape \(12, 10, 14\) ≠ pred shape \(10, 10, 14\).*resample the prediction onto the ground-truth grid"


@case
def spacing_of_wrong_length_lesion_report(root):
    from sapkit.metrics import lesion_report

    gt, pred = _masks()
    return (lambda: lesion_report(gt, pred, spacing_mm=(2, 2))), \
        r"spacing_mm must be 3 positive numbers \(mm\), got \(2, 2\); pass the scan's voxel size"


@case
def spacing_of_wrong_length_nsd(root):
    from sapkit.metrics import normalized_surface_dice

    gt, pred = _masks()
    return (lambda: normalized_surface_dice(gt, pred, spacing_mm=(2, 2, 3, 1))), \
        r"spacing_mm must be 3 positive numbers \(mm\), got \(2, 2, 3, 1\); pass the scan's voxel size"


@case
def probability_map_above_one(root):
    from sapkit.metrics import lesion_report

    gt, _ = _masks()
    logits = np.where(gt > 0, 3.5, -2.0).astype(np.float32)
    return (lambda: lesion_report(gt, prob_map=logits, threshold=0.5, spacing_mm=(2, 2, 3))), \
        r"prob_map must hold probabilities in \[0, 1\]; found \d+ voxel\(s\) outside.*apply softmax/sigmoid"


@case
def probability_map_with_nan(root):
    from sapkit.metrics import lesion_report

    gt, _ = _masks()
    prob = np.zeros(SHAPE, np.float32)
    prob[7, 7, 7] = np.nan
    return (lambda: lesion_report(gt, prob_map=prob, threshold=0.5, spacing_mm=(2, 2, 3))), \
        r"prob_map must hold probabilities in \[0, 1\]; found 1 voxel\(s\) outside, e\.g\. nan"


@case
def evaluate_prediction_on_another_grid(root):
    pred = root / "pred_mask.nii.gz"
    save_nifti(np.zeros((12, 10, 7), np.uint8), np.diag([2.0, 2.0, 6.0, 1.0]), pred)
    return cli_call("evaluate", ["--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(pred),
                             "--json", str(root / "out.json")]), \
        r"prediction .*pred_mask\.nii\.gz shape \(12, 10, 7\) ≠ GT .*p03_lesion\.nii\.gz shape \(12, 10, 14\); resample"


@case
def evaluate_prediction_shifted(root):
    shifted = AFFINE.copy()
    shifted[2, 3] = -9.0  # same shape, origin 9 mm lower
    pred = root / "shifted_prob.nii.gz"
    save_nifti(np.zeros(SHAPE, np.float32), shifted, pred)
    return cli_call("evaluate", ["--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(pred), "--prob"]), \
        r"prediction .*shifted_prob\.nii\.gz grid lies up to 9 mm from the GT .*p03_lesion\.nii\.gz grid.*resample"


@case
def evaluate_probability_map_of_logits(root):
    prob = np.full(SHAPE, -3.0, np.float32)
    prob[2:5, 2:5, 2:5] = 4.0
    path = root / "logits_prob.nii.gz"
    save_nifti(prob, AFFINE, path)
    return cli_call("evaluate", ["--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(path), "--prob"]), \
        r"probability map .*logits_prob\.nii\.gz holds 1680 voxel\(s\) outside \[0, 1\].*softmax/sigmoid probabilities"


@case
def evaluate_probability_map_with_nan(root):
    prob = np.zeros(SHAPE, np.float32)
    prob[1, 1, 1] = np.nan
    path = root / "nan_prob.nii.gz"
    save_nifti(prob, AFFINE, path)
    return cli_call("evaluate", ["--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(path), "--prob"]), \
        r"probability map .*nan_prob\.nii\.gz holds 1 voxel\(s\) outside \[0, 1\] or NaN"


@case
def evaluate_intensity_image_given_as_mask(root):
    image = np.random.default_rng(0).normal(100.0, 60.0, SHAPE).astype(np.int16)  # an MR image, not a mask
    path = root / "t1_as_mask.nii.gz"
    save_nifti(image, AFFINE, path)
    return cli_call("evaluate", ["--gt", str(path), "--pred", str(root / "data" / "p03_lesion.nii.gz")]), \
        r"GT lesion mask file .*t1_as_mask\.nii\.gz holds negative values \(min -\d+\); masks and label maps hold 0"


@case
def evaluate_unknown_tolerance(root):
    pred = root / "data" / "p03_lesion.nii.gz"
    return cli_call("evaluate", ["--gt", str(pred), "--pred", str(pred), "--tolerance-mm", "-0.5"]), \
        r"tolerance_mm must be a finite number ≥ 0, got -0\.5"


@cli_case
def evaluate_nan_affine_prediction(root):
    pred = nan_affine_nifti(root / "pred.nii.gz")
    return ["evaluate", "--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(pred),
            "--json", str(root / "e.json")], r"pred\.nii\.gz has a non-finite affine", [root / "e.json"]


@cli_case
def evaluate_zero_spacing_gt(root):
    gt = zero_spacing_nifti(root / "gt.nii.gz")
    return ["evaluate", "--gt", str(gt), "--pred", str(root / "data" / "p03_lesion.nii.gz")], \
        r"gt\.nii\.gz has an invalid geometry", []


@cli_case
def evaluate_html_page_as_probability_map(root):
    page = root / "prob.nii.gz"
    page.write_text("<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n")
    return ["evaluate", "--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(page), "--prob"], \
        r"prob\.nii\.gz is not a readable NIfTI .*re-export", []


@cli_case
def evaluate_html_page_named_nii(root):
    page = root / "prob.nii"
    page.write_text("<html><body>" + "redirect " * 80 + "</body></html>\n")
    return ["evaluate", "--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(page), "--prob"], \
        r"prob\.nii is not a readable NIfTI", []


@cli_case
def evaluate_json_is_a_directory(root):
    (root / "outdir").mkdir()
    lesion = str(root / "data" / "p03_lesion.nii.gz")
    return ["evaluate", "--gt", lesion, "--pred", lesion, "--json", str(root / "outdir")], \
        r"--json .*outdir is a folder; pass a file path", []


(test_bad_input_raises_clear_error_and_leaves_inputs_untouched,
 test_bad_input_on_the_command_line_exits_with_one_message) = catalogue_tests(CASES, CLI_CASES)
