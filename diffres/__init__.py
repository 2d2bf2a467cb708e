"""DiffRes — differentiable temporal resolution for spectrograms — and the baseline front-ends.

    from diffres import DiffRes, create_frontend, list_frontends
    out = DiffRes(in_t_dim=1000, in_f_dim=128, dimension_reduction_rate=0.5)(logmel)  # [B, T, F]
    out["feature"]  # [B, 3, 500, 128]

Depends on torch only.
"""

from diffres.diffres import DiffRes, DiffResOutput, FrontendOutput
from diffres.frontends import create_frontend, list_frontends, register_frontend
from diffres.functional import output_frames

__all__ = [
    "DiffRes",
    "DiffResOutput",
    "FrontendOutput",
    "create_frontend",
    "list_frontends",
    "output_frames",
    "register_frontend",
]
__version__ = "0.1.0"
