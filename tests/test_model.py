"""The VPT trunk: shapes, (non-)causality, learning, class weights."""

import numpy as np
import pytest
import torch

from swag.actions import from_multihot, to_multihot
from swag.data import class_weights
from swag.model import ModelConfig, VPTModel, autocast, uses_bf16



def tiny_config(**overrides) -> ModelConfig:
    values = dict(embedding_dim=16, ff_dim=32, transformer_heads=2, transformer_blocks=1,
                  dimensions={"x": 16, "y": 12}, feature_channels=[4, 8], spatial_channels=4, sequence_length=8)
    values.update(overrides)
    return ModelConfig(**values)


def random_frames(batch=2, length=8, height=12, width=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, length, height, width, 3), dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("head,outputs", [("buttons", 8), ("joint", 256)])
def test_shapes_probs_and_predictions(head, outputs):
    torch.manual_seed(0)
    model = VPTModel(tiny_config(head=head)).eval()
    frames = random_frames()
    targets = torch.randint(0, 256, (2, 8))
    logits, loss = model(frames, targets)
    assert logits.shape == (2, 8, outputs)
    assert loss.ndim == 0 and torch.isfinite(loss)
    probs = model.button_probs(logits)
    assert probs.shape == (2, 8, 8) and (probs >= 0).all() and (probs <= 1).all()
    actions, confidence = model.predict(logits)
    assert actions.dtype == torch.uint8 and actions.shape == (2, 8)
    assert ((confidence > 0) & (confidence <= 1)).all()
    # a shorter window than sequence_length works (the start and end of a video)
    assert model(frames[:, :5])[0].shape == (2, 5, outputs)
    with pytest.raises(ValueError, match="expects 16x12"):
        model(random_frames(height=16))


def test_joint_head_marginals_match_bytes():
    model = VPTModel(tiny_config(head="joint")).eval()
    logits = torch.full((1, 1, 256), -30.0)
    logits[0, 0, 0b10000011] = 30.0  # A + B + right, almost surely
    probs = model.button_probs(logits)[0, 0]
    assert torch.allclose(probs, torch.tensor([1, 1, 0, 0, 0, 0, 0, 1], dtype=torch.float32), atol=1e-4)
    assert model.predict(logits)[0].item() == 0b10000011


# "bf16" is bf16 on CPUs that compute it natively (swag.model.uses_bf16), fp32 elsewhere
PRECISIONS = ["fp32", "bf16"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_idm_sees_the_future_and_the_policy_does_not(precision, monkeypatch):
    monkeypatch.setenv("SWAG_PRECISION", precision)
    torch.manual_seed(0)
    frames = random_frames()
    changed = frames.clone()
    changed[:, 5] = 255 - changed[:, 5]  # alter frame 5 only
    idm = VPTModel(tiny_config(causal=False)).eval()
    policy = VPTModel(tiny_config(causal=True)).eval()
    idm.load_state_dict(policy.state_dict())  # the same weights: only the mask and padding differ
    with torch.no_grad(), autocast("cpu"):
        idm_before, idm_after = idm(frames)[0], idm(changed)[0]
        policy_before, policy_after = policy(frames)[0], policy(changed)[0]
    # IDM: the prediction at t=3 depends on frame 5 (through the temporal conv and the attention)
    assert (idm_before[:, 3] - idm_after[:, 3]).abs().max() > 1e-4
    # policy: outputs before frame 5 are bit-for-bit unchanged; at and after frame 5 they change
    assert torch.equal(policy_before[:, :5], policy_after[:, :5])
    assert (policy_before[:, 5] - policy_after[:, 5]).abs().max() > 1e-4


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("head", ["buttons", "joint"])
def test_overfits_one_batch(head, precision, monkeypatch):
    monkeypatch.setenv("SWAG_PRECISION", precision)
    torch.manual_seed(0)
    model = VPTModel(tiny_config(head=head))
    frames = random_frames(batch=4, seed=1)
    targets = torch.randint(0, 256, (4, 8), generator=torch.Generator().manual_seed(2)) & 0b11000011
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    first = None
    for _ in range(120):
        with autocast("cpu"):
            logits, loss = model(frames, targets)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    predicted, _ = model.predict(model(frames)[0])
    assert loss.item() < 0.1 * first
    assert (predicted.long() == targets).float().mean() > 0.9


def test_precision_is_bf16_on_a_cpu_where_native_unless_fp32_is_asked_for(monkeypatch):
    native = torch.cpu._is_avx512_bf16_supported()
    monkeypatch.delenv("SWAG_PRECISION", raising=False)
    assert uses_bf16("cpu") == native and uses_bf16("cpu", "bf16") == native  # "auto" is "bf16"
    assert not uses_bf16("cpu", "fp32")
    with autocast("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == (torch.bfloat16 if native else torch.float32)
    with autocast("cpu", "fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    monkeypatch.setenv("SWAG_PRECISION", "fp32")  # the environment overrides a stage's setting
    assert not uses_bf16("cpu", "bf16") and not uses_bf16("cpu")
    monkeypatch.setenv("SWAG_PRECISION", "bf16")
    assert uses_bf16("cpu", "fp32") == native
    monkeypatch.setenv("SWAG_PRECISION", "fp16")
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32, got 'fp16'"):
        uses_bf16("cpu")


def test_frame_weights_mask_the_loss():
    torch.manual_seed(0)
    model = VPTModel(tiny_config())
    frames = random_frames()
    targets = torch.randint(0, 256, (2, 8))
    weights = torch.zeros(2, 8)
    weights[:, :4] = 1.0
    logits, weighted = model(frames, targets, weights)
    other = targets.clone()
    other[:, 4:] = 255 - other[:, 4:]  # labels of weight-0 frames do not matter
    assert torch.allclose(weighted, model.loss(logits, other, weights))
    assert not torch.allclose(weighted, model.loss(logits, other))


def test_class_weights_balance_and_clip():
    # right pressed 90%, A 10%, B 1%, never select
    rng = np.random.default_rng(0)
    pressed = np.zeros((10000, 8), bool)
    pressed[:, 7] = rng.random(10000) < 0.9
    pressed[:, 0] = rng.random(10000) < 0.1
    pressed[:, 1] = rng.random(10000) < 0.01
    actions = from_multihot(pressed)
    weights = class_weights(actions, "buttons", min_class_weight=0.1).numpy()  # (2, 8): (off, on)
    assert weights.shape == (2, 8)
    p = to_multihot(actions).mean(0)
    # unclipped entries balance the two classes: weight x frequency is equal
    assert np.isclose(weights[1, 0] * p[0], weights[0, 0] * (1 - p[0]), rtol=0.02)
    assert np.isclose(weights[1, 7] * p[7], weights[0, 7] * (1 - p[7]), rtol=0.02)
    # rare and absent buttons are clipped to 1/min_class_weight, nothing goes below min_class_weight
    assert weights[1, 1] == pytest.approx(10.0) and weights[1, 2] == pytest.approx(10.0)
    assert weights.min() >= 0.1
    assert np.allclose(class_weights(actions, "buttons", min_class_weight=1.0).numpy(), 1.0)
    joint = class_weights(actions, "joint", 0.1).numpy()
    assert joint.shape == (256,) and joint.min() >= 0.1 and joint.max() <= 10.0
    assert joint[0b10000000] < joint[0b10000011]  # common byte weighs less than a rare one


def test_config_round_trip_and_unknown_keys():
    config = tiny_config(causal=True, head="joint")
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown model config keys: colour"):
        ModelConfig.from_dict({**config.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="divisible"):
        tiny_config(embedding_dim=15)
