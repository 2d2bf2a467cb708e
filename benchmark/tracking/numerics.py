"""The numerics a run was computed with, and a canary that says in seconds whether a machine computes
them bit for bit like the one that trained the committed results.

Why: on a CPU a run is a pure function of its config at a fixed thread count, but not across CPUs:
ATen's vectorised kernels, oneDNN and MKL each choose their code by the instruction set (and oneDNN its
blocking by the cache sizes), and a last-bit difference early in training grows into a different run.
What this module gives, and what docs/reproducibility.md ("Numerics") states with the measurements:
- `fingerprint(device)`: every setting known to change a number, logged as MLflow tags on each run
  (`benchmark.training.train`): CPU model and torch's dispatch level, oneDNN/MKL pins, threads, determinism;
  CUDA/cuDNN versions and flags on a GPU.
- `canary()`: a few seeded training steps of the quick suite's DiffRes model on a seeded batch; its digest
  (sha256 of the final weights) is tagged on every run and compared with the rows committed in
  `results/numerics/canary.csv` (`diffres-bench canary`). Equal digest: expect the committed runs bit for
  bit at the same thread count. Different: expect different runs, and decisions that replicate
  (`results/<suite>/replication.csv`), not equal numbers.
- `ISA_PIN`: the environment that caps the instruction set (opt-in: it did not make runs equal across
  CPU vendors, see the docs).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmark.paths import CANARY_CSV

ISA_PIN = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
CANARY_STEPS = 8
CANARY_BATCH = 16
CANARY_SAMPLES = 16000


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            found = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    except OSError:
        found = None
    return found or platform.processor() or platform.machine()


def _blas() -> str:
    config = torch.__config__.show()
    blas = next((part.split("=", 1)[1] for part in config.replace(",", "\n").split() if part.startswith("BLAS_INFO=")),
                "unknown")
    return blas


def fingerprint(device: torch.device | str = "cpu") -> dict[str, str]:
    """Every setting known to move a run's numbers, as strings (MLflow tags)."""
    device = torch.device(device)
    out = {"numerics_cpu": cpu_model(), "numerics_cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "numerics_blas": _blas(), "numerics_mkldnn": str(torch.backends.mkldnn.is_available()),
           "numerics_threads": str(torch.get_num_threads()),
           "numerics_deterministic": str(torch.are_deterministic_algorithms_enabled()),
           "numerics_torch": torch.__version__,
           **{f"numerics_env_{k.lower()}": os.environ.get(k, "") for k in ISA_PIN}}
    if device.type == "cuda":
        out.update({"numerics_cuda_device": torch.cuda.get_device_name(device),
                    "numerics_cuda": str(torch.version.cuda), "numerics_cudnn": str(torch.backends.cudnn.version()),
                    "numerics_cudnn_deterministic": str(torch.backends.cudnn.deterministic),
                    "numerics_cudnn_benchmark": str(torch.backends.cudnn.benchmark),
                    "numerics_tf32": str(torch.backends.cuda.matmul.allow_tf32)})
    return out


@dataclass(frozen=True)
class Canary:
    digest: str  # sha256 (16 hex) of the weights after CANARY_STEPS steps
    final_loss: str  # the last step's loss, repr of the float (all its digits)
    ms_per_step: float
    cpu: str
    cpu_capability: str
    threads: int
    isa_env: str  # the ISA_PIN variables set in this process, "" for none


def canary(steps: int = CANARY_STEPS) -> Canary:
    """`steps` seeded Adam steps of the quick suite's DiffRes model (mel filterbank, audiocnn_tiny, δ 0.5,
    32 mels) on a seeded random batch of waveforms, on the CPU at the current thread count: the kernels a
    quick run spends its time in (STFT, convolutions, batch norm, DiffRes's merge, Adam). Seconds on one core."""
    from benchmark.config import RunConfig
    from benchmark.training.steps import deterministic, make_model, make_optimizer, task_loss

    cfg = RunConfig(task="toy-rhythm", frontend="diffres", reduction_rate=0.5, backbone="audiocnn_tiny", n_mels=32,
                    lr=0.003, seed=0)
    device = torch.device("cpu")
    gen = torch.Generator().manual_seed(1234)
    x = 0.1 * torch.randn(CANARY_BATCH, CANARY_SAMPLES, generator=gen)  # [B, N] waveform, 1 s at 16 kHz
    target = torch.nn.functional.one_hot(torch.randint(0, 5, (CANARY_BATCH,), generator=gen), 5).float()
    with torch.random.fork_rng(devices=[]), deterministic(True):  # a run's global RNG stream stays untouched
        model = make_model(cfg, 5, CANARY_SAMPLES // 160 + 1, device, stats=(-5.0, 4.0))  # 10 ms frames, centred
        optimizer = make_optimizer(model, cfg)
        start = time.perf_counter()
        for _ in range(steps):
            logits, out = model(x)
            loss = task_loss("ce", logits, target) + out.aux_loss.float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        elapsed = time.perf_counter() - start
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    isa_env = " ".join(f"{k}={os.environ[k]}" for k in ISA_PIN if os.environ.get(k))
    return Canary(digest=digest.hexdigest()[:16], final_loss=repr(float(loss.detach())),
                  ms_per_step=1e3 * elapsed / steps, cpu=cpu_model(),
                  cpu_capability=torch.backends.cpu.get_cpu_capability(),
                  threads=torch.get_num_threads(), isa_env=isa_env)


@functools.lru_cache(maxsize=4)
def canary_digest(threads: int) -> str:
    """This process's canary digest at `threads` threads (computed once per process and thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return canary().digest
    finally:
        torch.set_num_threads(before)


def committed_canaries(path: Path = CANARY_CSV) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_canary(result: Canary, path: Path = CANARY_CSV, *, machine_note: str = "") -> None:
    """Add (or replace) this machine's row for its thread count and ISA environment."""
    rows = [r for r in committed_canaries(path)
            if not (r["cpu"] == result.cpu and r["threads"] == str(result.threads) and r["isa_env"] == result.isa_env)]
    rows.append({**{k: str(v) for k, v in asdict(result).items()}, "ms_per_step": f"{result.ms_per_step:.1f}",
                 "torch": torch.__version__, "note": machine_note})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[-1]))
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["cpu"], r["isa_env"], r["threads"])))


def verdict(result: Canary, rows: list[dict[str, str]] | None = None) -> str:
    """One line: does this machine compute like a machine whose canary is committed?"""
    rows = committed_canaries() if rows is None else rows
    same = [r for r in rows if r["digest"] == result.digest]
    if same:
        names = "; ".join(sorted({f"{r['cpu']} ({r['threads']} thread(s){', ' + r['isa_env'] if r['isa_env'] else ''})"
                                  for r in same}))
        return f"bit-identical to the committed canary of {names}: runs at this thread count reproduce bit for bit"
    peers = [r for r in rows if r["threads"] == str(result.threads) and r["isa_env"] == result.isa_env]
    if not peers:
        return "no canary committed at this thread count and ISA setting: nothing to compare with"
    where = "; ".join(sorted({r["cpu"] for r in peers}))
    return (f"differs from the committed canary ({where}): expect other numbers run by run; the decisions "
            f"should still replicate (results/<suite>/replication.csv)")
