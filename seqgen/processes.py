"""How many processes a command runs as, and how Accelerate should join them."""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from transformers import PreTrainedTokenizerFast

from seqgen.config import RunConfig
from seqgen.data import TaskData, load_data
from seqgen.data.pipeline import trains_tokenizer
from seqgen.data.tokenizer import tokenizer_from_json
from seqgen.errors import UserError

DEEPSPEED = ("seqgen does not run under DeepSpeed (accelerate launch --use_deepspeed, or a DEEPSPEED config): "
             "its loop runs mixed precision, gradient accumulation and each player's update itself; for "
             "ZeRO-3's sharding of parameters, gradients and optimizer states set train.sharding=fsdp (FSDP2) "
             "and launch without DeepSpeed")


def cpu_processes() -> bool:
    """True when launched as several processes (`accelerate launch --multi_gpu ...`) on a machine
    without CUDA: Accelerate then needs `cpu=True` to join them with gloo instead of running each alone."""
    return os.environ.get("LOCAL_RANK") is not None and not torch.cuda.is_available()


def make_accelerator(**kwargs) -> Accelerator:
    """The Accelerator of a seqgen command (keyword arguments as Accelerator's): its processes joined with
    gloo on a machine without CUDA (`cpu_processes`).

    Raises:
        UserError: launched with DeepSpeed. Its engine would own the optimizer steps, loss scaling and
            accumulation that the loop runs per player, and on a CPU Accelerate ignores it and trains
            replicated (DDP) without a word.
    """
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true"):
        raise UserError(DEEPSPEED)
    return Accelerator(cpu=cpu_processes(), **kwargs)


def load_data_once(cfg: RunConfig, tokenizer: PreTrainedTokenizerFast | None, accelerator: Accelerator) -> TaskData:
    """The run's data in every process, read through by the main process alone: it checks the files,
    trains the tokenizer (when the recipe trains one) and fills the datasets cache; the others receive its
    tokenizer and map the cached Arrow tables. So no other process reads the whole corpus.

    Args:
        cfg: the run's recipe.
        tokenizer: the run's tokenizer when it has one already (resuming, initial weights); None builds it.
        accelerator: the processes.
    """
    if accelerator.num_processes == 1:
        return load_data(cfg, tokenizer)
    data = load_data(cfg, tokenizer) if accelerator.is_main_process else None
    if tokenizer is None and trains_tokenizer(cfg):
        payload = [data.tokenizer.backend_tokenizer.to_str() if data is not None else None]
        broadcast_object_list(payload)
        tokenizer = tokenizer_from_json(payload[0])
    accelerator.wait_for_everyone()
    return data if data is not None else load_data(cfg, tokenizer, verify=False)
