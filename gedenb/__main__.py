"""Command line: ``gedenb COMMAND`` (or ``python -m gedenb COMMAND``); :func:`build_parser` lists the commands."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, compress, learning_set, save, size_breakdown
from . import open as open_store
from ._optional import EXTRAS, MissingDependency, needs, require
from .encode import KIND_NAMES
from .decode import frame_schema
from .errors import FormatError

DESCRIPTION = """\
EntroGeDe (entropy-based Generalized Deduplication): compress tables (NumPy,
CSV, Parquet) and images losslessly into randomly accessible .gede files, read rows back,
and learn on the condensed samples; reproduce the experiments of the
dreaMLearning paper (Zhao, Karras, Hurst, Lucani, arXiv 2506.22190)."""

EPILOG = """\
examples:
  %(prog)s quickstart
  %(prog)s compress table.csv.gz table.gede --beta 12 --tau 10
  %(prog)s compress sales.csv sales.gede --beta 12 --target price
  %(prog)s decompress sales.gede sales-again.csv
  %(prog)s reproduce table1 --fraction 0.01 --batch-size 64 --seed 0,1,2,3,4

'%(prog)s COMMAND --help' shows a command's options."""


#: Table files that ``compress`` reads and ``decompress`` writes, by how the name ends: (format, delimiter).
TABLE_FORMATS = {".npy": ("npy", None), ".csv": ("csv", ","), ".csv.gz": ("csv", ","), ".tsv": ("csv", "\t"),
                 ".tsv.gz": ("csv", "\t"), ".parquet": ("parquet", None)}
#: Schema metadata of a table read from a CSV file without a header, so that it is written back without one.
_NO_HEADER = (b"gedenb.csv.header", b"false")

COMPRESS_DESCRIPTION = """\
Compress a table into a .gede file. A .npy file (plain or structured) is
compressed as it is. CSV, TSV and Parquet files are read with pyarrow
(pip install "gedenb[frames]"): column names and per-column types (integers,
floats, booleans, dates, times, text) are kept, and an empty cell is a missing
value (a quoted "" an empty string); 'decompress' to .csv or .parquet gives the
same table back."""

HEADER_RULE = """\
The first row is a header when, in every column whose cells below it read as
numbers, booleans, dates or times, its cell does not (and its cells are all
distinct and non-empty). It is data when each such cell reads as a value of
its column (an empty cell being a missing value). Otherwise, or when no column
holds such values (all text), compress refuses: pass --header or --no-header."""


