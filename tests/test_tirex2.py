"""Our TiRex-2 equals NX-AI's reference package (issue 45): the same checkpoint, seeded
random weights, the same quantile forecasts in float32 to 1e-4 of the series' scale."""

import json
import math

import pytest
import torch
from tirex2_reference import config, reference_model, save_reference

from xlstm_ts.cells import slstm
from xlstm_ts.models.tirex2 import (
    SeriesInput,
    TiRex2Config,
    forecast,
    load_checkpoint,
    save_checkpoint,
)

tirex2 = pytest.importorskip("tirex2", reason="the tirex-2 package is the test oracle "
                             "(the dev extra installs it on Python >= 3.11)")
from tirex2.model.types import TimeseriesType  # noqa: E402

TOLERANCE = 1e-4


def _pair(tmp_path, name="ckpt", **options):
    cfg = config(**options)
    ref = reference_model(cfg)
    return ref, load_checkpoint(save_reference(ref, cfg, tmp_path / name))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return _pair(tmp_path_factory.mktemp("tirex2"))


def _series(generator, variates=1, length=50, past=0, future=0, horizon=24, level=10.0,
            missing=False):
    t = torch.arange(length, dtype=torch.float32)
    target = level + torch.sin(t / 3) + 0.3 * torch.randn(variates, length, generator=generator)
    if missing:
        target[:, length // 4: length // 4 + 7] = float("nan")
        target[0, -3] = float("nan")
    return TimeseriesType(
        target=target,
        past_covariates=torch.randn(past, length, generator=generator) if past else None,
        future_covariates=(torch.randn(future, length + horizon + 5, generator=generator)
                           if future else None))


def _compare(ref, ours, batch, horizon, **options):
    expected = ref.predict(batch, horizon, **options)
    got = forecast(ours, [SeriesInput(s.target, s.past_covariates, s.future_covariates)
                          for s in batch], horizon, **options)
    assert len(got) == len(expected)
    for s, a, b in zip(batch, expected, got, strict=True):
        assert b.shape == a.shape == (s.target.shape[0], 9, min(horizon, 24))
        scale = float(s.target[~s.target.isnan()].std())
        assert float((a - b).abs().max()) <= TOLERANCE * scale, float((a - b).abs().max())


CASES = {  # name -> (series kwargs per batch element, horizon)
    "univariate": ([{}], 16),
    "missing values": ([{"missing": True}], 16),
    "past-only covariates": ([{"past": 2}], 16),
    "future-known covariates": ([{"future": 2}], 16),
    "both covariates, several targets": ([{"variates": 2, "past": 1, "future": 1}], 16),
    "several variates": ([{"variates": 3}], 16),
    "context shorter than the model's": ([{"length": 20}], 16),
    "context longer than the model's": ([{"length": 150}], 16),
    "one patch": ([{}], 8),
    "part of a patch": ([{}], 5),
    "the model's maximum": ([{}], 24),
    "ragged batch": ([{"length": 30}, {"length": 90, "variates": 2}, {"length": 47,
                                                                      "future": 1}], 16),
    "trending series (differenced)": ([{"level": 0.0}], 16),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("sign_flip", [False, True])
def test_forecasts_equal_the_reference(models, case, sign_flip):
    ref, ours = models
    generator = torch.Generator().manual_seed(len(case))
    specs, horizon = CASES[case]
    batch = [_series(generator, horizon=horizon, **spec) for spec in specs]
    if case.startswith("trending"):
        batch = [TimeseriesType(target=torch.arange(50.0)[None] * 2 + 0.1 * torch.randn(1, 50),
                                past_covariates=None, future_covariates=None)]
    _compare(ref, ours, batch, horizon, tta_sign_flip=sign_flip)


@pytest.mark.parametrize("tta_diff", [False, True])
def test_differencing_switch_matches(models, tta_diff):
    ref, ours = models
    batch = [TimeseriesType(target=torch.arange(60.0)[None] * 3 + torch.randn(1, 60),
                            past_covariates=None, future_covariates=None)]
    _compare(ref, ours, batch, 16, tta_diff=tta_diff)


@pytest.mark.parametrize("options", [
    {"scaler_cfg": {"eps": 1e-8, "use_arcsinh": True}},
    {"scaler_cfg": {"eps": 1e-8, "binaryaware": True}},
    {"stack_out_norm_config": {"eps": 1e-7}},
    {"stack_out_norm_config": {"eps": 1e-6, "use_rmsnorm": True}},
    {"tta_sign_flip": True, "recipe": ("s", "m", "s"), "h_expand": 2.0},
])
def test_checkpoint_options_match(tmp_path, options):
    ref, ours = _pair(tmp_path, **options)
    generator = torch.Generator().manual_seed(3)
    batch = [_series(generator), _series(generator, past=1, future=1, length=40)]
    binary = torch.bernoulli(torch.full((1, 50), 0.3), generator=generator)
    batch.append(TimeseriesType(target=binary, past_covariates=None, future_covariates=None))
    for horizon in (8, 24):  # the checkpoint's own TTA defaults apply (no override)
        expected = ref.predict(batch, horizon)
        got = forecast(ours, [SeriesInput(s.target, s.past_covariates, s.future_covariates)
                              for s in batch], horizon)
        for a, b in zip(expected, got, strict=True):
            assert float((a - b).abs().max()) <= TOLERANCE * max(1.0, float(a.abs().max()))


def test_aliases_stored_once_load_too(tmp_path):
    cfg = config()
    ref = reference_model(cfg)
    ours = load_checkpoint(save_reference(ref, cfg, tmp_path / "once", keep_aliases=False))
    batch = [_series(torch.Generator().manual_seed(0), future=1)]
    _compare(ref, ours, batch, 16)


def test_our_checkpoint_round_trips_and_the_reference_reads_it(tmp_path, models):
    from tirex2.base import load_model

    _, ours = models
    folder = save_checkpoint(ours, tmp_path / "ours")
    again = load_checkpoint(folder)
    for (k, a), (_, b) in zip(ours.state_dict().items(), again.state_dict().items(),
                              strict=True):
        assert torch.equal(a, b), k
    reference = load_model(str(folder), device="cpu").model
    batch = [_series(torch.Generator().manual_seed(5), past=1)]
    _compare(reference, again, batch, 16)


def test_rollout_past_the_maximum_is_continuous_and_shaped(models):
    _, ours = models
    s = _series(torch.Generator().manual_seed(2), length=60)
    series = SeriesInput(s.target)
    long = forecast(ours, [series], 60)[0]
    assert long.shape == (1, 9, 60) and torch.isfinite(long).all()
    first = forecast(ours, [series], 24)[0]
    torch.testing.assert_close(long[..., :24], first)  # the first block is the forecast
    median = long[0, 4]
    steps = median.diff().abs()
    # no jump where the second block starts beyond the jumps inside the first block
    assert float(steps[23]) <= 3 * float(steps[:23].max()) + 1e-6
    # the second block is forecast from the history extended by the first block's median
    extended = SeriesInput(torch.cat([series.target, first[:, 4]], -1))
    torch.testing.assert_close(long[..., 24:48], forecast(ours, [extended], 24)[0])


@pytest.mark.parametrize("tamper, match", [
    (lambda c: c.update(embedding_dim=48), r"tensor '.*' has shape .* needs"),
    (lambda c: c.update(quantiles=[0.1, 0.5, 0.9]), r"output_patch_embedding.*shape.*3 quantiles"),
    (lambda c: c["stack_config"].update(recipe=["m", "m"]), r"unknown name|not in the checkpoint"),
    (lambda c: c.update(act_func="os.system"), r"act_func 'system' is not one of"),
])
def test_a_checkpoint_that_does_not_fit_names_the_tensor(tmp_path, tamper, match):
    cfg = config()
    folder = save_reference(reference_model(cfg), cfg, tmp_path / "bad")
    changed = json.loads((folder / "config.json").read_text())
    tamper(changed)
    if changed["embedding_dim"] != 32:
        for template in changed["stack_config"]["templates"].values():
            template["time_mixer"]["embedding_dim"] = template["variate_mixer"][
                "embedding_dim"] = changed["embedding_dim"]
    (folder / "config.json").write_text(json.dumps(changed))
    with pytest.raises(ValueError, match=match):
        load_checkpoint(folder)


def test_no_pickle_and_clear_errors_for_missing_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"config\.json is missing"):
        load_checkpoint(tmp_path / "empty")
    with pytest.raises(ValueError, match="neither a checkpoint folder"):
        load_checkpoint(tmp_path / "nowhere" / "x")


def test_hub_names_without_network_say_how_to_download(monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def offline(**kwargs):
        raise hub.errors.LocalEntryNotFoundError("offline")

    monkeypatch.setattr(hub, "snapshot_download", offline)
    with pytest.raises(OSError, match=r"huggingface-cli download NX-AI/TiRex-2 .*pass its path"):
        load_checkpoint("NX-AI/TiRex-2")


def test_config_round_trips():
    cfg = TiRex2Config.from_dict(config(recipe=("m", "s", "s")))
    assert TiRex2Config.from_dict(cfg.to_dict()) == cfg
    assert [b.time_mixer for b in cfg.blocks] == ["bi-mlstm", "bi-slstm", "bi-slstm"]


def test_our_slstm_cell_equals_flashrnns():
    """FlashRNN's sLSTM (TiRex-2's) floors the normalizer at 1; from an empty state the
    stabilised normalizer is at least 1 anyway, so our cell gives its numbers."""
    from flashrnn.flashrnn.vanilla import flashrnn_forward
    from flashrnn.flashrnn.vanilla.slstm import flashrnn_forward_pointwise

    g = torch.Generator().manual_seed(0)
    B, S, NH, DH = 3, 12, 2, 4
    gx = 3 * torch.randn(B, S, 4, NH, DH, generator=g)
    R = 0.5 * torch.randn(NH, DH, 4, DH, generator=g)  # FlashRNN's (H, D_in, G, D_out)
    states = torch.zeros(1, B, 4, NH, DH)
    out, _ = flashrnn_forward(gx.transpose(0, 1), states, R, torch.zeros(4, NH, DH),
                              flashrnn_forward_pointwise)
    h, (_, _, n, _) = slstm(gx, R.permute(2, 0, 1, 3), backend="torch", return_state=True)
    torch.testing.assert_close(h, out[:, :, 0].transpose(0, 1), atol=1e-5, rtol=1e-5)
    assert bool((out[:, :, 2] >= 1).all()) and bool((n >= 1).all())


def test_full_size_parameter_count():
    """The benchmark's full-size configuration is about the released model's size."""
    from tirex2_reference import full_size

    from xlstm_ts.models.tirex2 import TiRex2Network

    cfg = TiRex2Config.from_dict(full_size())
    count = sum(p.numel() for p in TiRex2Network(cfg).parameters())
    assert 34e6 < count < 44e6, count
    assert math.isclose(cfg.context_len, 2048) and cfg.future_len == 320
