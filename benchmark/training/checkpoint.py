"""A run's state from epoch to epoch (`TrainState`), and its checkpoint: where it lives, how it is written,
read back, and set aside.

    path = checkpoint_path(checkpoint_dir, cfg)          # <checkpoint_dir>/<config_hash>/last.pt
    save_checkpoint(path, state.to_checkpoint(cfg))      # after every epoch
    saved = load_checkpoint(path, cfg)                   # None: nothing usable (a bad file is set aside)
    state.load(saved)                                    # raises when it does not fit this model

The format (`CHECKPOINT_FORMAT`) is written and read here only: tensors and plain types, so it loads with
`weights_only=True`. It carries every RNG state (torch, CUDA, the shuffle's and the augmentations'
generators; the shuffle's is stored under "loader", its name when a DataLoader drew from it), so a
resumed run on CPU ends with the numbers of an uninterrupted one. Early stopping needs nothing more:
`best["epoch"]` and the epochs done decide whether the run has already stopped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.config import RunConfig
from benchmark.tracking.outages import disk_error, is_disk_error

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
_REQUIRED = {"epoch", "model", "optimizer", "rng", "history", "best"}


def checkpoint_path(checkpoint_dir: str | os.PathLike, cfg: RunConfig) -> Path:
    return Path(checkpoint_dir) / cfg.config_hash / "last.pt"


@dataclass
class Best:
    """The best-on-val epoch so far: its index, val metric and weights (on the CPU)."""

    epoch: int = -1
    val: float = -math.inf
    state: dict[str, Tensor] | None = None


@dataclass
class TrainState:
    """What a run carries from one epoch to the next — and everything its checkpoint holds."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    shuffle_gen: torch.Generator
    augment_gen: torch.Generator
    averager: Any = None  # benchmark.training.averaging.WeightAverager, or None (no weight averaging)
    epoch: int = 0  # epochs done
    history: list[dict[str, float]] = field(default_factory=list)
    best: Best = field(default_factory=Best)

    def end_epoch(self, record: dict[str, float]) -> None:
        """Close epoch `record["epoch"]`: a new best val metric keeps a copy of the weights, the record joins the
        history, the weight average takes the epoch's weights, and the epoch counts as done."""
        if record["val_metric_epoch"] > self.best.val:
            weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.best = Best(int(record["epoch"]), record["val_metric_epoch"], weights)
        self.history.append(record)
        if self.averager is not None:
            self.averager.update(int(record["epoch"]), self.model)
        self.epoch = int(record["epoch"]) + 1

    def to_checkpoint(self, cfg: RunConfig) -> dict[str, Any]:
        """Everything needed to continue `cfg` after `self.epoch` epochs: tensors and plain types only."""
        best = {"epoch": self.best.epoch, "val": self.best.val, "state": self.best.state}
        return {"format": CHECKPOINT_FORMAT, "config_hash": cfg.config_hash, "config": cfg.to_params(),
                "epoch": self.epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "rng": rng_state(self.shuffle_gen, self.augment_gen), "history": self.history, "best": best,
                **({"averaging": self.averager.state_dict()} if self.averager is not None else {})}

    def load(self, saved: Mapping[str, Any]) -> None:
        """Take a checkpoint's state into the model, optimizer, scaler, RNGs and average. Raises if it does not
        fit (another architecture, a broken tensor): the caller sets the file aside and starts from a fresh
        state, since this one may be partly overwritten by then."""
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        restore_rng(saved["rng"], self.shuffle_gen, self.augment_gen)
        if self.averager is not None:
            self.averager.load_state_dict(saved["averaging"])
        best = saved["best"]
        self.epoch, self.history = int(saved["epoch"]), list(saved["history"])
        self.best = Best(int(best["epoch"]), float(best["val"]), best.get("state"))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file, flush it to disk, and rename: a crash, a full disk or an unwritable
    directory mid-write never leaves a half checkpoint, and the last good one stays where it was.

    A full or unwritable directory raises `DiskError` naming the path (the run fails with that message
    rather than training on without a checkpoint it could resume from).
    """
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as out:
            torch.save(state, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch.save reports a failed write as RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink()
        cause = err if isinstance(err, OSError) else _os_error(err)
        if cause is None or not is_disk_error(cause):
            raise
        raise disk_error(cause, "the checkpoint", path, "free space there or pass another --checkpoint-dir "
                         "(the last good checkpoint is kept)") from err


def _os_error(err: BaseException) -> OSError | None:
    """The OSError behind torch.save's RuntimeError ("... file write failed"), if any."""
    while err is not None:
        if isinstance(err, OSError):
            return err
        err = err.__cause__ or err.__context__
    return None


def load_checkpoint(path: Path, cfg: RunConfig) -> dict[str, Any] | None:
    """The checkpoint of `cfg` if it exists and loads (tensors and plain types only), else None.

    A file that does not load, or belongs to another config, is renamed `*.corrupt` and logged.
    """
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a format-{CHECKPOINT_FORMAT} checkpoint")
        if state.get("config_hash") != cfg.config_hash:
            raise ValueError(f"checkpoint of config {state.get('config_hash')}, not {cfg.config_hash}")
        missing = _REQUIRED - set(state)
        if missing:
            raise ValueError(f"checkpoint lacks {sorted(missing)}")
        return state
    except Exception as err:  # noqa: BLE001 — any unreadable file means: start again cleanly
        set_aside(path, err)
        return None


def set_aside(path: Path, err: BaseException) -> None:
    """Rename an unusable checkpoint `*.corrupt` (kept for a post-mortem, never read again)."""
    bad = path.with_name(path.name + ".corrupt")
    log.warning("checkpoint %s is unusable (%s: %s); moved to %s, training restarts from epoch 0",
                path, type(err).__name__, err, bad.name)
    with contextlib.suppress(OSError):
        os.replace(path, bad)


def rng_state(shuffle_gen: torch.Generator, augment_gen: torch.Generator) -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "loader": shuffle_gen.get_state(), "augment": augment_gen.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng(state: Mapping[str, Any], shuffle_gen: torch.Generator, augment_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    shuffle_gen.set_state(state["loader"])
    augment_gen.set_state(state["augment"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
