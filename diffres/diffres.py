"""``DiffRes``: the importance-score network plus calls into :mod:`diffres.functional`.

Public API matches the reference implementation (PyPI ``pydiffres``), so its users can switch:
``DiffRes(in_t_dim, in_f_dim, dimension_reduction_rate, learn_pos_emb=False)``, input a log-mel
``[B, T, F]``, output with ``["feature"]`` ``[B, 3, T', F]`` (mean, max, resolution encoding),
``["score"]`` ``[B, T, 1]``, ``["guide_loss"]``, ``["activeness"]``, ``["avgpool"]``,
``["maxpool"]``, ``["resolution_enc"]`` (a read-only mapping, see :mod:`diffres.outputs`).
The score network is in :mod:`diffres.layers`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffres import functional as Fn
from diffres.layers import ScoreNetwork
from diffres.outputs import DiffResOutput

__all__ = ["DiffRes"]


class DiffRes(nn.Module):
    """Differentiable temporal resolution: merge unimportant frames, keep important ones.

    Args:
        in_t_dim: frames of the training input (used for the position-encoding table and the
            nominal output size; any T is accepted at forward time).
        in_f_dim: mel bins F.
        dimension_reduction_rate: δ in (0, 1); the output has ``floor(T * (1 - δ))`` frames.
        learn_pos_emb: make the resolution encoding's position table a learnable parameter.
        resolution_encoding: stack the resolution encoding as the third channel (the paper's
            ablation sets it False: 2 channels, mean and max).
        score_network: ``"paper"`` (the reference code's dense convs) or ``"separable"``
            (depthwise-separable convs, the same widths and receptive field, about 1/5 of the FLOPs).
    """

    def __init__(
        self,
        in_t_dim: int,
        in_f_dim: int,
        dimension_reduction_rate: float,
        learn_pos_emb: bool = False,
        resolution_encoding: bool = True,
        score_network: str = "paper",
    ):
        super().__init__()
        self.resolution_encoding = resolution_encoding
        self.out_channels = 3 if resolution_encoding else 2
        self.reduction_rate = Fn.validate_reduction_rate(dimension_reduction_rate)
        if in_f_dim < 1 or in_t_dim < 1:
            raise ValueError(f"in_t_dim and in_f_dim must be >= 1, got in_t_dim={in_t_dim}, in_f_dim={in_f_dim}")
        self.input_seq_length = in_t_dim
        self.input_f_dim = in_f_dim
        self.output_seq_length = Fn.output_frames(in_t_dim, self.reduction_rate)
        self.score_net = ScoreNetwork(in_f_dim, kind=score_network)
        pos = Fn.sinusoidal_encoding(in_t_dim, in_f_dim)
        if learn_pos_emb:
            self.pos_emb = nn.Parameter(pos)
        else:
            self.register_buffer("pos_emb", pos, persistent=False)

    def t_out(self, t_in: int) -> int:
        return Fn.output_frames(t_in, self.reduction_rate)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> DiffResOutput:
        """``x`` ``[B, T, F]`` log-mel; ``lengths`` optional ``[B]`` valid frames (padding at the end)."""
        Fn.check_input(x, self.input_f_dim)
        batch, t_in, _ = x.shape
        t_out = self.t_out(t_in)
        mask = Fn.length_mask(lengths, batch, t_in, x.device)
        target = t_out if lengths is None else Fn.per_clip_frames(lengths, self.reduction_rate)

        # Scores are kept away from 0 so every clip has >= T' frames to share the budget. At least
        # float32 from here on, also under autocast (the budget T' must be met to ~1e-6, not to fp16's
        # 1e-3); never lower than the input's precision, so a float64 module is float64 end to end.
        dtype = torch.promote_types(x.dtype, torch.float32)
        raw = self.score_net(x, None if lengths is None else mask).to(dtype).clamp_min(1e-6)  # [B, T]
        score = Fn.normalize_scores(raw, target, mask)

        # Everything after the scores is per clip: done in groups of clips (see clip_groups) and joined.
        pos = Fn.position_table(self.pos_emb, t_in, x)[None] if self.resolution_encoding else None  # [1, T, F]
        parts = [self._aggregate(x[g], score[g], mask[g], t_out, pos) for g in Fn.clip_groups(x)]
        features = torch.cat([f for f, _ in parts]) if len(parts) > 1 else parts[0][0]  # [B, C, T', F]
        empty = torch.cat([e for _, e in parts]) if len(parts) > 1 else parts[0][1]  # [B, T]
        out_lengths = None
        if lengths is not None:
            out_lengths = torch.as_tensor(target, device=x.device)
            features = features * Fn.length_mask(out_lengths, batch, t_out, x.device)[:, None, :, None]

        return DiffResOutput(
            features=features,
            aux_loss=Fn.guide_loss(score, empty, self.reduction_rate),
            score=score[..., None],
            activeness=Fn.activeness(score.detach(), mask & ~empty),
            lengths=out_lengths,
            avgpool=features[:, 0],
            maxpool=features[:, 1],
            resolution_enc=features[:, 2] if self.resolution_encoding else None,
        )

    def _aggregate(self, x: Tensor, score: Tensor, mask: Tensor, t_out: int, pos: Tensor | None):
        """Merged channels ``[b, C, T', F]`` and empty-frame mask ``[b, T]`` of a group of clips."""
        warp = Fn.warp_weights(score, t_out)
        channels = list(Fn.merge_frames(x, warp, self.reduction_rate))  # mean, max: [b, T', F] each
        if pos is not None:
            channels.append(Fn.aggregate_linear(pos, warp))
        return torch.stack(channels, dim=1), Fn.empty_frame_mask(x, mask)
