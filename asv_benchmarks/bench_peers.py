"""Peers on the very same bytes: zstd, zstd with a trained dictionary, Blosc2.

The input is always MNIST train class-wise -- ten C-contiguous ``(n_k, 784)``
uint8 buffers, one per class, exactly the tables gedenb compresses in
``bench_compress.MnistCompress`` -- and California Housing and the synthetic
1,000,000 x 16 mixed-dtype table (its 60 MB of records) for zstd.

* ``ZstdMnist``: zstd level 3, one frame per class buffer (time, memory,
  ratio).
* ``ZstdMnistLevel19``: level 19 is slow (about 20 s for all of MNIST), so it
  runs over all classes once per run, in ``setup_cache`` (size and one timed
  pass); the asv ``time_`` benchmark covers one class.  The time ratio
  against zstd-3 is a ``track_`` benchmark.
* ``ZstdDictMnist``: one dictionary (112 KiB) trained on 10,000 random
  training images, then one frame per image at level 19 -- randomly
  accessible like gedenb.  Storage counts the dictionary and a 4-byte offset
  per image.  Its per-row decode time is in ``bench_random_access``.
* ``Blosc2Mnist``: Blosc2 NDArray, zstd clevel 5, byte shuffle or bitshuffle,
  chunks of 1,024 rows and blocks of 16 rows (12.5 KB) so one row decodes
  one small block.  (Byte shuffle is a no-op on 1-byte items.)

The Python bindings of zstd are single-threaded; Blosc2 uses its default
thread count; gedenb uses Numba's (all cores).
"""

from __future__ import annotations

import time

import numpy as np

from ._common import (
    MNIST_CLASS,
    SEED,
    best_of,
    cache_or_skip,
    california,
    check_cache,
    mixed,
    mnist_classes,
    smoke,
)

try:
    import zstandard
except ImportError:  # pragma: no cover - the `bench` extra installs it
    zstandard = None
try:
    import blosc2
except ImportError:  # pragma: no cover - the `bench` extra installs it
    blosc2 = None

#: Size of the trained zstd dictionary (smoke mode: 16 KiB, data is tiny).
DICT_BYTES = 112 * 1024
#: Images sampled (from all of MNIST train) to train the dictionary.
DICT_SAMPLES = 10_000
#: Bytes per image of the offset table that makes per-image frames addressable.
OFFSET_BYTES = 4
BLOSC2_CHUNK_ROWS = 1024
BLOSC2_BLOCK_ROWS = 16


def _need_zstd():
    if zstandard is None:
        raise NotImplementedError("zstandard is not installed (pip install gedenb[bench])")


def _need_blosc2():
    if blosc2 is None:
        raise NotImplementedError("blosc2 is not installed (pip install gedenb[bench])")


# --------------------------------------------------------------------------
# zstd dictionary + one frame per image (shared with bench_random_access)
# --------------------------------------------------------------------------
def train_mnist_dictionary(classes) -> "zstandard.ZstdCompressionDict":
    """The zstd dictionary trained on a fixed random sample of MNIST train images."""
    X = np.concatenate(classes)
    rng = np.random.default_rng(SEED)
    pick = rng.choice(len(X), size=min(DICT_SAMPLES, len(X)), replace=False)
    size = 16 * 1024 if smoke() else DICT_BYTES
    return zstandard.train_dictionary(size, [X[i].tobytes() for i in pick])


def frame_compressor(zdict, level: int = 19) -> "zstandard.ZstdCompressor":
    """Per-image compressor: no content size, checksum or dictionary ID (4 bytes saved per frame)."""
    zdict.precompute_compress(level=level)
    return zstandard.ZstdCompressor(level=level, dict_data=zdict, write_content_size=False,
                                    write_checksum=False, write_dict_id=False)


def compress_frames(cctx, X: np.ndarray) -> tuple[bytes, np.ndarray]:
    """One frame per row, concatenated; ``offsets[i]:offsets[i + 1]`` is row ``i``'s frame."""
    frames = [cctx.compress(row.tobytes()) for row in X]
    offsets = np.zeros(len(frames) + 1, dtype=np.int64)
    np.cumsum([len(f) for f in frames], out=offsets[1:])
    return b"".join(frames), offsets


