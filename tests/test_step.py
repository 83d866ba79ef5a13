"""Tests of gru4rec.step: every path that claims a configuration trains the model that autograd
(the reference path) trains, from the same generator state.

:class:`PathsAgreeWithAutograd` is the mixin: a test class names a loss configuration and
inherits one test per configuration variant, which trains the reference and then every other
path :func:`gru4rec.step.paths_for` offers for it. :class:`TestEveryRegisteredLoss` runs it for
every loss in the registry (a newly registered loss is picked up by itself);
:class:`TestAToyLoss` registers a loss of its own, as ``docs/architecture.rst`` tells a
maintainer to, and trains it on every path that claims it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import events, neg

from gru4rec import kernels, step
from gru4rec.losses import LOSS_CLASSES, Loss, LossConfig, ScoredItems, register_loss
from gru4rec.model import GRU4RecNet, gru_cell_backward, gru_cell_forward
from gru4rec.schedule import session_parallel_schedule
from gru4rec.step import Epoch, EpochData

PATH_NAMES = {
    step.reference.train_epoch: "reference",
    step.direct.train_epoch: "direct",
    step.compiled.train_epoch: "compiled",
}


def _random_sessions(n_sessions: int, n_items: int, seed: int):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 6, size=n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return rng.integers(0, n_items, size=offsets[-1]), offsets


def make_run(
    loss_cfg: LossConfig,
    *,
    layers=1,
    constrained=True,
    dedup=True,
    clipnorm=None,
    dropout=(0.3, 0.2),
    momentum=0.3,
    n_items=40,
    seed=3,
) -> Epoch:
    """A small epoch (30 sessions, 5 units, adagrad, 30 negatives drawn with alpha 0.5)."""
    items, offsets = _random_sessions(30, n_items, seed=seed)
    schedule = session_parallel_schedule(offsets, np.arange(len(offsets) - 1), 6)
    data = EpochData.build(items, schedule, torch.device("cpu"))
    net = GRU4RecNet(
        n_items, hidden_size=5, num_layers=layers, embedding_size=4, constrained=constrained
    )
    net.reset_parameters(torch.Generator().manual_seed(0))
    opt = step.build_optimizer(net, "adagrad", lr=0.2, momentum=momentum)
    gen = torch.Generator().manual_seed(7)
    counts = np.bincount(items, minlength=n_items)
    sampler = step.build_sampler(
        counts, 0.5, 30, gen, torch.device("cpu"), buffer_size=300, dedup=dedup
    )
    return Epoch(net, data, opt, loss_cfg, sampler, gen, dropout[0], dropout[1], clipnorm=clipnorm)


def train_twice(path, loss_cfg: LossConfig, **variant):
    """Two epochs of ``path`` on a fresh :func:`make_run`: the model and both epoch totals."""
    run = make_run(loss_cfg, **variant)
    return run.model, [path(run) for _ in range(2)]


def claiming_paths(loss_cfg: LossConfig, **variant) -> list:
    """The paths other than the reference that claim this configuration."""
    return [
        p
        for p in step.paths_for(make_run(loss_cfg, **variant))
        if p is not step.reference.train_epoch
    ]


def assert_trains_like(net, totals, ref, ref_totals) -> None:
    # Float rounding differs (other operation order, the kernels' own exp) and Adagrad
    # amplifies it where the accumulated squares are tiny; a wrong gradient is off by
    # orders of magnitude more.
    for a, b in zip(net.state_dict().values(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    for a, b in zip(totals, ref_totals, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-5)


VARIANTS = {
    "default": {},
    "2-layers": {"layers": 2},
    "separate-embedding": {"constrained": False},
    "raw-negatives": {"dedup": False},
    "clipnorm": {"clipnorm": 0.05},  # tight enough to clip (0.5 never did here)
    "plain": {"dropout": (0.0, 0.0), "momentum": 0.0},
    "embedding-dropout": {"dropout": (0.5, 0.0)},
}


class PathsAgreeWithAutograd:
    """Mixin: every path that claims the configuration trains the reference path's model.

    A test class provides the loss configuration as a ``loss_cfg`` fixture."""

    @pytest.mark.parametrize("variant", list(VARIANTS))
    def test_every_path_trains_like_autograd(self, loss_cfg, variant):
        params = VARIANTS[variant]
        paths = claiming_paths(loss_cfg, **params)
        if not paths:
            pytest.skip(f"only the reference path trains {loss_cfg}")
        ref, ref_totals = train_twice(step.reference.train_epoch, loss_cfg, **params)
        init = make_run(loss_cfg, **params).model
        assert (ref.item_output - init.item_output).abs().max() > 0.01  # it did train
        for path in paths:
            net, totals = train_twice(path, loss_cfg, **params)
            assert_trains_like(net, totals, ref, ref_totals)


def _registered_configs() -> list[LossConfig]:
    """Every sampled loss of the registry with its defaults, and the parameters that change
    its computation where it has any."""
    extra = {
        "cross-entropy": [dict(logq=1.0)],  # the sampler's alpha is 0.5
        "bpr-max": [dict(bpreg=0.9, elu_param=1.0), dict(bpreg=0.5, elu_param=0.5)],
        "top1-max": [dict(elu_param=1.0)],
    }
    configs = []
    for name, cls in LOSS_CLASSES.items():
        if cls.sampled:
            configs.append(LossConfig(name, bpreg=0.0 if name == "bpr-max" else 1.0))
            configs += [LossConfig(name, **p) for p in extra.get(name, [])]
    return configs


class TestEveryRegisteredLoss(PathsAgreeWithAutograd):
    @pytest.fixture(
        params=_registered_configs(), ids=lambda c: f"{c.name}-{c.bpreg}-{c.elu_param}-{c.logq}"
    )
    def loss_cfg(self, request):
        return request.param


class SquaredError(Loss):
    """A toy loss: the mean squared distance of the scores from the identity (1 for a row's
    positive, 0 for every other column), with its closed form."""

    name = "toy-squared-error"

    def value(self, scores: torch.Tensor, columns: ScoredItems) -> torch.Tensor:
        target = torch.eye(*scores.shape)
        return (scores - target).square().mean()

    def closed_form(self, scores: torch.Tensor, columns: ScoredItems):
        d = scores - torch.eye(*scores.shape)
        return d.square().mean() * columns.scale, d * (2 * columns.scale / d.numel())


class AbsoluteError(SquaredError):
    """The same without a closed form: the hand-differentiated path takes autograd over the
    scores."""

    name = "toy-absolute-error"
    closed_form = None

    def value(self, scores: torch.Tensor, columns: ScoredItems) -> torch.Tensor:
        return (scores - torch.eye(*scores.shape)).abs().mean()


class TestAToyLoss(PathsAgreeWithAutograd):
    @pytest.fixture(params=[SquaredError, AbsoluteError], ids=lambda c: c.name)
    def loss_cfg(self, request, monkeypatch):
        monkeypatch.setattr("gru4rec.losses.LOSS_CLASSES", dict(LOSS_CLASSES))
        register_loss(request.param)
        return LossConfig(request.param.name)

    def test_a_registered_loss_is_claimed_by_the_torch_paths(self, loss_cfg):
        names = [PATH_NAMES[p] for p in step.paths_for(make_run(loss_cfg))]
        assert names == ["direct", "reference"]  # no compiled form: not the compiled path
        assert step.paths_for(make_run(loss_cfg)) == step.paths_for(make_run(loss_cfg, layers=2))

    def test_the_estimator_fits_with_a_loss_registered_outside_the_package(self, loss_cfg):
        # Registered after gru4rec was imported: loss_fn reads the registry at fit.
        model = neg(loss_fn=loss_cfg.name).fit(events())
        assert model.loss_fn == loss_cfg.name
        assert np.isfinite(model.history_[-1]["train_loss"])
        with pytest.raises(ValueError, match="loss_fn must be one of") as err:
            neg(loss_fn="toy-unknown").fit(events())
        for name in ("'bpr'", "'cross-entropy'", repr(loss_cfg.name)):
            assert name in str(err.value)


def test_the_toy_loss_leaves_the_registry_as_it_was():
    assert not any(name.startswith("toy-") for name in LOSS_CLASSES)


# -- the dispatcher -------------------------------------------------------------------------------


def test_train_epoch_uses_the_direct_path_only_where_it_applies(monkeypatch):
    calls = []
    monkeypatch.setattr(step.direct, "train_epoch", lambda *a, **k: calls.append("direct"))
    monkeypatch.setattr(step.reference, "train_epoch", lambda *a, **k: calls.append("auto"))
    sampler = object()
    cfg = LossConfig("top1")  # (one layer of cross-entropy, bpr-max, bpr: the compiled step)
    step.train_epoch(Epoch(None, None, None, cfg, sampler, None))
    step.train_epoch(Epoch(None, None, None, cfg, sampler, None, bptt=2))
    step.train_epoch(Epoch(None, None, None, LossConfig("full-cross-entropy"), None, None))
    assert calls == ["direct", "auto", "auto"]


def test_train_epoch_takes_the_compiled_step_where_it_applies(monkeypatch):
    pytest.importorskip("numba")
    calls = []
    monkeypatch.setattr(kernels, "AVAILABLE", True)
    monkeypatch.setattr(step.compiled, "train_epoch", lambda *a, **k: calls.append("fused"))
    monkeypatch.setattr(step.direct, "train_epoch", lambda *a, **k: calls.append("direct"))
    one, two = GRU4RecNet(5, 4, num_layers=1), GRU4RecNet(5, 4, num_layers=2)
    xe, bpr_max = LossConfig("cross-entropy"), LossConfig("bpr-max")
    bpr, top1 = LossConfig("bpr"), LossConfig("top1")
    step.train_epoch(Epoch(one, None, None, xe, object(), None))
    step.train_epoch(Epoch(one, None, None, bpr_max, object(), None))
    step.train_epoch(Epoch(one, None, None, xe, object(), None, clipnorm=1.0))
    step.train_epoch(Epoch(one, None, None, bpr, object(), None))
    step.train_epoch(Epoch(two, None, None, xe, object(), None))
    step.train_epoch(Epoch(one, None, None, top1, object(), None))
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    step.train_epoch(Epoch(one, None, None, xe, object(), None))
    assert calls == ["fused", "fused", "fused", "fused", "direct", "direct", "direct"]


# -- the compiled path's own cases ----------------------------------------------------------------


def test_compiled_step_clips_the_gradient_norm():
    # The clipnorm variant must clip: a tight bound changes the trained model.
    pytest.importorskip("numba")
    if not kernels.AVAILABLE:
        pytest.skip("the compiled kernels are disabled")
    cfg = LossConfig("bpr-max", bpreg=0.9, elu_param=1.0)
    free, _ = train_twice(step.compiled.train_epoch, cfg)
    clipped, _ = train_twice(step.compiled.train_epoch, cfg, clipnorm=0.05)
    ref, _ = train_twice(step.direct.train_epoch, cfg, clipnorm=0.05)
    assert not torch.allclose(free.item_output, clipped.item_output, rtol=1e-2, atol=1e-3)
    torch.testing.assert_close(clipped.item_output, ref.item_output, rtol=1e-3, atol=1e-4)


def test_compiled_step_takes_the_torch_loss_where_the_closed_form_fails(monkeypatch):
    # Every step through the fallback: still the reference computation's training.
    pytest.importorskip("numba")
    if not kernels.AVAILABLE:
        pytest.skip("the compiled kernels are disabled")
    cfg = LossConfig("bpr-max", bpreg=0.9, elu_param=1.0)
    ref, ref_totals = train_twice(step.reference.train_epoch, cfg)
    calls = []

    def no_closed_form(scores_t, *args):
        calls.append(1)
        return float("nan")

    monkeypatch.setattr(kernels, "bpr_max_step_loss", no_closed_form)
    net, totals = train_twice(step.compiled.train_epoch, cfg)
    assert calls
    assert_trains_like(net, totals, ref, ref_totals)


# -- the compiled passes of the CPU paths against the torch code -----------------------------------


@pytest.mark.parametrize("with_mask", [False, True])
def test_gru_backward_kernel_equals_the_torch_backward(with_mask):
    pytest.importorskip("numba")
    g = torch.Generator().manual_seed(1)
    cell = torch.nn.GRUCell(5, 7)
    x, h = torch.randn(4, 5, generator=g), torch.randn(4, 7, generator=g)
    grad = torch.randn(4, 7, generator=g)
    mask = (torch.rand(4, 7, generator=g) > 0.3).float() * 1.5 if with_mask else None
    grads = []
    for backward in (gru_cell_backward, step.direct.host_cell_backward):
        _, cache = gru_cell_forward(cell, x, h)
        d_input = backward(cell, cache, grad.clone(), mask=mask)
        grads.append([d_input] + [p.grad.clone() for p in cell.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # And both are autograd's gradient of sum(grad * mask * cell(x, h)).
    cell.zero_grad()
    xr = x.clone().requires_grad_(True)
    out = cell(xr, h) * (mask if mask is not None else 1.0)
    (out * grad).sum().backward()
    torch.testing.assert_close(grads[1][0], xr.grad, rtol=1e-5, atol=1e-6)
    for ours, ref in zip(grads[1][1:], cell.parameters(), strict=True):
        torch.testing.assert_close(ours, ref.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        dict(
            loss_fn="cross-entropy",
            logq=1.0,
            sample_alpha=0.5,
            momentum=0.2,
            constrained_embedding=True,
            dropout_hidden=0.3,
        ),
        dict(loss_fn="bpr-max", bpreg=0.5, elu_param=0.5, dropout=0.2, momentum=0.1),
        dict(loss_fn="bpr", optimization_algorithm="sgd", learning_rate=0.05),
    ],
    ids=["xe-logq", "bpr-max", "bpr-sgd"],
)
def test_a_fit_with_kernels_trains_like_the_torch_code(torch_only, params):
    from tiny import many_sessions, neg

    from gru4rec import InteractionMatrix

    X = InteractionMatrix.from_events(many_sessions())
    fits = []
    for on in (False, True):
        torch_only(on)
        est = neg(max_epochs=1, hidden_size=8, num_negatives=12, batch_size=6, seed=3, **params)
        fits.append(est.fit(X))
    ref, ours = (dict(e.model_.state_dict()) for e in fits)
    for name in ref:
        torch.testing.assert_close(ours[name], ref[name], rtol=1e-3, atol=1e-4)
    assert fits[1].history_[0]["train_loss"] == pytest.approx(
        fits[0].history_[0]["train_loss"], rel=1e-4
    )


@pytest.mark.parametrize("p", [0.1, 0.4, 0.77])
def test_dropout_mask_kernel_gives_the_torch_mask_exactly(p):
    pytest.importorskip("numba")
    from gru4rec.model import dropout_mask
    from gru4rec.step.epoch import host_dropout_mask

    x = torch.ones(13, 7)
    masks = [fn(x, p, torch.Generator().manual_seed(3)) for fn in (dropout_mask, host_dropout_mask)]
    assert torch.equal(masks[0], masks[1])
    assert 0 < int((masks[1] == 0).sum()) < x.numel()


# -- the parts built for a device (gru4rec.step.parts) ---------------------------------------------


@pytest.mark.parametrize("on", [False, True], ids=["torch", "kernels"])
def test_the_parts_take_their_compiled_forms_where_the_kernels_run(torch_only, on):
    torch_only(on)
    net = GRU4RecNet(20, hidden_size=4, num_layers=1)
    opt = step.build_optimizer(net, "adagrad", lr=0.1)
    gen = torch.Generator().manual_seed(0)
    sampler = step.build_sampler(np.ones(20), 0.5, 8, gen, torch.device("cpu"))
    assert (opt.fused, sampler.compiled) == (on, on)
    # Host reads are free on the CPU: distinct rows and negatives are compacted either way.
    assert opt.compact and sampler.dedup
