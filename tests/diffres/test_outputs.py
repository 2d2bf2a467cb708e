"""The result types (diffres.outputs) as read-only mappings, as the reference pydiffres dict."""

import dataclasses
from collections.abc import Mapping

import pytest
import torch

from diffres import DiffRes, DiffResOutput, FrontendOutput, create_frontend

REFERENCE_KEYS = {"feature", "score", "guide_loss", "activeness", "avgpool", "maxpool", "resolution_enc"}


def test_diffres_output_has_every_key_of_the_reference_dict():
    ret = DiffRes(100, 16, 0.5)(torch.randn(2, 100, 16))
    assert isinstance(ret, Mapping) and isinstance(ret, DiffResOutput)
    assert REFERENCE_KEYS <= set(ret.keys())
    assert list(ret) == ["features", "aux_loss", "score", "activeness", "avgpool", "maxpool", "resolution_enc",
                         "feature", "guide_loss"]
    assert len(ret) == 9 and len(dict(ret)) == 9
    for key in REFERENCE_KEYS:
        assert key in ret and ret.get(key) is ret[key]
    assert ret["feature"] is ret.features and ret["guide_loss"] is ret.aux_loss
    assert dict(ret.items())["score"] is ret.score and any(v is ret.score for v in ret.values())
    assert ret.get("nope") is None and "nope" not in ret and ret.get("nope", 1) == 1


def test_none_fields_are_not_keys_but_stay_attributes():
    noenc = create_frontend("diffres-noenc", 100, 16, 0.5)(torch.randn(2, 100, 16))
    assert noenc.resolution_enc is None and noenc.lengths is None
    assert "resolution_enc" not in noenc and "lengths" not in noenc
    assert noenc.get("resolution_enc") is None
    with pytest.raises(KeyError, match="'resolution_enc' is not set"):
        noenc["resolution_enc"]
    padded = DiffRes(100, 16, 0.5)(torch.randn(2, 100, 16), lengths=torch.tensor([100, 60]))
    assert padded["lengths"].tolist() == [50, 30]


def test_baseline_output_is_a_mapping_with_the_reference_names():
    out = create_frontend("avgpool", 100, 16, 0.5)(torch.randn(2, 100, 16))
    assert type(out) is FrontendOutput
    assert list(out) == ["features", "aux_loss", "feature", "guide_loss"]
    assert out["feature"] is out.features and out.get("guide_loss") is out.aux_loss
    assert out.get("score") is None and "score" not in out
    with pytest.raises(KeyError, match="not an output field"):
        out["avgpool"]


def code_written_for_pydiffres(ret) -> torch.Tensor:
    """As the reference's users read its dict."""
    loss = ret["guide_loss"]
    if ret.get("score") is not None and "activeness" in ret:
        loss = loss + 0.0 * ret["activeness"]
    return ret["feature"].mean() + loss + sum(v.sum() * 0 for k, v in ret.items() if k.endswith("pool"))


def test_code_written_for_the_reference_dict_runs_unchanged():
    ret = DiffRes(100, 16, 0.5)(torch.randn(2, 100, 16))
    code_written_for_pydiffres(ret).backward()


def test_outputs_are_frozen():
    out = create_frontend("spec", 10, 4, 0.0)(torch.randn(1, 10, 4))
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.features = torch.zeros(1)
    with pytest.raises(TypeError):
        out["features"] = torch.zeros(1)
