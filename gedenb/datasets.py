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

__all__ = ["Table", "california_housing", "cifar10_jpeg", "credit_default", "data_root", "fashion_mnist", "ijcnn1", "mnist"]


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
    """The data folder: ``root`` if given, else ``$GEDENB_DATA``."""
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
    """MNIST images ``(n, 28, 28)`` uint8 and labels ``(n,)`` uint8."""
    return _mnist_like("MNIST", train, root)


def fashion_mnist(train: bool = True, root=None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images ``(n, 28, 28)`` uint8 and labels ``(n,)`` uint8."""
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
