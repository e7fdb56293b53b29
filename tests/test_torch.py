"""gedenb.torch: sampler, dataset, loaders with workers, models, harness smoke."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gedenb.torch import (  # noqa: E402
    ArraySource, EpochSubsetSampler, ImageDataset, LeNet5, TrainConfig, batch_collate, cifar_augment,
    resnet18_cifar, train,
)
from gedenb.torch.data import normalization  # noqa: E402


def _toy(n=300, shape=(28, 28), seed=0, classes=10):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    y = np.arange(n) % classes
    return x, y


def test_sampler_draws_a_fresh_seeded_subset_each_epoch():
    s = EpochSubsetSampler(1000, 0.1, seed=3)
    assert len(s) == 100
    e0 = list(s)
    assert len(e0) == 100 == len(set(e0)) and all(0 <= i < 1000 for i in e0)
    assert list(s) == e0  # same epoch, same subset
    s.set_epoch(1)
    e1 = list(s)
    assert e1 != e0 and len(set(e1)) == 100
    again = EpochSubsetSampler(1000, 0.1, seed=3)
    again.set_epoch(1)
    assert list(again) == e1  # depends only on (seed, epoch)


def test_static_sampler_keeps_epoch_zero():
    s = EpochSubsetSampler(500, 0.2, seed=1, static=True)
    e0 = list(s)
    s.set_epoch(7)
    assert sorted(list(s)) == sorted(e0)


def test_class_balanced_counts():
    y = np.repeat(np.arange(4), [100, 200, 300, 400])
    s = EpochSubsetSampler(y, 0.05, class_balanced=True)
    got = np.bincount(y[list(s)], minlength=4)
    assert got.tolist() == [5, 10, 15, 20] and len(s) == 50
    with pytest.raises(ValueError, match="labels"):
        EpochSubsetSampler(1000, 0.1, class_balanced=True)


def test_ddp_shards_are_disjoint_and_cover_the_epoch():
    shards = [EpochSubsetSampler(1001, 0.5, seed=2, num_replicas=3, rank=r) for r in range(3)]
    for s in shards:
        s.set_epoch(4)
    parts = [list(s) for s in shards]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) == len(shards[0])
    union = set().union(*parts)
    assert union == set(shards[0].subset(4).tolist())


@pytest.mark.parametrize("kw", [dict(fraction=0), dict(fraction=1.5), dict(rank=2, num_replicas=2)])
def test_sampler_rejects_bad_arguments(kw):
    args = dict(fraction=0.5)
    args.update(kw)
    with pytest.raises(ValueError):
        EpochSubsetSampler(100, **args)


def test_dataset_batches_and_single_items():
    x, y = _toy(50)
    ds = ImageDataset(ArraySource(x, y), mean=[0.5], std=[0.25])
    xb, yb = ds.__getitems__([3, 1, 3])
    assert xb.shape == (3, 1, 28, 28) and yb.tolist() == [3, 1, 3]
    expect = (torch.from_numpy(x[1].astype(np.float32)) / 255 - 0.5) / 0.25
    assert torch.allclose(xb[1, 0], expect)
    xi, yi = ds[1]
    assert torch.equal(xi, xb[1]) and int(yi) == 1


@pytest.mark.parametrize("ctx", ["fork", "spawn"])
def test_loader_with_workers_gives_exact_batches(ctx):
    x, y = _toy(120)
    ds = ImageDataset(ArraySource(x, y))
    s = EpochSubsetSampler(len(x), 0.5, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, sampler=s, collate_fn=batch_collate,
                                         num_workers=2, multiprocessing_context=ctx)
    order = list(s)
    seen = []
    for xb, yb in loader:
        seen.extend(yb.tolist())
        idx = order[len(seen) - len(yb):len(seen)]
        assert torch.equal((xb[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(x[idx]))
    assert seen == y[order].tolist()


def test_cifar_augment_crops_and_flips_per_image():
    g = torch.Generator().manual_seed(0)
    batch = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    out = cifar_augment(batch, g)
    assert out.shape == batch.shape
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(out, cifar_augment(batch, g2))
    # each output row is a (possibly flipped) shifted window of the zero-padded input
    padded = torch.nn.functional.pad(batch, (4, 4, 4, 4))
    found = 0
    for dy in range(9):
        for dx in range(9):
            win = padded[0, :, dy:dy + 32, dx:dx + 32]
            found += int(torch.equal(out[0], win) or torch.equal(out[0], win.flip(-1)))
    assert found >= 1


def test_models_have_the_expected_shapes():
    assert LeNet5()(torch.zeros(4, 1, 28, 28)).shape == (4, 10)
    net = resnet18_cifar(num_classes=100)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
    assert isinstance(net.conv1, torch.nn.Conv2d) and net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert 11_000_000 < sum(p.numel() for p in net.parameters()) < 11_300_000


@pytest.mark.parametrize("method", ["full", "random_static", "rs2"])
def test_training_harness_smoke(method):
    x, y = _toy(200, seed=1)
    xt, yt = _toy(60, seed=2)
    cfg = TrainConfig(epochs=1, fraction=0.25, batch_size=32, progress=False)
    r = train(LeNet5(), ArraySource(x, y), ArraySource(xt, yt), method, cfg)
    assert 0.0 <= r.test_accuracy <= 1.0 and r.epochs == 1
    assert r.samples_per_epoch == (200 if method == "full" else 50)
    assert r.bytes_decoded_per_epoch == r.samples_per_epoch * 784
    assert set(r.seconds) == {"compression", "selection", "data", "training", "evaluation"}
    assert r.peak_rss_bytes > 0 and len(r.history) == 1


def test_training_learns_a_separable_toy_problem():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = np.where(y[:, None, None] == 1, 200, 30).astype(np.uint8) + rng.integers(0, 20, (400, 28, 28)).astype(np.uint8)
    src = ArraySource(x, y)
    r = train(LeNet5(num_classes=2), src, src, "rs2", TrainConfig(epochs=6, fraction=0.5, batch_size=32,
                                                                   progress=False), mean=[0.45], std=[0.3])
    assert r.test_accuracy > 0.95


def test_harness_rejects_unknown_method():
    x, y = _toy(20)
    with pytest.raises(ValueError, match="unknown method"):
        train(LeNet5(), ArraySource(x, y), ArraySource(x, y), "magic")


def test_normalization_statistics():
    x, y = _toy(100)
    mean, std = normalization(ArraySource(x, y))
    assert abs(mean[0] - x.mean() / 255) < 1e-9 and abs(std[0] - (x / 255).std()) < 1e-9


def test_import_gedenb_does_not_import_torch_even_after_use():
    import subprocess
    import sys

    code = "import gedenb, sys; gedenb.compress(__import__('numpy').arange(6).reshape(3, 2)); print('torch' in sys.modules)"
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(not os.environ.get("GEDENB_DATA"), reason="GEDENB_DATA not set (CI sets it)")
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_torchvision_source_reads_the_same_bytes_as_the_loaders(name, tmp_path):
    from gedenb import datasets
    from gedenb.torch import torchvision_source

    loader = {"mnist": datasets.mnist, "fashion-mnist": datasets.fashion_mnist}[name]
    for split in (True, False):
        src = torchvision_source(name, split, cache_dir=tmp_path)
        x, y = loader(train=split)
        assert src.images.shape == (*x.shape, 1) and np.array_equal(src.images[..., 0], x)
        assert np.array_equal(src.labels, y)
    raw = next(tmp_path.rglob("t10k-labels-idx1-ubyte"))
    before = raw.stat().st_mtime_ns
    torchvision_source(name, False, cache_dir=tmp_path)  # already extracted: not rewritten
    assert raw.stat().st_mtime_ns == before
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left


def test_torchvision_source_errors(tmp_path):
    from gedenb.torch import torchvision_source

    with pytest.raises(ValueError, match="unknown data set"):
        torchvision_source("cifar100", root=tmp_path, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        torchvision_source("mnist", root=tmp_path, cache_dir=tmp_path / "c")


def _loader_run(tmp_path, ctx, coding, warmup, epochs, disk_cache=True):
    import json
    import subprocess
    import sys

    import support

    env = support.child_env()
    env.pop("GEDENB_NUMBA_CACHE", None)  # spawned workers load the parent's kernels from the on-disk cache
    if not disk_cache:
        env["GEDENB_NUMBA_CACHE"] = "0"
    script = support.TESTS / "torch_support.py"
    out = subprocess.run([sys.executable, str(script), ctx, coding, "1" if warmup else "0", str(epochs),
                          str(tmp_path)], capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("ctx,coding,disk_cache", [("fork", "raw", False), ("fork", "entropy", True),
                                                   ("spawn", "entropy", True)])
def test_non_persistent_workers_do_not_compile(tmp_path, ctx, coding, disk_cache):
    """A fresh process, 2 non-persistent workers (started anew each epoch), 3 epochs: the dataset warmed the
    store's decoders up in the parent, so no worker compiles anything in any epoch: forked workers inherit
    the compiled kernels (without the on-disk cache too), spawned ones load them from the cache."""
    res = _loader_run(tmp_path, ctx, coding, warmup=True, epochs=3, disk_cache=disk_cache)
    assert [e["compilations"] for e in res["epochs"]] == [0, 0, 0], res


def test_without_the_warmup_forked_workers_compile_every_epoch(tmp_path):
    """The control of the test above: without the warm-up (and the on-disk cache) each epoch's new workers
    compile the decoders again."""
    res = _loader_run(tmp_path, "fork", "raw", warmup=False, epochs=2, disk_cache=False)
    assert all(e["compilations"] > 0 for e in res["epochs"]), res