def frame_reader(dict_bytes: bytes, buf: bytes, offsets: np.ndarray, d: int):
    """``read(idx) -> (len(idx), d) uint8``: the rows ``idx`` of :func:`compress_frames`' output (uint8 rows
    of ``d`` bytes), one zstd frame each, decoded with the dictionary ``dict_bytes``."""
    dec = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(dict_bytes)).decompress
    off = offsets.astype(np.uint32).tolist()  # the 4-byte-per-row offset table (a list for fast indexing)
    view = memoryview(buf)

    def read(idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), d), dtype=np.uint8)
        for j, i in enumerate(idx.tolist()):
            out[j] = np.frombuffer(dec(view[off[i]:off[i + 1]], max_output_size=d), dtype=np.uint8)
        return out

    return read


def blosc2_array(X: np.ndarray, shuffle: str):
    filt = {"shuffle": blosc2.Filter.SHUFFLE, "bitshuffle": blosc2.Filter.BITSHUFFLE}[shuffle]
    cparams = blosc2.CParams(codec=blosc2.Codec.ZSTD, clevel=5, filters=[filt], filters_meta=[0])
    return blosc2.asarray(X, chunks=(min(BLOSC2_CHUNK_ROWS, len(X)), X.shape[1]),
                          blocks=(min(BLOSC2_BLOCK_ROWS, len(X)), X.shape[1]), cparams=cparams)


# --------------------------------------------------------------------------
# zstd, whole buffer per class
# --------------------------------------------------------------------------
class ZstdMnist:
    """zstd level 3, one frame per class buffer, all ten classes."""

    def setup(self):
        _need_zstd()
        self.buffers = [X.tobytes() for X in mnist_classes()]
        self.raw = sum(map(len, self.buffers))
        self.cctx = zstandard.ZstdCompressor(level=3)

    def time_compress_level3(self):
        for b in self.buffers:
            self.cctx.compress(b)

    def peakmem_compress_level3(self):
        for b in self.buffers:
            self.cctx.compress(b)

    def track_ratio_level3(self):
        return sum(len(self.cctx.compress(b)) for b in self.buffers) / self.raw

    track_ratio_level3.unit = "compressed bytes / raw bytes"


class ZstdMnistLevel19:
    """zstd level 19 on the ten class buffers.

    Level 19 takes about 20 s for all of MNIST, so it runs once per
    ``asv run``, in ``setup_cache`` (one timed pass, sizes recorded); the
    asv-native ``time_`` benchmark covers one class.
    """

    timeout = 300

    def setup_cache(self):
        def build():
            _need_zstd()
            buffers = [X.tobytes() for X in mnist_classes()]
            cctx = zstandard.ZstdCompressor(level=19)
            t0 = time.perf_counter()
            nbytes = sum(len(cctx.compress(b)) for b in buffers)
            return {"raw": sum(map(len, buffers)), "level19": nbytes, "seconds": time.perf_counter() - t0}

        return cache_or_skip(build)

    def setup(self, cache):
        check_cache(cache)
        self.buffers = [X.tobytes() for X in mnist_classes()]
        self.cctx19 = zstandard.ZstdCompressor(level=19)
        self.cctx3 = zstandard.ZstdCompressor(level=3)

    def time_compress_level19_one_class(self, cache):
        self.cctx19.compress(self.buffers[MNIST_CLASS])

    def track_ratio_level19(self, cache):
        """All ten classes."""
        return cache["level19"] / cache["raw"]

    track_ratio_level19.unit = "compressed bytes / raw bytes"

    def track_seconds_level19(self, cache):
        """All ten classes: one timed pass of level 19 (in setup_cache)."""
        return cache["seconds"]

    track_seconds_level19.unit = "s"

    def track_size_vs_level3(self, cache):
        """All ten classes: level-19 bytes / level-3 bytes."""
        return cache["level19"] / sum(len(self.cctx3.compress(b)) for b in self.buffers)

    track_size_vs_level3.unit = "zstd-19 bytes / zstd-3 bytes"

    def _level3_seconds(self):
        def level3():
            for b in self.buffers:
                self.cctx3.compress(b)

        return best_of(level3, 5)

    def track_time_vs_level3(self, cache):
        """All ten classes: level-19 time (one pass, setup_cache) / level-3 time (best of 5)."""
        return cache["seconds"] / self._level3_seconds()

    track_time_vs_level3.unit = "zstd-19 time / zstd-3 time"


class ZstdCalifornia:
    """zstd on the California Housing buffer (float64, row-major)."""

    params = [3, 19]
    param_names = ["level"]

    def setup(self, level):
        _need_zstd()
        self.buffer = california().tobytes()
        self.cctx = zstandard.ZstdCompressor(level=level)

    def time_compress(self, level):
        self.cctx.compress(self.buffer)

    def track_ratio(self, level):
        return len(self.cctx.compress(self.buffer)) / len(self.buffer)

    track_ratio.unit = "compressed bytes / raw bytes"


