"""DiffRes — differentiable temporal resolution for spectrograms — and the baseline front-ends.

    from diffres import DiffRes, create_frontend, list_frontends
    out = DiffRes(in_t_dim=1000, in_f_dim=128, dimension_reduction_rate=0.5)(logmel)  # [B, T, F]
    out["feature"]  # [B, 3, 500, 128]

Modules: ``functional`` (the maths, pure functions), ``merge`` (its autograd kernels), ``layers``
(the score network), ``outputs`` (the result types), ``diffres`` (the module), ``frontends``
(baselines and the registry), ``filterbanks`` (waveform -> ``[B, T, F]``: mel, LEAF, EfficientLEAF,
SincNet, TD-filterbanks, one registry). Depends on torch only; building ``leaf`` or ``sincnet`` imports
speechbrain, ``mel`` torchaudio.
"""

import importlib
from typing import Any

# Every public name and the module that defines it, imported on first use: `import diffres.registry` (the
# registry shape every axis of the benchmark uses) then needs no torch, and `from diffres import DiffRes`
# works as it reads.
_EXPORTS = {
    "DiffRes": "diffres.diffres",
    "FilterbankInfo": "diffres.filterbanks",
    "create_filterbank": "diffres.filterbanks",
    "filterbank_info": "diffres.filterbanks",
    "list_filterbanks": "diffres.filterbanks",
    "FAMILIES": "diffres.frontends",
    "FrontendInfo": "diffres.frontends",
    "create_frontend": "diffres.frontends",
    "frontend_info": "diffres.frontends",
    "list_frontends": "diffres.frontends",
    "register_frontend": "diffres.frontends",
    "output_frames": "diffres.functional",
    "DiffResOutput": "diffres.outputs",
    "FrontendOutput": "diffres.outputs",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'diffres' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__version__ = "0.1.0"
