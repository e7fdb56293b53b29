"""gedenb: learning directly on EntroGeDe-compressed data.

EntroGeDe (entropy-based Generalized Deduplication) is a lossless, randomly
accessible compressor whose by-products -- condensed samples with weights --
are training-ready (Zhao, Karras, Hurst, Lucani, *dreaMLearning*).

Importing gedenb imports only NumPy, SciPy and Numba.
"""

from .compressed import Compressed, eq1_bits, size_breakdown
from .decode import condensed, decompress
from .encode import Codecs, fit_codecs
from .entrogede import compress
from .errors import FormatError
from .files import open, save
from .learning import LearningSet, learning_set
from .sizes import SizeBreakdown
from .store import Reader

__version__ = "0.2.0"

__all__ = [
    "Codecs",
    "Compressed",
    "FormatError",
    "LearningSet",
    "Reader",
    "SizeBreakdown",
    "compress",
    "condensed",
    "decompress",
    "eq1_bits",
    "fit_codecs",
    "learning_set",
    "open",
    "save",
    "size_breakdown",
]
