"""What the training harness needs around a coreset method: the subset sampler and the memory monitor.

Memory: :class:`MemoryMonitor` samples the process's resident set size in a
thread and reports, per phase (selection, training), the peak growth above
the level at the start of the run; freed heap is returned to the OS
(``malloc_trim``) when a phase starts, so a phase is not credited with memory
an earlier one freed.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["MemoryMonitor", "SubsetSampler"]


class SubsetSampler(Sampler):
    """Serve the current subset of a training set in a fresh seeded order every epoch.

    The coreset methods swap the subset with :meth:`set_subset` (GRAD-MATCH
    and GLISTER every few epochs); the DataLoader need not be rebuilt.
    Batches come in :meth:`order`'s order, so the weights of a batch are the
    next ``len(batch)`` entries of :meth:`weights_in_order`.
    """

    def __init__(self, n: int, *, seed: int = 0):
        if int(n) < 1:
            raise ValueError("need at least one sample")
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0
        self.indices = np.arange(self.n, dtype=np.int64)
        self.weights = None

    def set_subset(self, indices, weights=None) -> None:
        """Serve ``indices`` (with per-sample loss ``weights``) from now on.

        Parameters
        ----------
        indices : 1-D int array
            Distinct indices into the training set, at least one.
        weights : 1-D float array, optional
            Finite non-negative weights, one per index (None: uniform).
        """
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or len(idx) == 0:
            raise ValueError("indices must be a non-empty 1-D array")
        if idx.min() < 0 or idx.max() >= self.n or len(np.unique(idx)) != len(idx):
            raise ValueError(f"indices must be distinct and in [0, {self.n})")
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != idx.shape or not np.isfinite(weights).all() or (weights < 0).any():
                raise ValueError("weights must be finite, non-negative, one per index")
        self.indices, self.weights = idx, weights

    def set_epoch(self, epoch: int) -> None:
        """Draw the order of epoch ``epoch`` (as ``DistributedSampler.set_epoch``).

        Parameters
        ----------
        epoch : int
            The epoch about to start.
        """
        self.epoch = int(epoch)

    def _perm(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch, 0x5EED]).permutation(len(self.indices))

    def order(self) -> np.ndarray:
        """This epoch's indices, in the order they are served."""
        return self.indices[self._perm()]

    def weights_in_order(self) -> np.ndarray | None:
        return None if self.weights is None else self.weights[self._perm()]

    def __iter__(self):
        return iter(self.order().tolist())

    def __len__(self) -> int:
        return len(self.indices)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class MemoryMonitor:
    """Peak resident memory per phase of a run, above the level at its start.

    A thread reads ``/proc/self/statm`` every ``interval`` seconds and keeps,
    for the current phase, the largest resident set size seen; on entering a
    phase freed heap is handed back to the OS (glibc ``malloc_trim``), so
    what one phase freed is not counted in the next.  :meth:`growth` is the
    phase's peak minus the resident size at :meth:`start` (model, optimiser
    and in-memory data already included there).  Where ``/proc`` is missing
    (not Linux) every growth reads 0.  On CUDA the allocator's peak per phase
    is kept as well (:attr:`gpu_peaks`).

    Examples
    --------
    >>> mon = MemoryMonitor().start()
    >>> with mon.phase("work"):
    ...     block = np.ones(20_000_000 // 8)
    >>> mon.stop(); del block
    >>> mon.growth("work") >= 0
    True
    """

    def __init__(self, interval: float = 0.002, device=None):
        self.interval = float(interval)
        self.device = torch.device(device) if device is not None else None
        self.peaks: dict = {}
        self.gpu_peaks: dict = {}
        self.baseline = 0
        self.current = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None

    @property
    def cuda(self) -> bool:
        return self.device is not None and self.device.type == "cuda"

    def start(self) -> MemoryMonitor:
        _malloc_trim()
        self.baseline = _rss_bytes() or 0
        if _rss_bytes() is not None:
            # the thread holds the monitor weakly: it ends with stop() or when the monitor is dropped
            ref, stop, interval = weakref.ref(self), self._stop, self.interval

            def run():
                while not stop.wait(interval):
                    mon = ref()
                    if mon is None:
                        return
                    mon._sample()
                    del mon

            self._thread = threading.Thread(target=run, name="gedenb-memory-monitor", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        phase = self.current
        if phase is None:
            return
        rss = _rss_bytes()
        if rss is not None:
            with self._lock:
                if rss > self.peaks.get(phase, 0):
                    self.peaks[phase] = rss

    def switch(self, name: str | None) -> str | None:
        """Attribute samples to phase ``name`` from now on (None: to no phase); returns the previous phase.

        Parameters
        ----------
        name : str or None
            The phase to attribute samples to.
        """
        prev = self.current
        if prev is not None:
            self._sample()
            if self.cuda:
                torch.cuda.synchronize(self.device)
                peak = int(torch.cuda.max_memory_allocated(self.device))
                self.gpu_peaks[prev] = max(self.gpu_peaks.get(prev, 0), peak)
        self.current = None
        if name is not None:
            _malloc_trim()
            if self.cuda:
                torch.cuda.synchronize(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
            self.current = name
            self._sample()
        return prev

    def phase(self, name: str):
        """Context manager: :meth:`switch` to ``name`` inside, back to the outer phase after.

        Parameters
        ----------
        name : str
            The phase inside the ``with`` block.
        """
        mon = self

        class _Phase:
            def __enter__(self):
                self.outer = mon.switch(name)
                return mon

            def __exit__(self, *exc):
                mon.switch(self.outer)
                return False

        return _Phase()

    def growth(self, name: str) -> int:
        """Peak resident bytes seen in phase ``name`` minus the baseline (0 if never entered).

        Parameters
        ----------
        name : str
            A phase.
        """
        return max(0, self.peaks.get(name, 0) - self.baseline) if name in self.peaks else 0

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
