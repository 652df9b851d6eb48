"""The profile's split of wall time, and one profiled call on the tiny model."""

from __future__ import annotations

import pytest
import torch

from truthmap.profile import is_matmul, profile, time_shares


def test_time_shares_split_wall_time_three_ways():
    shares = time_shares({"aten::mm": 2e6, "aten::addmm": 1e6, "aten::softmax": 0.5e6, "aten::cat": 0.5e6}, 5.0)
    assert shares == pytest.approx({"matmul": 0.6, "other_ops": 0.2, "outside_ops": 0.2})
    assert time_shares({"aten::mm": 3e6}, 2.0)["outside_ops"] == 0.0  # threads' time can exceed wall time


def test_matrix_products_are_told_from_other_operators():
    assert is_matmul("aten::mm") and is_matmul("aten::_scaled_dot_product_flash_attention_for_cpu")
    assert not is_matmul("aten::linear") and not is_matmul("aten::matmul")  # wrappers: no self time of their own
    assert not is_matmul("aten::mul")


def test_profile_of_one_forward(tiny_model):
    model, _ = tiny_model
    out = profile(lambda: model(input_ids=torch.tensor([[5, 6, 7, 8]])), model)
    assert out["tokens"] == 4 and out["calls"] == 1 and out["flops"] > 0 and out["wall_s"] > 0
    assert any(is_matmul(op) for op in out["self_us"])
