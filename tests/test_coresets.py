"""gedenb.torch.coresets: each method's defining property on a tiny problem, and the harness hooks."""

import math
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gedenb.torch import ArraySource, ImageDataset, LeNet5, TrainConfig, train  # noqa: E402
from gedenb.torch import coresets  # noqa: E402
from gedenb.torch.coresets.base import _residuals  # noqa: E402
from gedenb.torch.coresets.dq import _cosine01  # noqa: E402
from gedenb.torch.coresets import (  # noqa: E402
    CoresetInfeasible, MemoryMonitor, SubsetSampler, dq_bins, dq_sample, glister_select, gradmatch_select,
    last_layer_gradients, omp, tdds_scores,
)

HAS_DATA = bool(os.environ.get("GEDENB_DATA"))


def _linear_problem(rng, n=600, C=3, d=8, shift=0.5):
    """Penultimate features h >= 0 (as after a ReLU), labels, logits of a random last layer."""
    y = rng.integers(0, C, n)
    h = np.abs(rng.normal(size=(n, d)) + shift * y[:, None])
    W = rng.normal(size=(C, d)) * 0.3
    b = rng.normal(size=C) * 0.1
    return h, y, W, b


def _toy_images(n, seed, classes=10):
    r = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = (r.integers(0, 60, (n, 28, 28)) + 19 * y[:, None, None]).astype(np.uint8)
    return x, y


# --------------------------------------------------------------------------- helpers


def test_last_layer_gradients_match_autograd(rng):
    h, y, W, b = _linear_problem(rng, n=7, C=4, d=5)
    layer = torch.nn.Linear(5, 4).double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(W))
        layer.bias.copy_(torch.from_numpy(b))
    z = h @ W.T + b
    got = last_layer_gradients(z, h, y)
    for i in range(len(y)):
        layer.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(torch.from_numpy(h[i:i + 1])), torch.tensor([int(y[i])]))
        loss.backward()
        want = np.concatenate([layer.bias.grad.numpy(), layer.weight.grad.numpy().ravel()])
        np.testing.assert_allclose(got[i], want, rtol=1e-10, atol=1e-12)


def test_embeddings_give_the_classifier_input_and_output():
    x, y = _toy_images(30, 0)
    model = LeNet5()
    ds = ImageDataset(ArraySource(x, y))
    logits, feats, labels = coresets.embeddings(model, ds, np.array([4, 2, 9]), batch_size=2)
    assert logits.shape == (3, 10) and feats.shape == (3, 84) and labels.tolist() == [4, 2, 9]
    with torch.no_grad():
        xb, _ = ds.__getitems__([4, 2, 9])
        np.testing.assert_allclose(logits, model(xb).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model.fc3(torch.from_numpy(feats)).numpy(), logits, rtol=1e-5, atol=1e-5)
    assert model.training  # mode restored


