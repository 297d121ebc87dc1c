"""Mixed precision on CUDA: the autocast dtype and whether a gradient scaler is needed.

``<section>.amp`` switches mixed precision on (training sections, ``infer``); ``<section>.amp_dtype``
picks its half type: ``bfloat16`` (float32's exponent range: no overflow, no gradient scaler),
``float16`` (a gradient scaler guards against overflow), or ``auto`` = ``bfloat16`` where the GPU
supports it (``torch.cuda.is_bf16_supported()``: Ampere and newer), else ``float16``. On the CPU
nothing is autocast, whatever the settings: CPU results do not depend on them.
"""

from __future__ import annotations

import torch

from sapkit.errors import ConfigError

__all__ = ["AMP_DTYPES", "autocast_dtype"]

#: Values of ``<section>.amp_dtype``.
AMP_DTYPES = ("auto", "bfloat16", "float16")


def autocast_dtype(amp: bool, amp_dtype: str, device: torch.device | str) -> torch.dtype | None:
    """The dtype to autocast to on ``device``, or None (AMP off, or not CUDA).

    Raises
    ------
    ConfigError
        ``bfloat16`` asked for on a GPU that does not support it, or an unknown value.

    Examples
    --------
    >>> autocast_dtype(True, "auto", "cpu") is None
    True
    """
    if amp_dtype not in AMP_DTYPES:
        raise ConfigError(f"amp_dtype must be one of {AMP_DTYPES}, got {amp_dtype!r}")
    if not amp or torch.device(device).type != "cuda":
        return None
    supported = torch.cuda.is_bf16_supported()
    if amp_dtype == "bfloat16" and not supported:
        raise ConfigError("amp_dtype bfloat16 needs a GPU that supports it (Ampere or newer; torch.cuda."
                          "is_bf16_supported() is False here); use amp_dtype=auto or float16")
    if amp_dtype == "float16" or (amp_dtype == "auto" and not supported):
        return torch.float16
    return torch.bfloat16