def _table_format(path: Path, verb: str | None = None) -> tuple:
    """``(format, delimiter)`` of a table file by its name (:data:`TABLE_FORMATS`); with ``verb``
    (``"reading"``, ``"writing"``), a CSV or Parquet file first checks that pyarrow is installed."""
    name = path.name.lower()
    for suffix in sorted(TABLE_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            kind, delimiter = TABLE_FORMATS[suffix]
            if verb is not None and kind != "npy":
                require(f"{verb} {'Parquet' if kind == 'parquet' else 'CSV'}", "pyarrow")
            return kind, delimiter
    kinds = list(TABLE_FORMATS)
    raise ValueError(f"{path}: expected a {', '.join(kinds[:-1])} or {kinds[-1]} file")


def _read_table(path: Path, header: bool | None = None) -> tuple:
    """A table file as what :func:`gedenb.compress` takes, and a note on how it was read.

    Parameters
    ----------
    path : Path
        A ``.npy`` file (plain or structured array), a ``.csv`` / ``.tsv`` file
        (optionally gzipped: ``.csv.gz``, ``.tsv.gz``) or a ``.parquet`` file.
    header : bool, optional
        CSV / TSV only: whether the first row holds the column names; None
        detects it (the rule of :func:`_detect_header`).

    Returns
    -------
    table : ndarray or pyarrow.Table
        A ``.npy`` file's array as it is; CSV and Parquet files as an Arrow
        table (CSV: per-column types inferred by pyarrow, empty cells null,
        columns of a file without a header named ``column_0``, ``column_1``, ...).
    note : str
        How the file was read (header or not, and why), for the user.

    Raises
    ------
    MissingDependency
        pyarrow is not installed (CSV and Parquet), before any work.
    ValueError
        An unknown file name, ``header`` for a file that is not CSV, a header
        that cannot be told apart from data, empty or repeated header cells,
        a column without a single value, or a file pyarrow cannot parse.
    """
    kind, delimiter = _table_format(path, "reading")
    if header is not None and kind != "csv":
        raise ValueError(f"{path}: --header and --no-header apply to CSV and TSV files only")
    if kind == "npy":
        return np.load(path, allow_pickle=False), "NumPy array"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    import pyarrow as pa

    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            table, note = pq.read_table(path), "Parquet"
        else:
            table, note = _read_csv(path, delimiter, header)
    except pa.ArrowInvalid as e:
        raise ValueError(f"{path}: {e}") from None
    empty = [name for name, atype in zip(table.column_names, table.schema.types) if pa.types.is_null(atype)]
    if empty:
        raise ValueError(f"{path}: column {empty[0]!r} has no values (every cell is empty), so it has no type to "
                         "store it as; drop the column or fill it")
    return table, note


def _read_csv(path: Path, delimiter: str, header: bool | None) -> tuple:
    """A CSV / TSV file as an Arrow table (see :func:`_read_table`) and how its first row was taken."""
    import pyarrow.csv as pacsv

    # only an empty cell is missing ("NA", "NaN", "null" are values); a quoted "" is an empty string
    convert = pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False)

    def options(named: bool, skip_blank_lines: bool = True) -> dict:
        return {"read_options": pacsv.ReadOptions(autogenerate_column_names=not named),
                "parse_options": pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=skip_blank_lines),
                "convert_options": convert}

    def schema(named: bool):  # the types pyarrow infers from the first block of the file
        with pacsv.open_csv(path, **options(named)) as reader:
            return reader.schema

    named = schema(True)
    how = "--header" if header else "--no-header"
    if header is None:
        header, how = _detect_header(named, schema(False), path), "detected"
    # a blank line is a row in a one-column file (a missing value), never in a wider one
    table = pacsv.read_csv(path, **options(header, skip_blank_lines=len(named) > 1))
    if header:
        names = table.column_names
        if "" in names or len(set(names)) != len(names):
            bad = names.index("") if "" in names else next(j for j, v in enumerate(names) if names.index(v) < j)
            raise ValueError(f"{path}: header cell {bad} is {'empty' if not names[bad] else 'repeated'} "
                             f"({names[bad]!r}); every column needs its own name (or pass --no-header)")
        return table, f"first row: header, {how}"
    table = table.rename_columns([f"column_{j}" for j in range(table.num_columns)])
    table = table.replace_schema_metadata(dict([_NO_HEADER]))
    return table, f"first row: data, {how}; columns column_0 .. column_{table.num_columns - 1}"


