"""EntroGeDe on Dask (``gedenb.dask``): throughput and worker memory.

Data: the synthetic mixed-dtype table (``datasets.synthetic_mixed``, 16
fields, 60 bytes per row) written as ``.npy`` files of ``CHUNK_ROWS`` rows
each (one file = one chunk = one shard), compressed with ``beta=12`` into a
sharded store.

* ``DaskCompress.track_rows_per_second``: rows per second of
  ``gedenb.dask.compress`` on a ``LocalCluster`` of 1 and 2 worker
  processes (one thread each), greedy search on all rows (the setting in
  which the result equals single-machine compress), against
  ``gedenb.compress`` on the same rows in this process (``workers="single"``,
  which reads the table from memory, not from the files).
* ``DaskWorkerMemory.track_peak_worker_rss``: the largest peak resident set
  size of a worker process, in MB, at two table sizes with the same chunk
  size (greedy search on a fixed sample of ``SAMPLE_ROWS`` rows, as a
  table larger than one machine would be run): it depends on the chunk
  size, not on ``n``.

Every ``setup`` compresses a small table on the cluster first, so the
workers' Numba kernels are compiled (or loaded from the cache) before
anything is measured.  In smoke mode (``GEDENB_BENCH_SMOKE``) the tables
are tiny and the cluster's workers are threads of this process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import TempDir, best_of, gedenb, smoke

BETA = 12
TAU = 10
#: Rows per chunk (= per .npy file = per shard), full and smoke.
CHUNK_ROWS = 250_000
SMOKE_CHUNK_ROWS = 1024
#: Rows of the throughput table.
ROWS = 2_000_000
SMOKE_ROWS = 4096
#: Rows the greedy search sees in the memory benchmark.
SAMPLE_ROWS = 1 << 18


def _dask_or_skip():
    try:
        import gedenb.dask as gdask
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise NotImplementedError(f"the dask benchmarks need the 'dask' extra: {e}") from None
    return gdask, Client, LocalCluster


def _write_chunks(tmp: TempDir, n: int, chunk: int) -> tuple[np.ndarray, list]:
    from gedenb import datasets

    T = datasets.synthetic_mixed(n, seed=0)
    paths = []
    for i, start in enumerate(range(0, n, chunk)):
        paths.append(str(tmp / f"chunk{i:04d}.npy"))
        np.save(paths[-1], T[start:start + chunk])
    return T, paths


_STATUS = Path("/proc/self/status")


def _reset_peak_rss(client) -> None:
    """Reset the workers' peak resident set size (Linux: ``/proc/self/clear_refs``)."""
    client.run(Path("/proc/self/clear_refs").write_text, "5")


def _peak_rss_mb(client) -> float:
    """Largest peak resident set size (``VmHWM``) of the client's workers since the last reset, MB.

    Not ``getrusage``: its ``ru_maxrss`` keeps the high-water mark of the
    process that forked the worker (here the benchmark process holding the
    table).  Bound methods of a Path travel to the workers, which cannot
    import this module.
    """
    peaks = []
    for text in client.run(_STATUS.read_text).values():
        line = next(x for x in text.splitlines() if x.startswith("VmHWM:"))
        peaks.append(int(line.split()[1]) / 1024.0)
    return max(peaks)


class _Cluster:
    """A LocalCluster of ``workers`` processes (threads in smoke mode) and its client."""

    def __init__(self, workers: int):
        gdask, Client, LocalCluster = _dask_or_skip()
        self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=not smoke(),
                                    dashboard_address=":0")
        self.client = Client(self.cluster)
        with TempDir() as tmp:  # compile (or load) the workers' kernels
            T, paths = _write_chunks(tmp, 3000, 1000)
            gdask.compress(paths, tmp / "warm", beta=BETA, tau=TAU)

    def close(self):
        self.client.close()
        self.cluster.close()


