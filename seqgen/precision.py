"""Mixed precision, run by seqgen itself the same way on CPU and CUDA: autocast around each player's
forward and loss, one gradient scaler per optimizer under fp16, metrics in float32.

Accelerate's own mixed precision does neither of the last two for seqgen's loop: it keeps one scaler for
every optimizer (an adversarial run's critic overflowing would shrink the generator's scale and skip its
step), and on a CPU it silently trains fp16 in float32. So the loop asks Accelerate for no mixed precision
and uses this module. Generators return float32 logits, so every loss and metric is computed in float32
from low-precision matrix products.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Literal

import torch

Mode = Literal["no", "fp16", "bf16"]
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class Precision:
    """What `train.mixed_precision` asks for on one device.

    Args:
        mode: "no", "fp16" or "bf16".
        device: the device the players run on (autocast is per device type).
    """

    def __init__(self, mode: Mode, device: torch.device) -> None:
        self.mode = mode
        self.device_type = device.type

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context a player's forward and loss run in: autocast to the mode's dtype, or nothing."""
        if self.mode == "no":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.mode])

    def scaler(self) -> torch.amp.GradScaler:
        """A new gradient scaler for one optimizer: dynamic loss scaling under fp16, a pass-through
        (`enabled=False`: scale() returns the loss, step() steps) otherwise."""
        return torch.amp.GradScaler(self.device_type, enabled=self.mode == "fp16")


def recurrent_dtype(inputs: torch.Tensor) -> torch.dtype | None:
    """The dtype a fused RNN must run in instead of autocast's (float32), or None to let autocast decide.

    CPU autocast sends LSTM/GRU layers to oneDNN in bf16 or fp16, which not every CPU supports (without
    AVX-512 BF16 the primitive cannot be created and the call fails); those layers then run in float32.
    """
    if inputs.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return None
    dtype = torch.get_autocast_dtype("cpu")
    return None if low_precision_rnn_supported(dtype) else torch.float32


@functools.cache
def low_precision_rnn_supported(dtype: torch.dtype) -> bool:
    """Whether this CPU runs a fused LSTM under `dtype` autocast (tried once, on a tiny layer)."""
    layer = torch.nn.LSTM(4, 4, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=dtype):
            out, _ = layer(torch.zeros(1, 2, 4))
        out.float().sum().backward()
    except RuntimeError:
        return False
    return True