def test_subset_sampler_serves_the_subset_in_a_seeded_order():
    s = SubsetSampler(100, seed=4)
    assert sorted(s) == list(range(100))
    s.set_subset([7, 3, 50, 11], [1.0, 2.0, 3.0, 4.0])
    e0 = list(s)
    assert sorted(e0) == [3, 7, 11, 50] and len(s) == 4
    w = dict(zip([7, 3, 50, 11], [1.0, 2.0, 3.0, 4.0]))
    assert s.weights_in_order().tolist() == [w[i] for i in e0]
    s.set_epoch(1)
    orders = {tuple(s.order()) for _ in range(3)}
    assert len(orders) == 1  # same epoch, same order
    for bad in ([], [1, 1], [100], [-1]):
        with pytest.raises(ValueError):
            s.set_subset(bad)
    with pytest.raises(ValueError):
        s.set_subset([1, 2], [1.0, -1.0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resident-set sampling reads /proc")
def test_memory_monitor_charges_an_allocation_to_its_phase():
    mon = MemoryMonitor(interval=0.001).start()
    with mon.phase("big"):
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        block += 1
    del block
    with mon.phase("small"):
        small = np.ones(1024)
    mon.stop()
    assert mon.growth("big") >= 48 * 2**20
    assert mon.growth("small") < mon.growth("big") - 32 * 2**20  # the freed block is not charged here
    assert mon.growth("never") == 0 and small.sum() == 1024


# --------------------------------------------------------------------------- GRAD-MATCH


def test_omp_recovers_a_sparse_non_negative_combination(rng):
    A = rng.normal(size=(30, 2000)) / math.sqrt(2000)  # nearly orthonormal atoms: OMP recovers exactly
    b = 2.0 * A[3] + 0.5 * A[17]
    idx, w = omp(A, b, 2, lam=0.0)
    assert sorted(idx.tolist()) == [3, 17]
    np.testing.assert_allclose(w[np.argsort(idx)], [2.0, 0.5], rtol=1e-8)
    idx, w = omp(A, rng.normal(size=2000), 10)
    assert len(idx) <= 10 and len(set(idx.tolist())) == len(idx) and (w >= 0).all()
    with pytest.raises(ValueError):
        omp(A, b[:5], 2)


def test_gradmatch_weighted_gradient_beats_random_subsets(rng):
    h, y, W, b = _linear_problem(rng)
    z = h @ W.T + b
    G = last_layer_gradients(z, h, y)
    full = G.sum(0)
    k = 30
    sel = gradmatch_select(z, h, y, k, rng=1)
    assert len(sel.indices) == k == len(set(sel.indices.tolist())) and (sel.weights > 0).all()
    counts = np.bincount(y[sel.indices], minlength=3)
    assert np.abs(counts - k * np.bincount(y) / len(y)).max() < 1  # per-class share of the budget
    err = np.linalg.norm(G[sel.indices].T @ sel.weights - full)
    n = len(y)
    rand = [np.linalg.norm(G[r].sum(0) * n / k - full) for r in (rng.choice(n, k, replace=False) for _ in range(50))]
    assert err < min(rand) and err < 0.25 * np.mean(rand)
    # and it matches each class's own summed gradient
    for c in range(3):
        m = y[sel.indices] == c
        class_err = np.linalg.norm(G[sel.indices[m]].T @ sel.weights[m] - G[y == c].sum(0))
        assert class_err < 0.5 * np.linalg.norm(G[y == c].sum(0))


def test_gradmatch_fills_with_random_samples_when_omp_stops():
    # identical gradients in a class: after one atom OMP has nothing left to correlate positively
    h = np.ones((20, 2))
    y = np.zeros(20, dtype=np.int64)
    z = np.zeros((20, 2))
    sel = gradmatch_select(z, h, y, 5, lam=0.0, rng=0)
    assert len(sel.indices) == 5 == len(set(sel.indices.tolist()))
    assert sel.info["random_fill"] == 4 and (sel.weights == 1.0).sum() >= 4


# --------------------------------------------------------------------------- GLISTER


def _val_loss_after_step(idx, G, W, b, vh, vy, eta):
    """Validation cross-entropy after one gradient step on the summed gradients of ``idx`` (from scratch)."""
    C, d = W.shape
    g = G[idx].sum(0)
    zz = vh @ (W - eta * g[C:].reshape(C, d)).T + (b - eta * g[:C])
    p = np.exp(zz - zz.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return float(-np.log(p[np.arange(len(vy)), vy]).mean())


@pytest.mark.parametrize("greedy", ["naive", "stochastic"])
def test_glister_improves_validation_loss_over_random(rng, greedy):
    C, d = 2, 6
    h, y, W, b = _linear_problem(rng, n=400, C=C, d=d, shift=3.0)  # separable: class 1 sits further out
    vh, vy, _, _ = _linear_problem(rng, n=150, C=C, d=d, shift=3.0)
    W = W * 0  # start from a classifier that knows nothing
    z, vz = h @ W.T + b, vh @ W.T + b
    G = last_layer_gradients(z, h, y)
    eta, k = 0.01, 20
    sel = glister_select(z, h, y, vz, vh, vy, k, eta=eta, greedy=greedy, rng=3)
    assert len(sel.indices) == k == len(set(sel.indices.tolist())) and sel.weights is None
    got = _val_loss_after_step(sel.indices, G, W, b, vh, vy, eta)
    # the closed-form update inside GLISTER is the exact one-step validation loss
    assert math.isclose(sel.info["val_loss"][-1], got, rel_tol=1e-9)
    before = _val_loss_after_step([], G, W, b, vh, vy, eta)
    rand = [_val_loss_after_step(rng.choice(len(y), k, replace=False), G, W, b, vh, vy, eta) for _ in range(30)]
    assert got < before and got < np.mean(rand)
    if greedy == "naive":  # stochastic greedy scores only (n / k) ln 100 candidates per step
        assert got < min(rand)


def test_glister_rejects_bad_arguments(rng):
    h, y, W, b = _linear_problem(rng, n=20)
    z = h @ W.T
    with pytest.raises(ValueError, match="eta"):
        glister_select(z, h, y, z, h, y, 3, eta=0.0)
    with pytest.raises(ValueError, match="greedy"):
        glister_select(z, h, y, z, h, y, 3, eta=0.1, greedy="lazy")
    with pytest.raises(ValueError, match="k must"):
        glister_select(z, h, y, z, h, y, 21, eta=0.1)
    with pytest.raises(TypeError, match="astype"):
        glister_select(z, h, y.astype(float), z, h, y, 3, eta=0.1)


# --------------------------------------------------------------------------- DQ


def _graphcut(s, ground, S, lam):
    S = list(S)
    return lam * s[np.ix_(ground, S)].sum() - s[np.ix_(S, S)].sum()


def test_dq_bins_are_disjoint_cover_the_data_and_gains_never_increase(rng):
    h, y, W, b = _linear_problem(rng, n=40, C=3, d=5)
    e = _residuals(h @ W.T + b, y)
    s = _cosine01(e, h)
    assert s.shape == (40, 40) and (s >= 0).all() and np.allclose(s, s.T, atol=1e-6)
    bins, gains = dq_bins(s, 4)
    flat = np.concatenate(bins)
    assert sorted(flat.tolist()) == list(range(40))  # disjoint and covering
    assert [len(b) for b in bins] == [10, 10, 10, 10]
    ground = list(range(40))
    for bn, g in zip(bins, gains):
        assert (np.diff(g) <= 1e-9).all()  # submodular: greedy gains do not increase
        chosen = []
        for x, gx in zip(bn, g):  # every pick is the exact best marginal GraphCut gain on the remaining set
            cands = [c for c in ground if c not in chosen]
            exact = {c: _graphcut(s, ground, chosen + [c], 1.0) - _graphcut(s, ground, chosen, 1.0) for c in cands}
            assert math.isclose(exact[int(x)], gx, rel_tol=1e-5, abs_tol=1e-4)
            assert exact[int(x)] >= max(exact.values()) - 1e-4
            chosen.append(int(x))
        ground = [c for c in ground if c not in set(bn.tolist())]


def test_dq_sample_takes_the_same_share_of_every_bin():
    bins = [[np.arange(0, 20), np.arange(20, 40)], [np.arange(40, 50), np.arange(50, 60)]]
    got = dq_sample(bins, 0.2, rng=0)
    assert len(got) == 4 + 4 + 2 + 2 == len(set(got.tolist()))
    for lo, hi, want in ((0, 20, 4), (20, 40, 4), (40, 50, 2), (50, 60, 2)):
        assert ((got >= lo) & (got < hi)).sum() == want
    with pytest.raises(CoresetInfeasible, match="fewer bins"):
        dq_sample(bins, 0.01)


def test_dq_bins_reject_bad_similarity():
    with pytest.raises(ValueError, match="non-negative"):
        dq_bins(-np.ones((3, 3)), 2)
    with pytest.raises(ValueError, match="square"):
        dq_bins(np.ones((3, 2)), 2)


# --------------------------------------------------------------------------- TDDS


def test_tdds_scores_match_a_hand_computed_case():
    # sample 0 never changes its prediction; sample 1 jumps once, between epochs 1 and 2
    flat, jump = [0.5, 0.5], [0.8, 0.2]
    probs = np.array([[flat, flat], [flat, flat], [flat, jump], [flat, jump]])  # (T=4, n=2, C=2)
    got = tdds_scores(probs, window=3, decay=0.5)
    d2 = 0.8 * math.log(0.8 / 0.5) + 0.2 * abs(math.log(0.2 / 0.5))  # contributions d = (0, d2, 0)
    spread = math.sqrt(2) * d2 / 2  # both windows hold {0, d2}: ||(-d2/2, d2/2)||
    want = spread * 0.5 * 0.5 ** 1 + spread * 0.5 * 0.5 ** 0  # EMA weights beta (1 - beta)^(T-K-k)
    assert got[0] == 0.0
    assert math.isclose(got[1], want, rel_tol=1e-6)
    with pytest.raises(ValueError, match="window"):
        tdds_scores(probs, window=5)
    with pytest.raises(ValueError, match="decay"):
        tdds_scores(probs, window=2, decay=1.0)


def test_tdds_scores_the_variability_of_contributions_not_their_size():
    rng = np.random.default_rng(0)
    p = np.tile(rng.dirichlet([1, 1, 1], size=(1, 5)), (6, 1, 1))  # samples 0-2 never change
    p[:, 3] = [0.2, 0.4, 0.4]
    p[4:, 3] = [0.9, 0.05, 0.05]  # sample 3 changes once, late
    p[::2, 4] = [0.9, 0.05, 0.05]  # sample 4 flips every epoch: large but constant contributions
    p[1::2, 4] = [0.05, 0.9, 0.05]
    s = tdds_scores(p, window=3)
    assert int(np.argmax(s)) == 3
    np.testing.assert_allclose(s[[0, 1, 2, 4]], 0.0, atol=1e-12)


# --------------------------------------------------------------------------- harness


@pytest.mark.parametrize("method", ["gradmatch", "glister", "dq", "tdds"])
def test_harness_runs_each_coreset_method(method):
    x, y = _toy_images(200, 1)
    xt, yt = _toy_images(50, 2)
    cfg = TrainConfig(epochs=2, fraction=0.2, batch_size=32, progress=False, select_every=1,
                      coreset_options={"dq": {"epochs": 1, "bins": 2}, "tdds": {"epochs": 2, "window": 2}})
    r = train(LeNet5(), ArraySource(x, y), ArraySource(xt, yt), method, cfg, mean=[0.3], std=[0.3])
    assert 0.0 <= r.test_accuracy <= 1.0 and len(r.history) == 2
    adaptive = method in ("gradmatch", "glister")
    assert r.selections == (2 if adaptive else 1)
    assert r.samples_per_epoch == 40
    assert r.selection_images_read == {"gradmatch": 400, "glister": 400, "dq": 400, "tdds": 400}[method]
    assert r.seconds["selection"] > 0 and r.selection_memory_bytes >= 0 and r.training_memory_bytes >= 0


def test_gradmatch_weights_weight_the_loss(monkeypatch):
    """With weights (1, 0) one training step equals an SGD step on the first sample alone."""
    x, y = _toy_images(20, 3)
    monkeypatch.setattr(coresets, "select", lambda *a, **k: coresets.Selection(
        np.array([5, 8]), np.array([1.0, 0.0]), 0, {}))
    torch.manual_seed(0)
    model = LeNet5()
    start = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(epochs=1, fraction=0.1, batch_size=2, progress=False, lr=0.1, weight_decay=0.0)
    train(model, ArraySource(x, y), ArraySource(x, y), "gradmatch", cfg)
    ref = LeNet5()
    with torch.no_grad():
        for p, q in zip(ref.parameters(), start):
            p.copy_(q)
    xb = torch.from_numpy(x[5:6].astype(np.float32) / 255).unsqueeze(1)
    torch.nn.functional.cross_entropy(ref(xb), torch.tensor([int(y[5])])).backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p.detach(), q.detach() - 0.1 * q.grad, rtol=1e-5, atol=1e-6)


def test_harness_rejects_bad_coreset_settings():
    x, y = _toy_images(20, 0)
    with pytest.raises(ValueError, match="select_every"):
        train(LeNet5(), ArraySource(x, y), ArraySource(x, y), "gradmatch", TrainConfig(select_every=0))
    with pytest.raises(ValueError, match="unknown coreset"):
        coresets.select("magic", LeNet5(), None, 0.1, config=TrainConfig())


def test_one_module_per_method_over_the_shared_interface():
    from gedenb.torch.coresets import base, dq, glister, gradmatch, tdds

    modules = (gradmatch, glister, dq, tdds)
    assert coresets.CORESET_METHODS == ("gradmatch", "glister", "dq", "tdds")
    assert coresets.ADAPTIVE == ("gradmatch", "glister")
    for name, module in zip(coresets.CORESET_METHODS, modules):
        assert isinstance(module.METHOD, base.CoresetMethod) and module.METHOD.name == name
        assert getattr(coresets, f"select_{name}") is getattr(module, f"select_{name}")
    assert coresets.Selection is base.Selection and coresets.SubsetSampler.__module__ == "gedenb.torch.coresets.hooks"


@pytest.mark.skipif(not HAS_DATA, reason="GEDENB_DATA not set (CI sets it)")
def test_table1_quick_runs_the_coreset_baselines(tmp_path):
    from gedenb.experiments import EXPERIMENTS

    t = EXPERIMENTS["table1"](methods="gradmatch,glister,dq,tdds", quick=True, fraction=0.1, out_dir=tmp_path,
                              progress=False, tdds_epochs=2, dq_epochs=1)
    rows = {r[0]: dict(zip(t.columns, r)) for r in t.rows}
    assert set(rows) == {"gradmatch", "glister", "dq", "tdds"}
    for m, r in rows.items():
        assert 0 <= r["test acc %"] <= 100 and r["samples/epoch"] > 0 and r["select MB read"] > 0


@pytest.mark.skipif(not HAS_DATA, reason="GEDENB_DATA not set (CI sets it)")
def test_table1_reports_an_infeasible_dq_as_na(tmp_path):
    from gedenb.experiments import EXPERIMENTS

    # quick: 2,000 images, bins of ~20 per class; 1% of 20 rounds to zero (the paper's CIFAR-100 "NA")
    t = EXPERIMENTS["table1"](methods="dq", quick=True, fraction=0.01, out_dir=tmp_path, progress=False, dq_epochs=0)
    assert t.rows[0][:2] == ("dq", "NA") and len(t.rows[0]) == len(t.columns)
    assert "dq NA (DQ: 0.01 of bins" in t.notes