class DaskCompress:
    """Rows per second: gedenb.dask.compress on 1 and 2 workers vs gedenb.compress."""

    params = [["single", 1, 2]]
    param_names = ["workers"]
    timeout = 900

    def setup(self, workers):
        self.gdask = _dask_or_skip()[0]
        self.tmp = TempDir()
        n, chunk = (SMOKE_ROWS, SMOKE_CHUNK_ROWS) if smoke() else (ROWS, CHUNK_ROWS)
        self.T, self.paths = _write_chunks(self.tmp, n, chunk)
        self.cluster = None
        if workers == "single":
            gedenb.compress(self.T[:2000], beta=BETA, tau=TAU)
        else:
            self.cluster = _Cluster(workers)

    def teardown(self, workers):
        if self.cluster is not None:
            self.cluster.close()
        self.tmp.cleanup()

    def _run(self, workers):
        if workers == "single":
            gedenb.compress(self.T, beta=BETA, tau=TAU)
        else:
            self.gdask.compress(self.paths, self.tmp / "store", beta=BETA, tau=TAU, sample_rows=len(self.T),
                                overwrite=True)

    def track_rows_per_second(self, workers):
        return len(self.T) / best_of(lambda: self._run(workers), repeat=2)

    track_rows_per_second.unit = "rows/s"


class DaskWorkerMemory:
    """Peak RSS of a worker process: two table sizes, two chunk sizes."""

    params = [[1_000_000, 4_000_000], [125_000, 250_000]]
    param_names = ["rows", "chunk_rows"]
    timeout = 900

    def setup(self, rows, chunk_rows):
        self.gdask = _dask_or_skip()[0]
        if not _STATUS.exists():
            raise NotImplementedError("peak worker memory is read from /proc (Linux)")
        self.tmp = TempDir()
        n, chunk = (rows // 250, chunk_rows // 250) if smoke() else (rows, chunk_rows)
        T, self.paths = _write_chunks(self.tmp, n, chunk)
        del T
        self.cluster = _Cluster(2)

    def teardown(self, rows, chunk_rows):
        self.cluster.close()
        self.tmp.cleanup()

    def track_peak_worker_rss(self, rows, chunk_rows):
        _reset_peak_rss(self.cluster.client)
        self.gdask.compress(self.paths, self.tmp / "store", beta=BETA, tau=TAU, sample_rows=SAMPLE_ROWS,
                            overwrite=True)
        return _peak_rss_mb(self.cluster.client)

    track_peak_worker_rss.unit = "MB"


#: Stages of gedenb.dask.compress, as in ``ShardedSummary.pass_seconds``.
STAGES = ("codec_stats", "codec_check", "bit_counts", "clusters", "cluster_sums", "greedy", "bases", "shards")
#: Chunks of the per-chunk cost measurement.
PASS_CHUNKS = 8


class DaskPasses:
    """Cost of every stage per chunk of CHUNK_ROWS rows, one process (Dask's synchronous scheduler).

    The inputs of the memory and time model in docs/SCALING.md: one worker
    spends about this long on each chunk in each pass (``greedy`` is the
    client's search on all rows of the PASS_CHUNKS chunks, not per chunk).
    """

    timeout = 900

    def setup_cache(self):
        import dask

        gdask = _dask_or_skip()[0]
        chunk = SMOKE_CHUNK_ROWS if smoke() else CHUNK_ROWS
        with TempDir() as tmp:
            T, paths = _write_chunks(tmp, PASS_CHUNKS * chunk, chunk)
            with dask.config.set(scheduler="synchronous"):
                gdask.compress(paths[:2], tmp / "warm", beta=BETA, tau=TAU)
                s = gdask.compress(paths, tmp / "store", beta=BETA, tau=TAU, sample_rows=len(T))
        out = {name: sec / PASS_CHUNKS for name, sec in s.pass_seconds}
        out["rows_per_second"] = len(T) / sum(sec for _, sec in s.pass_seconds)
        return out

    def track_codec_stats(self, cache):
        return cache["codec_stats"]

    track_codec_stats.unit = "s/chunk"

    def track_rows_per_second(self, cache):
        return cache["rows_per_second"]

    track_rows_per_second.unit = "rows/s"


def _stage_track(name):
    def track(self, cache):
        return cache[name]

    track.__name__ = f"track_{name}"
    track.unit = "s/chunk"
    return track


for _name in STAGES[1:]:
    setattr(DaskPasses, f"track_{_name}", _stage_track(_name))
del _name
