"""One seeded random stream per consumer of a run, derived from the run's seed.

Every random draw of a run comes from the stream of the component that makes it: the front-end's, the
backbone's and the head's initial weights, the shuffle, the augmentations (mixup, SpecAugment) and the
global stream the training step uses (dropout, stochastic depth). A stream's seed is a hash of
(run seed, consumer name), so adding a component, building them in another order or drawing one more
number in one consumer never moves the numbers of another, and seed s's shuffle is never seed s+1's
augmentation (as `seed` and `seed + 1` were).
"""

from __future__ import annotations

import contextlib
import hashlib

import torch

STREAMS = ("frontend", "backbone", "head", "filterbank", "shuffle", "augment", "train")


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for consumer `stream` of a run with seed `seed`."""
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; known streams: {list(STREAMS)}")
    return int.from_bytes(hashlib.sha256(f"{int(seed)}/{stream}".encode()).digest()[:8], "little") >> 1


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator seeded for consumer `stream`."""
    return torch.Generator().manual_seed(stream_seed(seed, stream))


@contextlib.contextmanager
def global_stream(seed: int, stream: str):
    """torch's global generator seeded for `stream` inside the block (module constructors draw from it),
    and restored afterwards, so what a block draws never depends on what ran before it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, stream))
        yield
