"""The training loader: batches read and collated ahead of the step, so a GPU never waits on the reader.

    for batch in train_loader(data.train, list(train_batches(cfg, ...)), device): ...

The epoch's batches of positions are drawn first, in the main process, from the run's shuffle generator
(`benchmark.training.sampling`): the order of clips is a pure function of the seed whatever the worker count, and
a resumed run draws what an uninterrupted one drew. With workers (`loader_workers`: the environment
variable `DIFFRES_LOADER_WORKERS`, else `DEFAULT_CUDA_WORKERS` on CUDA and 0 on a CPU) a torch DataLoader
reads those batches from the memory-mapped waveform cache in worker processes, `prefetch_factor` batches
per worker ahead, into pinned memory on CUDA; the step copies them with `non_blocking=True`. A worker
returns batch k of the list, and the DataLoader hands them back in list order, so the batches and their
order are identical with 0, 1 or 8 workers. The DataLoader's own seed draw comes from a private generator
(never torch's global one, which dropout reads). With 0 workers the split is read in the main process
(the CPU in-memory path: the waveforms and the mel are already tensors, a read is an index).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from benchmark.paths import LOADER_WORKERS_ENV, env_number
from benchmark.training.data import Split

# Workers a CUDA run starts with: EfficientNet-B2 trains at about 1,100 clips/s of 10 s clips on an H100
# with bf16 (the assumed rate, docs/performance.md); one worker on this CPU reads and converts
# int16 10 s clips at the rate in results/bench_loader.csv, so 4 workers keep that step GPU-bound with a
# margin (the arithmetic is in docs/performance.md, "Loader").
DEFAULT_CUDA_WORKERS = 4
PREFETCH_FACTOR = 4


def loader_workers(device: torch.device) -> int:
    """Worker processes for a run on `device` (see the module docstring)."""
    default = DEFAULT_CUDA_WORKERS if device.type == "cuda" else 0
    return int(env_number(LOADER_WORKERS_ENV, default, "loader worker processes", integer=True))


class _Batches(Dataset):
    """batches[k] -> split.batch(batches[k]): one whole collated batch per DataLoader item."""

    def __init__(self, split: Split, batches: Sequence[Tensor]):
        self.split, self.batches = split, list(batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> dict[str, Tensor]:
        return self.split.batch(self.batches[k])


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # a worker converts int16 -> float32; more threads would fight the step's


def train_loader(split: Split, batches: Sequence[Tensor], device: torch.device,
                 workers: int | None = None) -> Iterable[dict[str, Tensor]]:
    """The epoch's batches of `split`, in the order of `batches` (positions), read ahead by `workers`."""
    workers = loader_workers(device) if workers is None else workers
    if workers == 0:
        return (split.batch(idx) for idx in batches)
    return _iterate(DataLoader(
        _Batches(split, batches), batch_size=None, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda", prefetch_factor=PREFETCH_FACTOR, worker_init_fn=_one_thread,
        generator=torch.Generator().manual_seed(0), persistent_workers=False))


def _iterate(loader: DataLoader) -> Iterator[dict[str, Tensor]]:
    yield from loader
