"""distill/students.py: shapes and dtypes of the programs' inputs and outputs, the registry, the schema."""
import pytest
import torch

from shared.frames import resize_frames

from distill.students import STUDENT_LABELS
from distill.student_config import StudentConfig
from distill.students import EVENT_NAMES, MODELS, example_inputs, io_spec, labels_of, make_student
from shared.config import ConfigError


@pytest.mark.parametrize("name, audio_s, pool", [("trigger", 1.0, "mean"), ("av", 2.0, "mean"),
                                                 ("trigger", 1.0, "max_time"), ("av", 1.0, "max_time")])
def test_forward_returns_probabilities_and_matches_forward_train(name, audio_s, pool):
    cfg = StudentConfig(name=name, audio_s=audio_s, audio_pool=pool)
    entry = MODELS[name](cfg)
    model, inputs = entry.get_eager_model().eval(), entry.get_example_inputs()
    inputs_spec, outputs_spec = io_spec(cfg)
    assert [(t["dtype"], t["shape"]) for t in inputs_spec] == [(str(x.dtype).removeprefix("torch."), list(x.shape)) for x in inputs]
    # forward reads the camera frame and resizes it in the graph; forward_train reads it resized
    # by the same module ahead of time (shared/frames.py), as the training data holds it.
    train_inputs = inputs
    if name == "av":
        train_inputs = (torch.from_numpy(resize_frames(inputs[0].numpy(), cfg.frame_size_px)), inputs[1])
    with torch.no_grad():
        out = model(*inputs)
        train = model.forward_train(*train_inputs)
    out = out if isinstance(out, tuple) else (out,)
    assert [list(o.shape) for o in out] == [t["shape"] for t in outputs_spec]
    assert all(((o >= 0) & (o <= 1)).all() for o in out)
    torch.testing.assert_close(out[0], torch.sigmoid(train["logits"]))
    assert out[0].shape[-1] == len(labels_of(name)) == (len(EVENT_NAMES) if name == "trigger" else len(STUDENT_LABELS))
    if name == "av":
        torch.testing.assert_close(out[1][:, 0], torch.sigmoid(train["confidence_logit"]))


def test_confidence_head_does_not_train_the_tag_features():
    cfg = StudentConfig(name="av", audio_s=1.0)
    model = make_student(cfg)
    frame, pcm = example_inputs(cfg)
    frame = torch.from_numpy(resize_frames(frame.numpy(), cfg.frame_size_px))
    model.forward_train(frame, pcm)["confidence_logit"].sum().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("confidence."))
    assert any(p.grad is not None for n, p in model.named_parameters() if n.startswith("confidence."))


def test_front_end_is_fixed():
    model = make_student(StudentConfig())
    assert not any(n.startswith("front_end") for n, _ in model.named_parameters())


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"name": "vision"}, "student.name"),
        ({"audio_s": 0.75}, "student.audio_s"),
        ({"audio_channels": []}, "student.audio_channels"),
        ({"frame_size_px": 50}, "student.frame_size_px"),
        ({"audio_pool": "max"}, "student.audio_pool"),
        ({"features": {"n_fft": 128}}, "student.features.window_ms"),  # 256-sample window > n_fft
    ],
)
def test_student_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        StudentConfig(**kwargs)
    assert StudentConfig.from_dict(StudentConfig().to_dict()) == StudentConfig()


def test_max_time_pool_counts_a_short_sound_in_full():
    """mean over frequency, max over time: a sound in the newest column of the map weighs as much as
    one that fills the window; the mean pool dilutes it by the share of the window it fills."""
    from distill.students import _global_mean, _max_over_time

    x = torch.zeros(2, 3, 7, 4)
    x[0, :, -1:, :] = 1.0  # only the newest column
    x[1] = 1.0  # the whole window
    x[:, 2] = torch.arange(28.0).reshape(7, 4)  # channel 2: max over time of the frequency means
    torch.testing.assert_close(_max_over_time(x)[:, :2], torch.ones(2, 2))
    torch.testing.assert_close(_global_mean(x)[:, :2], torch.tensor([[1 / 7] * 2, [1.0] * 2]))
    torch.testing.assert_close(_max_over_time(x)[:, 2], torch.full((2,), 25.5))  # mean of 24..27


def test_checkpoints_without_a_pool_load_as_mean_and_the_pool_changes_the_model():
    old = StudentConfig().to_dict()
    del old["audio_pool"]  # a checkpoint written before the option
    assert StudentConfig.from_dict(old).audio_pool == "mean"
    torch.manual_seed(0)
    mean = make_student(StudentConfig()).eval()
    pooled = make_student(StudentConfig(audio_pool="max_time")).eval()
    pooled.load_state_dict(mean.state_dict())  # same weights: only the pooling differs
    (pcm,) = example_inputs(StudentConfig())
    with torch.no_grad():
        assert not torch.allclose(mean(pcm), pooled(pcm))


def test_max_time_trigger_lowers_to_one_xnnpack_block(tmp_path):
    from distill.programs import PteProgram, delegation_summary, lower_to_pte

    cfg = StudentConfig(audio_pool="max_time")
    model, inputs = make_student(cfg).eval(), example_inputs(cfg)
    path = lower_to_pte(model, inputs, tmp_path / "t.pte")
    summary = delegation_summary(path)
    assert summary["delegates"] == ["XnnpackBackend"]
    assert not [op for op in summary["portable_ops"] if "pool" in op or "max" in op or "mean" in op]
    with torch.no_grad():
        expected = model(*inputs).numpy()
    import numpy as np

    np.testing.assert_allclose(PteProgram(path)(*inputs)[0], expected, atol=1e-4)