class ZstdMixed:
    """zstd on the bytes of the synthetic mixed-dtype table (row-major records, as gedenb reads them).

    Level 3, one frame: compress and decompress time, memory, ratio.  Level
    19 takes tens of seconds on the 60 MB, so it runs once per run in
    ``setup_cache`` (size and one timed pass), as for MNIST.
    """

    timeout = 600

    def setup_cache(self):
        def build():
            _need_zstd()
            buffer = mixed().tobytes()
            t0 = time.perf_counter()
            nbytes = len(zstandard.ZstdCompressor(level=19).compress(buffer))
            return {"raw": len(buffer), "level19": nbytes, "seconds19": time.perf_counter() - t0}

        return cache_or_skip(build)

    def setup(self, cache):
        check_cache(cache)
        _need_zstd()
        self.buffer = mixed().tobytes()
        self.cctx = zstandard.ZstdCompressor(level=3)
        self.frame = self.cctx.compress(self.buffer)
        self.dctx = zstandard.ZstdDecompressor()

    def time_compress_level3(self, cache):
        self.cctx.compress(self.buffer)

    def peakmem_compress_level3(self, cache):
        self.cctx.compress(self.buffer)

    def time_decompress_level3(self, cache):
        self.dctx.decompress(self.frame)

    def track_ratio_level3(self, cache):
        return len(self.frame) / len(self.buffer)

    track_ratio_level3.unit = "compressed bytes / raw bytes"

    def track_ratio_level19(self, cache):
        return cache["level19"] / cache["raw"]

    track_ratio_level19.unit = "compressed bytes / raw bytes"

    def track_seconds_level19(self, cache):
        """One timed pass of level 19 over the whole table (in setup_cache)."""
        return cache["seconds19"]

    track_seconds_level19.unit = "s"


# --------------------------------------------------------------------------
# zstd with a trained dictionary, one frame per image
# --------------------------------------------------------------------------
class _ZstdDictFrames:
    """Shared ``setup_cache``: the dictionary and every image's frame, built once per run.

    asv keys a setup_cache by its source location, so ``ZstdDictMnist`` and
    ``bench_random_access.ZstdDictRows`` share this one.
    """

    timeout = 300

    def setup_cache(self):
        def build():
            _need_zstd()
            classes = mnist_classes()
            zdict = train_mnist_dictionary(classes)
            cctx = frame_compressor(zdict, 19)
            return {
                "dict": zdict.as_bytes(),
                "frames": [compress_frames(cctx, X) for X in classes],  # (bytes, offsets) per class
                "raw": sum(X.nbytes for X in classes),
                "n": sum(len(X) for X in classes),
            }

        return cache_or_skip(build)


class ZstdDictMnist(_ZstdDictFrames):
    """zstd + 112 KiB trained dictionary, level 19, one frame per image (all 60,000)."""

    def setup(self, cache):
        check_cache(cache)
        self.classes = mnist_classes()

    def time_train_dictionary(self, cache):
        train_mnist_dictionary(self.classes)

    def track_ratio(self, cache):
        """(frames + dictionary + 4 bytes per image) / raw bytes."""
        frames = sum(len(buf) for buf, _ in cache["frames"])
        return (frames + len(cache["dict"]) + OFFSET_BYTES * cache["n"]) / cache["raw"]

    track_ratio.unit = "stored bytes / raw bytes"

    def track_ratio_frames_only(self, cache):
        return sum(len(buf) for buf, _ in cache["frames"]) / cache["raw"]

    track_ratio_frames_only.unit = "frame bytes / raw bytes"

    def track_dictionary_kib(self, cache):
        return len(cache["dict"]) / 1024

    track_dictionary_kib.unit = "KiB"


