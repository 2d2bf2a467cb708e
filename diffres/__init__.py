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

from diffres.diffres import DiffRes
from diffres.filterbanks import FilterbankInfo, create_filterbank, filterbank_info, list_filterbanks
from diffres.frontends import (
    FAMILIES,
    FrontendInfo,
    create_frontend,
    frontend_info,
    list_frontends,
    register_frontend,
)
from diffres.functional import output_frames
from diffres.outputs import DiffResOutput, FrontendOutput

__all__ = [
    "FAMILIES",
    "DiffRes",
    "DiffResOutput",
    "FilterbankInfo",
    "FrontendInfo",
    "FrontendOutput",
    "create_filterbank",
    "create_frontend",
    "filterbank_info",
    "frontend_info",
    "list_filterbanks",
    "list_frontends",
    "output_frames",
    "register_frontend",
]
__version__ = "0.1.0"