def _detect_header(named, unnamed, path: Path) -> bool:
    """Whether the first row of a CSV file is a header (the rule of :data:`HEADER_RULE`, shown by --help).

    Only columns whose cells below the first row read as numbers, booleans,
    dates or times (as pyarrow infers them) have a say: the first row is a
    header when none of its cells in those columns reads as a value of its
    column (pyarrow then types the column as text) and all its cells are
    distinct and non-empty; it is data when each of those cells reads as a
    value (an empty cell is a missing value).  Any other case -- some cells
    read as values and others do not, a would-be header with empty or repeated
    cells, or no such column at all (every column text) -- is ambiguous, and
    refused rather than guessed: a data row is never taken for a header.

    Parameters
    ----------
    named : pyarrow.Schema
        The file read with its first row as column names: those names are
        the first row's cells, the types those of the rows below it.
    unnamed : pyarrow.Schema
        The file read with the first row as data: a column whose cells below
        the first row read as numbers, booleans, dates or times becomes text
        here exactly when its first-row cell does not read as such a value.
    path : Path
        For the messages.

    Raises
    ------
    ValueError
        The first row cannot be told apart from data (no column has typed
        values below it, some of its cells read as values and others do not,
        or it looks like a header but has empty or repeated cells).
    """
    import pyarrow as pa

    def typed(atype) -> bool:
        t = pa.types
        return not (t.is_null(atype) or t.is_string(atype) or t.is_large_string(atype) or t.is_binary(atype)
                    or t.is_large_binary(atype))

    votes = {True: [], False: []}  # header: the first-row cells that do not read as their column's values
    for j, (below, whole) in enumerate(zip(named.types, unnamed.types)):
        if typed(below):
            votes[not typed(whole)].append(j)
    cells = named.names
    if votes[True] and not votes[False]:
        if "" not in cells and len(set(cells)) == len(cells):
            return True
        reason = "it reads as names, but some of its cells are empty or repeated"
    elif votes[False] and not votes[True]:
        return False
    elif votes[True]:
        reason = (f"its cells in columns {_indices(votes[False])} read as values of those columns, those in columns "
                  f"{_indices(votes[True])} do not")
    else:
        reason = "no column holds numbers, booleans, dates or times below it to compare it with"
    raise ValueError(f"{path}: cannot tell whether the first row is a header ({reason}); "
                     "pass --header or --no-header")


def _indices(cols: list) -> str:
    return ", ".join(map(str, cols[:5])) + (", ..." if len(cols) > 5 else "")


def _write_table(r, path: Path) -> str:
    """Decode every row of the reader ``r`` into a table file; a line saying what was written.

    Parameters
    ----------
    r : Reader
        An open ``.gede`` file.
    path : Path
        ``.npy``: the physical table (:func:`gedenb.decompress`; a table that
        came from a frame is a structured array with text as dictionary codes
        and a ``<name>.null`` field per column with missing values).
        ``.csv``, ``.tsv`` (optionally ``.gz``) or ``.parquet``: the logical
        table, as ``r.read_rows(slice(None), as_frame="arrow")``; a CSV file
        compressed without a header, or a plain NumPy array, is written
        without one.

    Raises
    ------
    MissingDependency
        pyarrow is not installed (CSV and Parquet), before any work.
    ValueError
        An unknown file name.
    """
    kind, delimiter = _table_format(path, "writing")
    if kind == "npy":
        X = r.read_rows(slice(None))
        np.save(path, X, allow_pickle=False)  # a structured .npy for a mixed-dtype table
        if X.dtype.names is None:
            return f"{X.shape[0]:,} x {X.shape[1]} {X.dtype}"
        physical = " (the physical table: text as codes, nulls as .null fields)" if r.compressed.frame is not None \
            else ""
        return f"{X.shape[0]:,} records of {len(X.dtype.names)} fields ({', '.join(X.dtype.names)}){physical}"
    import pyarrow as pa

    table = r.read_rows(slice(None), as_frame="arrow")
    if kind == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    else:
        import pyarrow.csv as pacsv

        # a CSV file read without a header, or a NumPy array (no column names), is written without one
        named = r.compressed.frame is not None or r.compressed.dtype.names is not None
        header = named and (table.schema.metadata or {}).get(_NO_HEADER[0]) != _NO_HEADER[1]
        options = pacsv.WriteOptions(include_header=header, delimiter=delimiter)
        if path.name.lower().endswith(".gz"):
            with pa.CompressedOutputStream(str(path), "gzip") as out:
                pacsv.write_csv(table, out, options)
        else:
            pacsv.write_csv(table, str(path), options)
    return f"{table.num_rows:,} rows x {table.num_columns} columns ({', '.join(table.column_names)})"