# --------------------------------------------------------------------------
# gedenb with entropy-coded deviations, next to the peers (issue 7)
# --------------------------------------------------------------------------
class EntropyMnist:
    """gedenb ``compress_images(..., coding="entropy")``: MNIST train class-wise, all 60,000 images.

    The whole image container file is counted (header, class index, every
    part's codecs, model, row index and row streams) -- compare with
    ``ZstdDictMnist.track_ratio`` (frames + dictionary + 4 bytes per image).
    """

    timeout = 900

    def setup_cache(self):
        def build():
            from ._common import TempDir, gedenb
            from gedenb.images import compress_images

            classes = mnist_classes()
            X = np.concatenate(classes).reshape(-1, 28, 28)
            y = np.repeat(np.arange(10), [len(c) for c in classes])
            warm = np.concatenate([np.flatnonzero(y == k)[:1000] for k in range(10)])
            compress_images(X[warm], y[warm], coding="entropy")  # compile the kernels: not part of the time
            t0 = time.perf_counter()
            store = compress_images(X, y, coding="entropy")
            seconds = time.perf_counter() - t0
            with TempDir() as tmp:
                nbytes = gedenb.save(store, tmp / "mnist.gede")
            return {"bytes": nbytes, "raw": X.nbytes, "seconds": seconds}

        return cache_or_skip(build)

    def setup(self, cache):
        check_cache(cache)

    def track_ratio(self, cache):
        """File bytes / raw bytes (issue 7 bar: <= ZstdDictMnist.track_ratio)."""
        return cache["bytes"] / cache["raw"]

    track_ratio.unit = "stored bytes / raw bytes"

    def track_compress_seconds(self, cache):
        """One pass of compress_images (all ten classes), in setup_cache, after a pass over 1,000 images per
        class has compiled the kernels."""
        return cache["seconds"]

    track_compress_seconds.unit = "s"


class EntropyTables:
    """Tables: gedenb ``coding="entropy"`` (per-row random access) vs zstd-19 on the whole raw array.

    California Housing (shipped), Default of Credit Card Clients and IJCNN1
    (``GEDENB_DATA``), ``beta=None``, ``tau=10``; the ``.gede`` file bytes
    and the zstd frame bytes, each over the raw bytes.
    """

    timeout = 900
    params = ["california", "credit_default", "ijcnn1"]
    param_names = ["table"]

    def setup_cache(self):
        from gedenb import datasets

        from ._common import gedenb

        out = {}
        for name in self.params:
            try:
                X = california() if name == "california" else np.ascontiguousarray(
                    getattr(datasets, name)().data)
            except (FileNotFoundError, ValueError) as e:
                out[name] = {"skip": f"{name} needs GEDENB_DATA: {e}"}
                continue
            if smoke():
                X = np.ascontiguousarray(X[:2048])
            gedenb.compress(X, coding="entropy")  # compile every kernel it takes (sizes pick kernels): not timed
            t0 = time.perf_counter()
            c = gedenb.compress(X, coding="entropy")
            seconds = time.perf_counter() - t0
            from gedenb.store import to_bytes

            out[name] = {"gede": len(to_bytes(c)), "raw": X.nbytes, "seconds": seconds,
                         "zstd19": len(zstandard.ZstdCompressor(level=19).compress(X.tobytes())) if zstandard else -1,
                         "gede_raw_bits": len(to_bytes(gedenb.compress(X)))}
        return out

    def setup(self, cache, table):
        _need_zstd()
        check_cache(cache[table])

    def track_ratio_entropy(self, cache, table):
        return cache[table]["gede"] / cache[table]["raw"]

    track_ratio_entropy.unit = "file bytes / raw bytes"

    def track_ratio_raw_bits(self, cache, table):
        """gedenb as published (raw-bit deviations), for reference."""
        return cache[table]["gede_raw_bits"] / cache[table]["raw"]

    track_ratio_raw_bits.unit = "file bytes / raw bytes"

    def track_ratio_zstd19(self, cache, table):
        return cache[table]["zstd19"] / cache[table]["raw"]

    track_ratio_zstd19.unit = "zstd-19 bytes / raw bytes"

    def track_entropy_vs_zstd19(self, cache, table):
        """Issue 7 bar: <= 1."""
        return cache[table]["gede"] / cache[table]["zstd19"]

    track_entropy_vs_zstd19.unit = "gedenb bytes / zstd-19 bytes"

    def track_compress_seconds(self, cache, table):
        """One ``compress`` of the whole table after a first one has compiled the kernels."""
        return cache[table]["seconds"]

    track_compress_seconds.unit = "s"


# --------------------------------------------------------------------------
# Blosc2
# --------------------------------------------------------------------------
class Blosc2Mnist:
    """Blosc2 NDArray per class (zstd clevel 5, 16-row blocks), all ten classes."""

    params = ["shuffle", "bitshuffle"]
    param_names = ["filter"]

    def setup(self, shuffle):
        _need_blosc2()
        self.classes = mnist_classes()
        blosc2_array(self.classes[0][:64], shuffle)  # load the codec once

    def time_compress(self, shuffle):
        for X in self.classes:
            blosc2_array(X, shuffle)

    def track_ratio(self, shuffle):
        """Compressed bytes of the ten super-chunks (headers and offsets included) / raw bytes."""
        cbytes = sum(blosc2_array(X, shuffle).schunk.cbytes for X in self.classes)
        return cbytes / sum(X.nbytes for X in self.classes)

    track_ratio.unit = "compressed bytes / raw bytes"
