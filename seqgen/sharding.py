"""Sharded training (`train.sharding: fsdp`): every player's parameters, gradients and optimizer states
split over the processes with torch's FSDP2 (`fully_shard`), on CPU (gloo) as on CUDA (NCCL).

Accelerate still launches the processes, places the data and saves the RNG and schedule states; it does
not shard on a CPU, so the loop shards itself, as torchtitan does, and the CPU tests run the code a GPU
user gets. Sampling inside the training step is what makes this more than wrapping a model:

- Every player's module goes under one FSDP unit, `Players`, called as `players(i, batch, step, noise)`.
  A player's call therefore gathers every parameter it can touch, including those reached by methods
  that are not `forward` (`Generator.step` and `encode` in rollouts and scheduled sampling, the critic
  read by the generator's loss, the generator sampled by the critic's update), once per call, and frees
  them after its backward.
- Objectives whose every process calls each layer equally often (`Objective.fixed_calls`: teacher
  forcing, weighted likelihood) also give each Transformer layer (the model's `_no_split_modules`:
  GPT2Block, Bart*Layer, T5Block) a unit of its own, so a call holds one layer whole at a time besides the
  root's embeddings and head. Every layer call is then a collective, so objectives that sample inside the
  step keep the one unit: their rollouts stop at EOS after a number of positions that differs between
  processes, and the processes would wait on each other forever. Between steps parameters, gradients
  and optimizer states are sharded either way (the bulk of the memory, with AdamW's two moments).
- Outside a player's call (evaluation, samples, exports) `Sharding.gathered()` gathers the parameters
  for the duration and frees them after: no process keeps a full copy.
- Exports read a full state dict, assembled on the main process on the CPU (`get_model_state_dict`), into
  a twin of the modules kept on the meta device, so `save_pretrained`-style folders come out as from
  unsharded training.
- Checkpoints hold each process's shards of the parameters and of every optimizer's state
  (`torch.distributed.checkpoint`), written by every process into one folder.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

SHARDS = "shards"
"""The folder of a checkpoint that holds the sharded parameters and optimizer states."""


class Players(nn.Module):
    """An objective's player modules as one module, so that one FSDP root holds them all."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.players = nn.ModuleList(modules)

    def forward(self, index: int, *args, **kwargs):
        """Player `index`'s call: module(batch, step, noise) -> (loss, metrics)."""
        return self.players[index](*args, **kwargs)


class Sharding:
    """The players' modules sharded over the processes, and how to read them whole.

    Args:
        modules: the objective's player modules, on the device they train on.
        exported: the modules an export writes (the generator first), each inside `modules`.
        main: whether this process writes exports (it alone keeps the meta twin).
        layers: give each Transformer layer a unit of its own (see the module docstring).
    """

    def __init__(self, modules: list[nn.Module], exported: list[nn.Module], main: bool,
                 layers: bool = False) -> None:
        self.root = Players(modules)
        names = {id(m): name for name, m in self.root.named_modules()}
        self.exported = [names[id(m)] for m in exported]
        # the meta twin: the modules' structure without their storage (copied without copying it), filled
        # from a full state dict when an export needs the modules whole
        self.twin = copy.deepcopy(self.root, _meta_memo(self.root)) if main else None
        mesh = init_device_mesh(next(self.root.parameters()).device.type, (torch.distributed.get_world_size(),))
        # innermost units first (FSDP2 wants them bottom-up): the root then holds what no layer does
        self.layers = [fully_shard(layer, mesh=mesh) for layer in (_layers(self.root)[::-1] if layers else [])]
        fully_shard(self.root, mesh=mesh)

    def call(self, index: int):
        """Player `index` as a function (batch, step, noise) -> (loss, metrics), through the root."""
        return lambda *args: self.root(index, *args)

    def set_gradient_sync(self, sync: bool) -> None:
        """Reduce-scatter gradients at the end of this backward (False: accumulate them, unsharded)."""
        self.root.set_requires_gradient_sync(sync)

    @contextlib.contextmanager
    def gathered(self) -> Iterator[None]:
        """Every parameter whole for the duration (on every process: a collective), sharded again after.
        Modules may be called inside, not saved or loaded (their state dict is the sharded one)."""
        # layers kept whole across calls: each would otherwise free itself after its call and gather again at
        # the next, a collective that processes decoding different lengths would not all make (the root
        # already stays whole after its forward, and must keep that setting)
        for layer in self.layers:
            layer.set_reshard_after_forward(False, recurse=False)
        for unit in (*self.layers, self.root):
            unit.unshard()
        try:
            yield
        finally:
            for unit in (*self.layers, self.root):
                unit.reshard()
            for layer in self.layers:
                layer.set_reshard_after_forward(True, recurse=False)

    @contextlib.contextmanager
    def whole(self) -> Iterator[list[nn.Module] | None]:
        """The exported modules, whole, on the CPU: on the main process a list like `exported`, None on the
        others. Every process must enter (the full state dict is gathered from all of them)."""
        full = get_model_state_dict(self.root, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.twin is None:
            yield None
            return
        twin = copy.deepcopy(self.twin)
        tied = _tied_names(twin)
        # Each tensor gets storage of its own (gathered ones may be views of one buffer, which safetensors
        # refuses to save), and so a tensor per name: ties are made again below.
        twin.load_state_dict({k: v.clone() for k, v in full.items()}, assign=True)
        for first, *others in tied:
            for name in others:
                owner, _, attribute = name.rpartition(".")
                setattr(twin.get_submodule(owner), attribute, twin.get_parameter(first))
        yield [twin.get_submodule(name) for name in self.exported]

    def save(self, optimizers: list[torch.optim.Optimizer], directory: Path) -> None:
        """Write this process's shards of the parameters and of `optimizers`' states under directory/shards."""
        model, optim = get_state_dict(self.root, optimizers)
        dcp.save({"model": model, "optim": optim}, checkpoint_id=str(directory / SHARDS))

    def load(self, optimizers: list[torch.optim.Optimizer], directory: Path) -> None:
        """Read what `save` wrote into the sharded modules and `optimizers`."""
        model, optim = get_state_dict(self.root, optimizers)
        state = {"model": model, "optim": optim}
        dcp.load(state, checkpoint_id=str(directory / SHARDS))
        set_state_dict(self.root, optimizers, model_state_dict=state["model"], optim_state_dict=state["optim"])


def _layers(module: nn.Module) -> list[nn.Module]:
    """The Transformer layers inside `module`: the modules whose class a `transformers` model names as
    one not to split across devices (`_no_split_modules`)."""
    names = {name for m in module.modules() for name in getattr(type(m), "_no_split_modules", None) or ()}
    return [m for m in module.modules() if type(m).__name__ in names]


def _meta_memo(module: nn.Module) -> dict[int, torch.Tensor]:
    """A `copy.deepcopy` memo that copies `module`'s parameters and buffers as meta tensors (no storage)."""
    memo: dict[int, torch.Tensor] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return memo


def _tied_names(module: nn.Module) -> list[list[str]]:
    """The names of each parameter that `module` holds under several names (tied embeddings)."""
    names: dict[int, list[str]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    return [group for group in names.values() if len(group) > 1]