def _columns_option(text: str, names, option: str) -> list:
    """``--target`` / ``--cluster-columns``: comma-separated column names or 0-based indices (a column's
    whole name first, so that a name may hold commas or digits)."""
    names = tuple(names or ())
    if text in names:
        return [text]
    out = []
    for item in text.split(","):
        if item in names or item.strip() in names:
            out.append(item if item in names else item.strip())
        elif item.strip().lstrip("-").isdigit():
            out.append(int(item))
        else:
            listed = f" (columns: {', '.join(names)})" if names else "; this table's columns have no names"
            raise ValueError(f"{option}: no column named {item!r}{listed}")
    return out


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:,.0f} {unit}" if unit == "B" else f"{b:,.1f} {unit}"
        b /= 1024
    return f"{b}"


def _size_report(c, on_disk: int | None) -> list[str]:
    s = size_breakdown(c)
    raw = c.raw_bytes
    lines = ["Eq. 1 size breakdown:"]
    for name, bits in s._asdict().items():
        lines.append(f"  {name:<11} {bits / 8:>14,.0f} bytes")
    lines.append(f"  {'total':<11} {s.total / 8:>14,.0f} bytes  ({s.total / 8 / raw:.1%} of raw)")
    if on_disk is not None:
        lines.append(f"bytes on disk {on_disk:>14,} bytes  ({on_disk / raw:.1%} of raw, "
                     f"{on_disk / (s.total / 8) - 1:+.3%} vs Eq. 1)")
    lines.append(f"raw {'records' if c.dtype.names is not None else c.dtype}   {raw:>14,} bytes")
    return lines


def _describe(c) -> list[str]:
    kinds = np.bincount(c.codecs.kind, minlength=4)
    codec_s = ", ".join(f"{KIND_NAMES[k]} x{int(v)}" for k, v in enumerate(kinds) if v)
    names = c.dtype.names
    if names is not None:
        head = [f"shape          {c.shape[0]:,} x {c.shape[1]}  (mixed dtypes: {len(names)} fields, "
                f"{c.dtype.itemsize} bytes per row)",
                "fields         " + ", ".join(f"{f} {c.dtype.fields[f][0].name}" for f in names)]
    else:
        head = [f"shape          {c.shape[0]:,} x {c.shape[1]}  ({c.dtype})"]
    return head + [
        f"codecs         {codec_s}",
        f"bits per row   {c.row_bits} (base {c.base_bits}, deviation {c.deviation_bits}, base ID {c.id_bits})",
        f"bases          n_b = {c.n_bases:,}",
        f"condensed      m = {len(c.weights):,} ({'stored' if c.store_condensed else 'recomputed on demand'}, "
        f"beta = {c.beta})",
    ] + _coding_lines(c)


def _coding_lines(c) -> list[str]:
    if c.coded is None:
        return ["coding         raw (fixed-width records, the paper's)"]
    from .entropy.deviations import coding_summary

    lines = ["coding         " + coding_summary(c.coded)]
    if getattr(c, "predict", None) is not None:
        lines.append(f"transform      {c.predict.describe()} ({c.predict.nbytes:,} B)")
    return lines


