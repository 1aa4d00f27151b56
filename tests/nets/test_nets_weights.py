"""Shipped-weights handling and the shared network blocks."""

import json

import pytest
import torch

from bidsapp.nets.blocks import Down, TwoConv, UpCat
from bidsapp.nets.training.cli import build_parser
from bidsapp.nets.weights import WeightsError, load_weights, save_weights

CARD = {"architecture": {"channels": 2}, "input_contract": {}, "training": {"command": "x"}, "metrics": {}}


def test_weights_round_trip_and_checksum(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    save_weights("toy", module, CARD, tmp_path)
    shipped = load_weights("toy", tmp_path)
    assert shipped.card["sha256"] == shipped.sha256
    for key, value in module.state_dict().items():
        assert torch.equal(shipped.state_dict[key], value)
    (tmp_path / "toy.pt").write_bytes((tmp_path / "toy.pt").read_bytes() + b"x")
    with pytest.raises(WeightsError, match="toy.pt: sha256"):
        load_weights("toy", tmp_path)


def test_card_must_be_complete(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"name": "bad"}))
    with pytest.raises(WeightsError, match="bad.json: model card lacks field"):
        load_weights("bad", tmp_path)
    with pytest.raises(WeightsError, match="not shipped"):
        load_weights("absent", tmp_path)


@pytest.mark.parametrize("dims, size", [(1, (17,)), (2, (9, 12)), (3, (5, 6, 7))])
def test_unet_blocks_keep_odd_sizes(dims, size):
    x = torch.randn(2, 3, *size)
    first = TwoConv(dims, 3, 4)(x)
    down = Down(dims, 4, 8)(first)
    up = UpCat(dims, 8, 4, 5)(down, first)
    assert first.shape == (2, 4, *size)
    assert down.shape == (2, 8, *(s // 2 for s in size))
    assert up.shape == (2, 5, *size)


def test_train_cli_requires_a_network():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
