"""Malformed inputs for ``sapkit predict`` and checkpoint loading: checkpoints of another architecture or task,
with custom classes, truncated or not torch files; inference rois the network cannot take; --out it cannot
write.

See ``bad_input_catalogue`` for what every case must do.
"""

from __future__ import annotations

import numpy as np

from bad_input_catalogue import catalogue_tests, SHAPE, read_only_folder, tiny_model, registry

CASES, CLI_CASES, case, cli_case = registry()


class _Custom:
    """Pickled by reference (``test_bad_predict._Custom``): a custom class inside a checkpoint."""

    def __init__(self) -> None:
        self.note = "not a tensor"


@case
def checkpoint_of_another_architecture(root):
    import torch

    from sapkit.inference.predict import load_model

    other, _ = tiny_model(channels=(4, 8, 16))
    torch.save(other.state_dict(), root / "other_arch.pt")  # bare state dict: no config inside
    _, mc = tiny_model()
    return (lambda: load_model(root / "other_arch.pt", mc)), \
        r"checkpoint .*other_arch\.pt does not fit a unet with 2 outputs .*check model\.\* settings"


@case
def checkpoint_of_another_task(root):
    from sapkit.io.checkpoints import save_checkpoint
    from sapkit.config import config_to_dict, load_config
    from sapkit.inference.predict import load_model

    skeleton, mc = tiny_model(out_channels=10)
    cfg = config_to_dict(load_config("smoke", {"model.channels": [4, 8]}))
    save_checkpoint(root / "skeleton_final.pt", state_dict=skeleton.state_dict(), epoch=1, config=cfg)
    return (lambda: load_model(root / "skeleton_final.pt", mc, out_channels=2)), \
        r"skeleton_final\.pt does not fit a unet with 2 outputs .*the checkpoint's task"


@case
def checkpoint_with_a_custom_class(root):
    import torch

    from sapkit.inference.predict import load_model

    model, mc = tiny_model()
    torch.save({"state_dict": model.state_dict(), "meta": _Custom()}, root / "custom_class.pt")
    return (lambda: load_model(root / "custom_class.pt", mc)), \
        r"refused to load checkpoint .*custom_class\.pt: it holds pickled code or objects \(GLOBAL .*_Custom\).*re-save only its state_dict"


@case
def checkpoint_not_a_torch_file(root):
    from sapkit.inference.predict import load_model

    (root / "model.pt").write_text("hello, this is a text file")
    _, mc = tiny_model()
    return (lambda: load_model(root / "model.pt", mc)), \
        r"checkpoint .*model\.pt: it is not a readable torch checkpoint .*check the path, or re-save it"


@case
def checkpoint_is_a_nifti(root):
    from sapkit.io.checkpoints import load_checkpoint

    return (lambda: load_checkpoint(root / "data" / "p02_t1.nii.gz")), \
        r"p02_t1\.nii\.gz: it is not a readable torch checkpoint"


@case
def checkpoint_truncated(root):
    from sapkit.io.checkpoints import load_checkpoint, save_checkpoint

    model, _ = tiny_model()
    save_checkpoint(root / "cut.pt", state_dict=model.state_dict(), epoch=1)
    data = (root / "cut.pt").read_bytes()
    (root / "cut.pt").write_bytes(data[: len(data) // 2])
    return (lambda: load_checkpoint(root / "cut.pt")), r"cut\.pt: it is not a readable torch checkpoint.*truncated"


@case
def inference_roi_not_divisible(root):
    from sapkit.inference.sliding_window import predict_probabilities

    model, _ = tiny_model(channels=(4, 8, 16))
    image = np.zeros((2, *SHAPE), np.float32)
    return (lambda: predict_probabilities(model, image, roi=(10, 10, 10), overlap=0.25)), \
        r"infer\.roi \[10, 10, 10\] must be .*4.* for the unet backbone.*use e\.g\. \[8, 8, 8\]"


@cli_case
def predict_out_is_a_file(root):
    (root / "afile").write_text("x")
    return ["predict", "--checkpoint", str(root / "m.pt"), "--manifest", str(root / "data"), "--out",
            str(root / "afile")], r"--out .*afile is a file, not a folder", []


@cli_case
def predict_out_in_a_read_only_folder(root):
    ro = read_only_folder(root)
    return ["predict", "--checkpoint", str(root / "m.pt"), "--manifest", str(root / "data"), "--out",
            str(ro / "pred")], r"--out .*pred cannot be created", []


(test_bad_input_raises_clear_error_and_leaves_inputs_untouched,
 test_bad_input_on_the_command_line_exits_with_one_message) = catalogue_tests(CASES, CLI_CASES)
