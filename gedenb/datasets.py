"""Data loaders.

California Housing ships inside the package.  The other data sets are read
from a folder laid out like the project's ``shared/data`` (torchvision's raw
layout for MNIST / Fashion-MNIST): pass ``root=`` or set ``GEDENB_DATA``.
Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import os
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["Table", "california_housing", "cifar10_jpeg", "credit_default", "data_root", "fashion_mnist", "ijcnn1", "mnist",
           "synthetic_mixed"]


class Table(NamedTuple):
    """A numeric table with named columns; the last column is the target."""

    data: np.ndarray
    columns: tuple

    @property
    def X(self) -> np.ndarray:
        return self.data[:, :-1]

    @property
    def y(self) -> np.ndarray:
        return self.data[:, -1]

    @property
    def target(self) -> str:
        return self.columns[-1]


CALIFORNIA_COLUMNS = (
    "MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population",
    "AveOccup", "Latitude", "Longitude", "MedHouseVal",
)


def california_housing() -> Table:
    """California Housing (Pace & Barry 1997), scikit-learn's form.

    20,640 rows; 8 features and the target ``MedHouseVal`` (in units of
    $100,000) as the last column, float64, parsed exactly from the shipped
    CSV (values written with ``repr``, so parsing is lossless).
    """
    ref = resources.files("gedenb") / "data" / "cal_housing.csv.gz"
    with ref.open("rb") as raw, gzip.open(raw, "rt") as f:
        header = f.readline().strip().split(",")
        data = np.loadtxt(f, delimiter=",", dtype=np.float64)
    if tuple(header) != CALIFORNIA_COLUMNS or data.shape != (20640, 9):
        raise RuntimeError("the shipped California Housing file is damaged; reinstall gedenb")
    return Table(data, CALIFORNIA_COLUMNS)


def data_root(root=None) -> Path:
    """The data folder: ``root`` if given, else ``$GEDENB_DATA``.

    Parameters
    ----------
    root : path, optional
        The folder (default: ``$GEDENB_DATA``).
    """
    if root is None:
        root = os.environ.get("GEDENB_DATA")
        if not root:
            raise FileNotFoundError(
                "no data folder: pass root=... or set GEDENB_DATA to a folder laid out like "
                "shared/data (e.g. GEDENB_DATA/MNIST/raw/train-images-idx3-ubyte.gz)"
            )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data folder {path} does not exist")
    return path


def _idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing (expected torchvision's raw layout; nothing is downloaded)")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    head = np.frombuffer(raw, dtype=">u4", count=1 + ndim)
    if int(head[0]) != magic:
        raise ValueError(f"{path}: bad IDX magic number {int(head[0])}")
    shape = tuple(int(s) for s in head[1:])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 * (1 + ndim)).reshape(shape)


def _mnist_like(folder: str, train: bool, root) -> tuple[np.ndarray, np.ndarray]:
    base = data_root(root) / folder / "raw"
    split = "train" if train else "t10k"
    x = _idx(base / f"{split}-images-idx3-ubyte.gz", 2051, 3)
    y = _idx(base / f"{split}-labels-idx1-ubyte.gz", 2049, 1)
    if len(x) != len(y):
        raise ValueError(f"{base}: {len(x)} images but {len(y)} labels")
    return x, y


def mnist(train: bool = True, root=None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images ``(n, 28, 28)`` uint8 and labels ``(n,)`` uint8.

    Parameters
    ----------
    train : bool
        The 60,000 training images (else the 10,000 test images).
    root : path, optional
        Data folder in torchvision's raw layout (default: ``$GEDENB_DATA``).
    """
    return _mnist_like("MNIST", train, root)


