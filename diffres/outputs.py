"""What front-ends return: :class:`FrontendOutput`, and :class:`DiffResOutput` for DiffRes.

Both are frozen dataclasses and read-only ``Mapping``s, so code written for the reference
``pydiffres`` (whose forward returns a dict) runs unchanged: ``ret["feature"]``,
``ret.get("score")``, ``"avgpool" in ret``, ``for key, value in ret.items()``, ``dict(ret)``.

Keys: the fields that hold a tensor, in field order, then the reference's names for two of them,
``"feature"`` (``features``) and ``"guide_loss"`` (``aux_loss``). A field left None is not a key
(a baseline's ``score``, ``lengths`` when no input lengths were given, ``resolution_enc`` without
the encoding): ``ret[key]`` raises ``KeyError`` and ``ret.get(key)`` gives None, as for a dict that
never set it, so ``keys()``, ``in``, ``len`` and ``[]`` agree. The attribute is still there
(``out.score is None``). A DiffRes output therefore has every key of the reference dict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields

from torch import Tensor

__all__ = ["DiffResOutput", "FrontendOutput"]

# The reference's key -> our field.
_ALIASES = {"feature": "features", "guide_loss": "aux_loss"}


@dataclass(frozen=True)
class FrontendOutput(Mapping):
    """What every front-end returns; the trainer reads ``features`` and ``aux_loss`` only."""

    features: Tensor  # [B, C, T', F]
    aux_loss: Tensor  # scalar, added to the task loss with the recipe's weight
    score: Tensor | None = None  # [B, T, 1] importance scores (DiffRes)
    activeness: Tensor | None = None  # scalar monitor (DiffRes)
    lengths: Tensor | None = None  # [B] valid output frames, when input lengths were given

    @property
    def feature(self) -> Tensor:
        return self.features

    @property
    def guide_loss(self) -> Tensor:
        return self.aux_loss

    def __getitem__(self, key: str) -> Tensor:
        name = _ALIASES.get(key, key)
        names = [f.name for f in fields(self)]
        if name not in names:
            raise KeyError(f"{key!r} is not an output field; fields: {sorted([*names, *_ALIASES])}")
        value = getattr(self, name)
        if value is None:
            raise KeyError(f"{key!r} is not set in this {type(self).__name__} (the front-end did not compute it)")
        return value

    def __iter__(self) -> Iterator[str]:
        present = [f.name for f in fields(self) if getattr(self, f.name) is not None]
        yield from present
        yield from (alias for alias, name in _ALIASES.items() if name in present)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class DiffResOutput(FrontendOutput):
    """DiffRes's output: the common fields plus the merged channels one by one, as the reference."""

    avgpool: Tensor | None = None  # [B, T', F] mean-aggregated log-mel
    maxpool: Tensor | None = None  # [B, T', F] max-aggregated log-mel
    resolution_enc: Tensor | None = None  # [B, T', F]
