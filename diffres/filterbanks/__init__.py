"""Filterbanks: waveform ``[B, N]`` -> time-frequency map ``[B, T, F]`` on the log-mel's frame grid.

One registry (``create_filterbank``, ``list_filterbanks``, ``filterbank_info``, ``register_filterbank``):
``mel`` (the fixed, cached log-mel), and the learnable ``leaf``, ``efficientleaf``, ``sincnet`` and
``tdfbanks``. Any filterbank composes with any reducer front-end of ``diffres.frontends``. ``leaf`` and
``sincnet`` need speechbrain and ``mel`` torchaudio, imported only when one is built. See docs/filterbanks.md.
"""

from diffres.filterbanks import efficientleaf, leaf, mel, tdfbanks  # noqa: F401  (register the filterbanks)
from diffres.filterbanks.registry import (
    Filterbank,
    FilterbankInfo,
    check_waveform,
    create_filterbank,
    filterbank_info,
    list_filterbanks,
    register_filterbank,
)

__all__ = ["Filterbank", "FilterbankInfo", "check_waveform", "create_filterbank", "filterbank_info",
           "list_filterbanks", "register_filterbank"]
