"""Class-wise image stores: round trips, container file, random access, torch integration."""

import os
import pickle

import numpy as np
import pytest

import gedenb
from gedenb.images import ImageReader, compress_images, decompress_images

HAS_DATA = bool(os.environ.get("GEDENB_DATA"))


def _toy(n=240, shape=(12, 10, 3), seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 4, size=(n, *shape)) * 60).astype(np.uint8)  # redundant pixels
    y = rng.integers(0, 5, size=n) * 3  # labels need not be 0..K-1
    return x, y


@pytest.mark.parametrize("transform", ["identity", "dct_lossless"])
def test_lossless_round_trip_in_memory_and_on_disk(transform, tmp_path):
    x, y = _toy()
    s = compress_images(x, y, transform=transform)
    back, labels = decompress_images(s)
    assert back.dtype == np.uint8 and back.shape == x.shape and np.array_equal(back, x)
    assert np.array_equal(labels, y)
    path = tmp_path / "img.gede"
    nbytes = gedenb.save(s, path)
    assert nbytes == path.stat().st_size
    with gedenb.open(path) as r:
        assert isinstance(r, ImageReader) and len(r) == len(x) and r.image_shape == x.shape[1:]
        idx = np.array([5, 0, 5, -1, 200, 17])
        imgs, labs = r.read_images(idx)
        assert np.array_equal(imgs, x[idx]) and np.array_equal(labs, y[idx])
        assert np.array_equal(r.labels, y)
        empty, elabs = r.read_images(np.zeros(0, dtype=np.int64))
        assert empty.shape == (0, *x.shape[1:]) and elabs.shape == (0,)


def test_dct_is_lossy_but_close():
    x, y = _toy(shape=(16, 16, 3))
    back, _ = decompress_images(compress_images(x, y, transform="dct"))
    err = np.abs(back.astype(int) - x.astype(int))
    assert err.max() <= 4 and err.mean() < 0.5


def test_grey_images_and_bad_inputs():
    x, y = _toy(shape=(8, 8))
    s = compress_images(x, y)
    assert s.image_shape == (8, 8, 1)
    assert np.array_equal(decompress_images(s)[0][..., 0], x)
    with pytest.raises(TypeError, match="uint8"):
        compress_images(x.astype(np.float32), y)
    with pytest.raises(ValueError, match="labels"):
        compress_images(x, y[:-1])
    with pytest.raises(TypeError, match="integers"):
        compress_images(x, y.astype(float))
    with pytest.raises(ValueError, match="transform|unknown"):
        compress_images(x, y, transform="wavelet")


def test_reader_index_errors(tmp_path):
    x, y = _toy(50)
    gedenb.save(compress_images(x, y), tmp_path / "a.gede")
    with gedenb.open(tmp_path / "a.gede") as r:
        with pytest.raises(IndexError):
            r.read_images([50])
        with pytest.raises(TypeError):
            r.read_images([1.5])
        with pytest.raises(ValueError):
            r.read_images([[1, 2]])