def fashion_mnist(train: bool = True, root=None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images ``(n, 28, 28)`` uint8 and labels ``(n,)`` uint8.

    Parameters
    ----------
    train : bool
        The 60,000 training images (else the 10,000 test images).
    root : path, optional
        Data folder in torchvision's raw layout (default: ``$GEDENB_DATA``).
    """
    return _mnist_like("FashionMNIST", train, root)


def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing (expected the layout of shared/data; nothing is downloaded)")
    return path


def credit_default(root=None) -> Table:
    """Default of Credit Card Clients (Yeh & Lien 2009, UCI).

    30,000 rows: the 23 features ``LIMIT_BAL .. PAY_AMT6`` and the 0/1 target
    ``default payment next month`` as the last column (int64; the ``ID``
    column is dropped).  Read from ``credit_default/credit_default.csv.gz``.

    Parameters
    ----------
    root : path, optional
        Data folder (default: ``$GEDENB_DATA``).
    """
    path = _require(data_root(root) / "credit_default" / "credit_default.csv.gz")
    with gzip.open(path, "rt") as f:
        header = f.readline().strip().split(",")
        data = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    if data.shape[1] != 25 or header[0] != "ID":
        raise ValueError(f"{path}: expected 25 columns starting with ID, got {data.shape[1]}")
    return Table(np.ascontiguousarray(data[:, 1:]), tuple(header[1:]))


def _svmlight(path: Path, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    ys, rows, cols, vals = [], [], [], []
    with gzip.open(_require(path), "rt") as f:
        for i, line in enumerate(f):
            parts = line.split()
            if not parts:
                continue
            ys.append(float(parts[0]))
            for tok in parts[1:]:
                k, v = tok.split(":")
                rows.append(i)
                cols.append(int(k) - 1)
                vals.append(float(v))
    X = np.zeros((len(ys), n_features))
    cols_a = np.asarray(cols)
    if cols_a.size and (cols_a.min() < 0 or cols_a.max() >= n_features):
        raise ValueError(f"{path}: feature index outside 1..{n_features}")
    X[np.asarray(rows), cols_a] = np.asarray(vals)
    return X, np.asarray(ys)


def ijcnn1(train: bool = True, root=None) -> Table:
    """IJCNN1 (LIBSVM): 22 features and the label (-1 / 1) as the last column.

    ``train=True``: the 49,990-row training file (LIBSVM's ``ijcnn1``);
    ``train=False``: the 91,701-row test file.  float64.

    Parameters
    ----------
    train : bool
        The training file (else the test file).
    root : path, optional
        Data folder (default: ``$GEDENB_DATA``).
    """
    name = "ijcnn1.tr.gz" if train else "ijcnn1.t.gz"
    X, y = _svmlight(data_root(root) / "ijcnn1" / name, 22)
    cols = tuple(f"f{j + 1}" for j in range(22)) + ("label",)
    return Table(np.column_stack([X, y]), cols)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cifar10_jpeg(train: bool = True, root=None) -> tuple[np.ndarray, np.ndarray]:
    """The LOSSY JPEG copy of CIFAR-10 in ``CIFAR10_JPEG_LOSSY/cifar10_jpeg.tar.gz``.

    Images ``(n, 32, 32, 3)`` uint8 in file-name order and labels in
    ``CIFAR10_CLASSES`` order.  The pixels are JPEG re-encodings, not the
    original CIFAR-10 values: fine for training, not for storage figures
    comparable with the paper's.  Needs Pillow.

    Parameters
    ----------
    train : bool
        The training images (else the test images).
    root : path, optional
        Data folder (default: ``$GEDENB_DATA``).
    """
    import tarfile

    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow comes with torchvision
        raise ImportError("cifar10_jpeg needs Pillow: pip install pillow") from e
    path = _require(data_root(root) / "CIFAR10_JPEG_LOSSY" / "cifar10_jpeg.tar.gz")
    split = "train" if train else "test"
    images, labels = [], []
    with tarfile.open(path) as tar:
        members = sorted((m for m in tar if m.isfile() and m.name.startswith(split + "/")), key=lambda m: m.name)
        for m in members:
            cls = m.name.split("/")[1]
            with tar.extractfile(m) as f:
                images.append(np.asarray(Image.open(f).convert("RGB")))
            labels.append(CIFAR10_CLASSES.index(cls))
    return np.stack(images), np.asarray(labels, dtype=np.uint8)


#: Fields of :func:`synthetic_mixed`, in order: (name, dtype).
SYNTHETIC_MIXED_FIELDS = (
    ("timestamp", "i8"), ("store", "i2"), ("terminal", "u1"), ("product", "i4"), ("category", "i1"),
    ("quantity", "u1"), ("price", "f8"), ("discount", "f4"), ("total", "f8"), ("customer", "u4"),
    ("online", "?"), ("returned", "?"), ("payment", "i1"), ("latency_ms", "i4"), ("temperature", "f4"),
    ("weight_kg", "f8"),
)


def synthetic_mixed(n: int = 1_000_000, seed: int = 0) -> np.ndarray:
    """A synthetic mixed-dtype table: ``n`` sales records of a retail chain.

    A structured array of shape ``(n,)`` with 16 fields (60 bytes per row)
    mixing int8/16/32/64, uint8/32, bool, float32 and float64, built so
    that a compressor has structure to find, as in real operational data:

    ========== ======= =====================================================
    field      dtype   content
    ========== ======= =====================================================
    timestamp  int64   Unix seconds, increasing (exponential gaps, mean 30 s)
    store      int16   store code 0..199, Zipf-like popularity
    terminal   uint8   till number 0..11 within the store
    product    int32   product code 0..49,999, Zipf-like popularity
    category   int8    product category 0..59, a function of the product
    quantity   uint8   items bought, 1 + Poisson(0.8)
    price      float64 unit price with 2 decimals, fixed per product
    discount   float32 0, 0.05, 0.1, 0.2 or 0.5 (mostly 0)
    total      float64 quantity * price * (1 - discount), 2 decimals
    customer   uint32  loyalty-card number, 0 (no card) for 40% of the rows
    online     bool    30% True
    returned   bool    2% True
    payment    int8    payment method 0..4
    latency_ms int32   processing time, log-normal, whole milliseconds
    temperature float32 store sensor: daily cycle + noise, full precision,
                       0.1% NaN (sensor offline)
    weight_kg  float64 product's nominal weight + scale noise, full
                       precision, 0.05% NaN
    ========== ======= =====================================================

    Parameters
    ----------
    n : int, default 1,000,000
        Number of rows (>= 1).
    seed : int, default 0
        Seed of :func:`numpy.random.default_rng`; the same ``(n, seed)``
        gives the same bytes on every platform NumPy supports.

    Returns
    -------
    (n,) structured ndarray with the fields of ``SYNTHETIC_MIXED_FIELDS``.

    Examples
    --------
    >>> from gedenb.datasets import synthetic_mixed
    >>> T = synthetic_mixed(1000)
    >>> T.shape, len(T.dtype.names), T.dtype.itemsize
    ((1000,), 16, 60)
    >>> bool((T["total"] >= 0).all()), bool(T["online"].any())
    (True, True)
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    n = int(n)
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=[(f, t) for f, t in SYNTHETIC_MIXED_FIELDS])

    def zipf_codes(k: int, size: int) -> np.ndarray:
        p = 1.0 / np.arange(1, k + 1) ** 1.1
        return rng.choice(k, size=size, p=p / p.sum())

    ts = 1_700_000_000 + np.cumsum(np.floor(rng.exponential(30.0, n)).astype(np.int64))
    out["timestamp"] = ts
    out["store"] = zipf_codes(200, n)
    out["terminal"] = rng.integers(0, 12, n)
    product = zipf_codes(50_000, n)
    out["product"] = product
    catalog = np.random.default_rng([seed, 1])  # per-product constants, independent of n
    out["category"] = (np.arange(50_000) * 7919 % 60)[product]
    unit = np.round(np.exp(catalog.normal(2.0, 1.0, 50_000)), 2) + 0.01
    price = np.round(unit[product], 2)
    out["price"] = price
    qty = 1 + rng.poisson(0.8, n)
    out["quantity"] = np.minimum(qty, 255)
    disc = rng.choice(np.array([0.0, 0.05, 0.1, 0.2, 0.5]), size=n, p=[0.8, 0.08, 0.06, 0.04, 0.02])
    out["discount"] = disc.astype(np.float32)
    out["total"] = np.round(qty * price * (1.0 - disc), 2)
    out["customer"] = np.where(rng.random(n) < 0.4, 0, rng.integers(1, 2_000_000, n))
    out["online"] = rng.random(n) < 0.3
    out["returned"] = rng.random(n) < 0.02
    out["payment"] = rng.choice(5, size=n, p=[0.45, 0.3, 0.15, 0.07, 0.03])
    out["latency_ms"] = np.floor(rng.lognormal(4.0, 0.6, n)).astype(np.int32)
    hours = (ts % 86_400) / 3_600.0
    temp = 21.0 + 2.5 * np.sin((hours - 9.0) * np.pi / 12.0) + rng.normal(0.0, 0.3, n)
    temp[rng.random(n) < 0.001] = np.nan
    out["temperature"] = temp.astype(np.float32)
    nominal = np.round(catalog.lognormal(-0.5, 0.8, 50_000), 3)
    weight = nominal[product] * qty + rng.normal(0.0, 0.002, n)
    weight[rng.random(n) < 0.0005] = np.nan
    out["weight_kg"] = weight
    return out