def cmd_quickstart(args) -> int:
    from .datasets import california_housing
    from .solvers import mse, weighted_least_squares

    table = california_housing()
    data = table.data
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(data))
    n_train = int(round(0.8 * len(data)))
    train, test = data[perm[:n_train]], data[perm[n_train:]]
    print(f"California Housing: {data.shape[0]:,} rows x {data.shape[1]} columns "
          f"({', '.join(table.columns)}); 80/20 split, seed {args.seed}")
    t0 = time.perf_counter()
    # the target (the last column) is named: its bits stay out of the clustering (clusters chosen on the
    # target's bits would select on the outcome and bias the regression) and the file keeps exact means
    target = data.shape[1] - 1
    c = compress(train, beta=args.beta, tau=args.tau, target=target)
    t1 = time.perf_counter()
    print(f"\ncompressed the {n_train:,}-row training table in {t1 - t0:.2f} s "
          f"(beta = {args.beta} feature bits, target {table.columns[target]}, tau = {args.tau}; includes JIT "
          f"compilation on a machine's first run)")
    print("\n".join(_describe(c)))
    out = Path(args.out)
    nbytes = save(c, out)
    print("\n".join(_size_report(c, nbytes)))
    with open_store(out) as r:
        rows = r.read_rows([0, n_train // 2, n_train - 1])
        assert np.array_equal(rows.view(np.uint64), train[[0, n_train // 2, n_train - 1]].view(np.uint64))
        ls = learning_set(r)  # exact cluster means of the features and the target, with the cluster sizes
    print(f"wrote {out}; random access to rows 0, {n_train // 2}, {n_train - 1} is bit-exact")
    Xte, yte = test[:, :-1], test[:, -1]
    full = weighted_least_squares(train[:, :-1], train[:, -1])
    cond = weighted_least_squares(ls.X, ls.y, ls.sample_weight)
    e_full, e_cond = mse(full, Xte, yte), mse(cond, Xte, yte)
    print("\nlinear regression (closed-form least squares), test MSE:")
    print(f"  full training split  {n_train:>6,} rows     {e_full:.4f}")
    print(f"  condensed samples    {len(ls.y):>6,} weighted  {e_cond:.4f}  "
          f"({e_cond / e_full - 1:+.1%}, {len(ls.y) / n_train:.2%} of the rows)")
    return 0


def cmd_compress(args) -> int:
    if args.target is not None and args.beta is None:
        raise ValueError("--target needs --beta: a target is learned from the condensed samples, which only "
                         "clustering (--beta BITS) makes")
    X, note = _read_table(Path(args.input), args.header)
    names = X.column_names if not isinstance(X, np.ndarray) else X.dtype.names
    target = None if args.target is None else _columns_option(args.target, names, "--target")
    clusters = None if args.cluster_columns is None else _columns_option(args.cluster_columns, names,
                                                                         "--cluster-columns")
    t0 = time.perf_counter()
    c = compress(X, beta=args.beta, tau=args.tau, widths=args.widths, store_condensed=not args.no_store_condensed,
                 coding=args.coding, target=target[0] if target and len(target) == 1 else target,
                 task=args.task, cluster_columns=clusters)
    dt = time.perf_counter() - t0
    nbytes = save(c, args.output)
    print(f"{args.input} ({note}) -> {args.output} in {dt:.2f} s")
    print("\n".join(_describe(c) + _frame_lines(c)))
    print("\n".join(_size_report(c, nbytes)))
    return 0


def _frame_lines(c) -> list[str]:
    """The logical columns of a table that came from a frame (names, Arrow types, notes) and its targets."""
    lines, fs = [], None
    if c.frame is not None:
        try:
            fs = frame_schema(c)
        except MissingDependency:
            lines.append(f"frame          from a DataFrame or Arrow table ({needs('listing its columns', 'pyarrow')})")
    if fs is not None:
        kind = {"pandas": "pandas DataFrame", "polars": "polars DataFrame", "arrow": "Arrow table"}[fs.kind]
        lines.append(f"frame          {kind}, {len(fs.columns)} columns:")
        width = max(len(col.name) for col in fs.columns)
        for col in fs.columns:
            notes = []
            if col.storage != "plain":
                what = "categories" if col.storage == "dictionary" else "distinct values"
                notes.append(f"dictionary: {len(fs.dictionaries[col.dictionary]):,} {what}")
            if col.nulls >= 0:
                notes.append(f"nullable: field {c.dtype.names[col.nulls]!r}")
            lines.append(f"  {col.name:<{width}}  {fs.schema.field(col.name).type}"
                         + (f"  ({'; '.join(notes)})" if notes else ""))
    learning = c.learning
    if learning is not None and learning.targets:
        logical = {} if fs is None else {col.field: col.name for col in fs.columns}
        names = [logical.get(t, c.dtype.names[t] if c.dtype.names else f"column {t}") for t in learning.targets]
        task = learning.task + (f", {len(learning.classes):,} classes" if learning.task == "classification" else "")
        lines.append(f"target         {', '.join(names)} ({task})")
    return lines


def cmd_info(args) -> int:
    with open_store(args.file) as r:
        c = r.compressed
        print(f"{args.file}: .gede format {r.version[0]}.{r.version[1]}")
        print("\n".join(_describe(c) + _frame_lines(c)))
        print("\n".join(_size_report(c, r.nbytes)))
        if args.columns:
            names = c.dtype.names
            for j in range(c.d):
                field = "" if names is None else f"{names[j]} ({c.dtype.fields[names[j]][0].name}) "
                print(f"  column {j:>4}: {field}{c.codecs.describe(j)}")
    return 0


def cmd_decompress(args) -> int:
    _table_format(Path(args.output), "writing")  # an unknown file name or no pyarrow: before any work
    with open_store(args.file) as r:
        what = _write_table(r, Path(args.output))
    print(f"{args.file} -> {args.output}: {what}")
    return 0


def cmd_condensed(args) -> int:
    with open_store(args.file) as r:
        samples, weights = r.condensed()
    np.savez(args.output, samples=samples, weights=weights)
    print(f"{args.file} -> {args.output}: {len(weights):,} condensed samples (weights sum {int(weights.sum()):,})")
    return 0


def cmd_reproduce(args) -> int:
    import tempfile

    from .experiments import EXPERIMENTS
    from .experiments.table import no_figure_reason

    fn = EXPERIMENTS[args.name]
    options = {k: v for k, v in vars(args).items() if k in fn.cli.options}
    figure = not args.no_figure and fn.cli.draws_figure
    if figure and (reason := no_figure_reason()) is not None:
        print(f"warning: {reason}; printing the table without it", file=sys.stderr)
        figure = False
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        table = fn(out_dir=tmp, quick=args.quick, figure=figure, **options)
    print(table.to_markdown())
    if table.figure is not None:
        png = out / f"{args.name}.png"
        table.figure.savefig(png, dpi=120, bbox_inches="tight")
        print(f"\nfigure: {png}")
    return 0


def _versions() -> str:
    import numba

    return f"gedenb {__version__} (Python {sys.version.split()[0]}, NumPy {np.__version__}, Numba {numba.__version__})"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Description and epilog as written; command names beside their summaries.

    argparse reckons the help column without the extra indent of the
    sub-command names, so names as long as ``decompress`` would push their
    summary onto the next line.
    """

    def add_argument(self, action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            self._action_max_length += self._indent_increment


def build_parser(prog: str = "gedenb") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=_versions())
    sub = p.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")

    q = sub.add_parser("quickstart", help="compress California Housing and learn on its condensed samples")
    q.add_argument("--beta", type=int, default=12, help="clustering bits (default 12)")
    q.add_argument("--tau", type=int, default=10, help="plateau threshold (default 10)")
    q.add_argument("--seed", type=int, default=0, help="train/test split seed (default 0)")
    q.add_argument("--out", default="california_housing.gede", help="file to write")
    q.set_defaults(func=cmd_quickstart)

    c = sub.add_parser("compress", help="compress a .npy / .csv / .tsv (optionally .gz) / .parquet table into a "
                                        ".gede file", formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=COMPRESS_DESCRIPTION,
                       epilog="CSV header detection (without --header / --no-header):\n" + HEADER_RULE)
    c.add_argument("input", help="table to read: .npy, .csv, .csv.gz, .tsv, .tsv.gz or .parquet")
    c.add_argument("output", help=".gede file to write")
    c.add_argument("--beta", type=int, default=None, help="clustering bits (default: no clustering)")
    c.add_argument("--tau", type=int, default=10, help="plateau threshold (default 10)")
    c.add_argument("--widths", choices=("narrow", "native"), default="narrow")
    c.add_argument("--no-store-condensed", action="store_true",
                   help="storage-constrained mode: keep only the beta positions")
    c.add_argument("--coding", choices=("raw", "entropy"), default="raw",
                   help="deviations as raw bits (the paper's, default) or entropy-coded (rANS, smaller)")
    header = c.add_mutually_exclusive_group()
    header.add_argument("--header", dest="header", action="store_const", const=True, default=None,
                        help="CSV / TSV: the first row holds the column names (default: detect, see below)")
    header.add_argument("--no-header", dest="header", action="store_const", const=False,
                        help="CSV / TSV: the first row is data; columns are named column_0, column_1, ...")
    c.add_argument("--target", metavar="COLUMN",
                   help="column to learn (a name or 0-based index; several: comma-separated), recorded in the file "
                        "and kept out of clustering; needs --beta")
    c.add_argument("--task", choices=("auto", "regression", "classification"), default="auto",
                   help="what --target is (default auto: classes for booleans, text and at most 64 whole numbers)")
    c.add_argument("--cluster-columns", metavar="A,B,...",
                   help="columns whose bits clustering may use (names or 0-based indices, comma-separated; "
                        "default: all but the target)")
    c.set_defaults(func=cmd_compress)

    i = sub.add_parser("info", help="describe a .gede file")
    i.add_argument("file")
    i.add_argument("--columns", action="store_true", help="list every column's codec")
    i.set_defaults(func=cmd_info)

    d = sub.add_parser("decompress", help="decode a .gede file into a .npy / .csv / .tsv (optionally .gz) / "
                                          ".parquet file")
    d.add_argument("file")
    d.add_argument("output", help=".npy: the physical table (a structured array for mixed dtypes; text as "
                                  "dictionary codes, a bool <name>.null field per column with missing values); "
                                  ".csv, .csv.gz, .tsv, .tsv.gz, .parquet: the table as it was compressed "
                                  "(names, types, empty cells)")
    d.set_defaults(func=cmd_decompress)

    s = sub.add_parser("condensed", help="write the condensed samples and weights to a .npz file")
    s.add_argument("file")
    s.add_argument("output")
    s.set_defaults(func=cmd_condensed)

    _add_reproduce(sub)
    return p


def _add_reproduce(sub) -> None:
    """``reproduce NAME``: one sub-parser per experiment, with the options its function declares."""
    from .experiments import EXPERIMENTS
    from .experiments.options import add_arguments

    r = sub.add_parser("reproduce", help="run one of the paper's experiments and print its table",
                       formatter_class=_Formatter,
                       description="Run one of the paper's experiments, print its table and save its figure.",
                       epilog="'%(prog)s NAME --help' shows an experiment's options.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="reproduce-output", metavar="DIR",
                        help="folder for the figure and temporary files (default: ./reproduce-output)")
    common.add_argument("--quick", action="store_true",
                        help="a small smoke run, not the paper's setting (may override other options)")
    common.add_argument("--no-figure", action="store_true", help="print the table only")
    names = r.add_subparsers(dest="name", required=True, title="experiments", metavar="NAME")
    for name, fn in EXPERIMENTS.items():
        e = names.add_parser(name, help=fn.cli.summary, description=fn.cli.summary, parents=[common],
                             epilog=f"Python: gedenb.experiments.{fn.__name__}() (its docstring explains the table).")
        add_arguments(e, fn)
    r.set_defaults(func=cmd_reproduce)


def _import_error(exc: ImportError, command: str) -> str | None:
    """The one-line message for an optional dependency that is missing, or None for any other ImportError."""
    if isinstance(exc, MissingDependency):
        return str(exc)
    top = (exc.name or "").partition(".")[0]
    return needs(f"gedenb {command}", top) if top in EXTRAS else None


def main(argv=None) -> int:
    prog = "python -m gedenb" if Path(sys.argv[0]).name == "__main__.py" else "gedenb"
    args = build_parser(prog).parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly like other tools
        sys.stderr.close()
        return 0
    except ImportError as e:
        message = _import_error(e, args.command)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except (FormatError, ValueError, TypeError, KeyError, FileNotFoundError, IsADirectoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
