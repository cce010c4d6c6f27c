"""Batch statistics over the global batch when training runs in several processes.

Each process holds one slice of the global batch. A loss that depends on the whole batch (the
NT-Xent negatives, SCAN's entropy term, self-labeling's class weights, BatchNorm's mean and
variance) sees the other slices through collectives that carry gradients back to the process
that owns each row.

The factor rule that makes DistributedDataParallel reproduce one process exactly: DDP averages
the gradients of the ``world`` processes, and a gradient that flows back through a collective
is summed over the processes, so every process computes ``world / N * (sum of its own
per-sample terms)`` (``N`` the global batch) plus the global-batch terms, and the mean over
processes of these losses is the single-process loss. ``Group()`` is the single process: every
collective is the identity and the losses reduce to their plain form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of the sum is the sum of every process's gradient."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total


@dataclass(frozen=True)
class Group:
    """The processes that share one global batch; ``Group()`` is a single process."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Only the main process writes checkpoints, logs and progress."""
        return self.rank == 0

    def shard(self, batch: Tensor) -> Tensor:
        """This process's rows of a global batch: contiguous slices, the first ``N % world``
        one row longer (``torch.tensor_split``)."""
        return batch if self.world == 1 else batch.tensor_split(self.world)[self.rank]

    def sum(self, tensor: Tensor) -> Tensor:
        """Sum over processes, differentiable (the gradient reaches every process's input)."""
        return tensor if self.world == 1 else _AllReduceSum.apply(tensor)

    def total(self, tensor: Tensor) -> Tensor:
        """Sum over processes of a value that needs no gradient."""
        if self.world == 1:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total

    def mean(self, tensor: Tensor) -> Tensor:
        """Mean over processes of a detached value (a loss for the history: see the module note)."""
        return self.total(tensor) / self.world

    def gather(self, tensor: Tensor) -> tuple[Tensor, int]:
        """Every process's rows in rank order, and the offset of this process's rows in them.

        Rows may differ in number between processes; the gradient of each gathered row goes
        back to the process that owns it (one sum over processes of a zero-padded buffer).
        """
        if self.world == 1:
            return tensor, 0
        counts = torch.zeros(self.world, dtype=torch.long, device=tensor.device)
        counts[self.rank] = len(tensor)
        counts = self.total(counts).tolist()
        offset = sum(counts[: self.rank])
        padded = tensor.new_zeros((sum(counts), *tensor.shape[1:]))
        padded = padded.index_copy(0, torch.arange(offset, offset + len(tensor), device=tensor.device), tensor)
        return self.sum(padded), offset

    def decide(self, value: int, device: torch.device) -> int:
        """The main process's ``value`` on every process (for choices only it computes)."""
        if self.world == 1:
            return value
        shared = torch.tensor([value if self.main else 0], dtype=torch.long, device=device)
        dist.broadcast(shared, src=0)
        return int(shared.item())


    def share(self, tensor: Tensor) -> Tensor:
        """The main process's ``tensor`` on every process (the others pass one of the same shape and type)."""
        if self.world == 1:
            return tensor
        shared = tensor.clone()
        dist.broadcast(shared, src=0)
        return shared


SINGLE = Group()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch for any backend (``torch.nn.SyncBatchNorm`` takes CUDA
    tensors only): mean and variance come from sums over all processes, differentiably, and
    the running statistics move as plain BatchNorm's would on the concatenated batch."""

    def __init__(self, num_features: int, group: Group, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.group = group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training or not self.track_running_stats):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        local = torch.tensor([input.numel() // max(input.shape[1], 1)], dtype=input.dtype, device=input.device)
        count = self.group.total(local)
        mean = self.group.sum(input.sum(dim=dims)) / count
        centred = input - mean.view(shape)
        variance = self.group.sum(centred.square().sum(dim=dims)) / count
        if self.training and self.track_running_stats:
            self._update_running_stats(mean.detach(), variance.detach(), count)
        output = centred * torch.rsqrt(variance + self.eps).view(shape)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        return output

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, variance: Tensor, count: Tensor) -> None:
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = variance * count / (count - 1).clamp_min(1)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)


def global_batchnorm(module: nn.Module, group: Group) -> nn.Module:
    """``module`` with every BatchNorm replaced by a ``GlobalBatchNorm`` over ``group``,
    sharing its parameters and buffers (as ``nn.SyncBatchNorm.convert_sync_batchnorm``)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        replaced = GlobalBatchNorm(module.num_features, group, module.eps, module.momentum, module.affine,
                                   module.track_running_stats)
        if module.affine:
            replaced.weight, replaced.bias = module.weight, module.bias
        if module.track_running_stats:
            replaced.running_mean, replaced.running_var = module.running_mean, module.running_var
            replaced.num_batches_tracked = module.num_batches_tracked
        replaced.train(module.training)
        return replaced
    for name, child in module.named_children():
        module.add_module(name, global_batchnorm(child, group))
    return module