def test_corrupt_container_is_rejected(tmp_path):
    x, y = _toy(60)
    p = tmp_path / "a.gede"
    gedenb.save(compress_images(x, y), p)
    data = bytearray(p.read_bytes())
    for pos in (3, 70, len(data) // 2, len(data) - 9):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        q = tmp_path / f"bad{pos}.gede"
        q.write_bytes(bytes(bad))
        with pytest.raises(gedenb.FormatError):
            gedenb.open(q)
    q = tmp_path / "short.gede"
    q.write_bytes(bytes(data[:-8]))
    with pytest.raises(gedenb.FormatError):
        gedenb.open(q)


def test_reader_pickles_by_path(tmp_path):
    x, y = _toy(40)
    gedenb.save(compress_images(x, y), tmp_path / "a.gede")
    r = gedenb.open(tmp_path / "a.gede")
    r2 = pickle.loads(pickle.dumps(r))
    assert np.array_equal(r2.read_images([3, 4])[0], x[[3, 4]])
    r.close()
    r2.close()


@pytest.mark.skipif(not HAS_DATA, reason="GEDENB_DATA not set (CI sets it)")
def test_mnist_subset_through_torch_dataset(tmp_path):
    torch = pytest.importorskip("torch")
    from gedenb.datasets import mnist
    from gedenb.torch import EpochSubsetSampler, ImageDataset, LeNet5, TrainConfig, batch_collate, train
    from gedenb.torch.data import ArraySource

    x, y = mnist(train=True)
    x, y = x[:600], y[:600]
    s = compress_images(x, y)
    gedenb.save(s, tmp_path / "m.gede")
    r = gedenb.open(tmp_path / "m.gede")
    ds = ImageDataset(r)
    sampler = EpochSubsetSampler(len(r), 0.5, seed=1)
    for ctx in ("fork", "spawn"):
        loader = torch.utils.data.DataLoader(ds, batch_size=64, sampler=sampler, collate_fn=batch_collate,
                                             num_workers=2, multiprocessing_context=ctx)
        order = list(sampler)
        got = torch.cat([xb for xb, _ in loader])
        assert torch.equal((got[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(x[order]))
    xt, yt = mnist(train=False)
    cfg = TrainConfig(epochs=2, fraction=0.2, progress=False)
    runs = {}
    for method, source in (("dreamlearning", r), ("rs2", ArraySource(x, y))):
        torch.manual_seed(0)
        model = LeNet5()
        runs[method] = train(model, source, ArraySource(xt[:300], yt[:300]), method, cfg)
        runs[method + "_weights"] = [p.detach().clone() for p in model.parameters()]
    res = runs["dreamlearning"]
    assert res.samples_per_epoch == 120 and 0 < res.stored_bytes_read_per_epoch < res.bytes_decoded_per_epoch
    # lossless store + same sampler seed: compressed training is exactly RS2 on the raw images
    assert res.test_accuracy == runs["rs2"].test_accuracy
    assert [h["train_loss"] for h in res.history] == [h["train_loss"] for h in runs["rs2"].history]
    assert all(torch.equal(a, b) for a, b in zip(runs["dreamlearning_weights"], runs["rs2_weights"]))
    r.close()


@pytest.mark.skipif(not HAS_DATA, reason="GEDENB_DATA not set (CI sets it)")
def test_image_storage_experiment_quick(tmp_path):
    from gedenb.experiments import EXPERIMENTS

    t = EXPERIMENTS["image-storage"](datasets="mnist", quick=True, out_dir=tmp_path)
    got = {r[1]: r for r in t.rows}
    assert set(got) == {"identity", "dct", "dct_lossless"}
    assert got["identity"][5] == 0 and got["dct_lossless"][5] == 0  # lossless transforms are exact
    assert 0 < got["dct"][5] <= 4
    for r in t.rows:
        assert 0 < r[3] <= r[4] < 200  # Eq. 1 never above the file size


@pytest.mark.skipif(not HAS_DATA, reason="GEDENB_DATA not set (CI sets it)")
def test_table1_quick_over_several_seeds(tmp_path):
    from gedenb.experiments import EXPERIMENTS

    t = EXPERIMENTS["table1"](quick=True, seed="3,5", batch_size=16, methods="rs2,dreamlearning",
                              out_dir=tmp_path, progress=False)
    assert [r[0] for r in t.rows] == ["rs2", "dreamlearning"]
    assert all("±" in r[1] for r in t.rows)  # mean ± std over the two seeds
    assert "batch 16" in t.notes and "seeds 3,5" in t.notes
    per_seed = dict(part.split(": ") for part in t.notes.split("Accuracy per seed: ")[1].rstrip(".").split("; "))
    # the lossless store and the plain arrays give identical batches, seed by seed
    assert per_seed["rs2"] == per_seed["dreamlearning"]
    assert t.rows[1][7] < 100  # the store is smaller than the raw images
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="at least one seed"):
        EXPERIMENTS["table1"](quick=True, seed="", out_dir=tmp_path)
