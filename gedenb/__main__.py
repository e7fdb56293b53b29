"""Command line: ``gedenb COMMAND`` (or ``python -m gedenb COMMAND``); :func:`build_parser` lists the commands."""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, compress, save, size_breakdown
from . import open as open_store
from ._optional import EXTRAS, MissingDependency, needs
from .encode import KIND_NAMES
from .errors import FormatError

DESCRIPTION = """\
EntroGeDe (entropy-based Generalized Deduplication): compress numeric tables
and images losslessly into randomly accessible .gede files, read rows back,
and learn on the condensed samples; reproduce the experiments of the
dreaMLearning paper (Zhao, Karras, Hurst, Lucani, arXiv 2506.22190)."""

EPILOG = """\
examples:
  %(prog)s quickstart
  %(prog)s compress table.csv.gz table.gede --beta 12 --tau 10
  %(prog)s reproduce table1 --fraction 0.01 --batch-size 64 --seed 0,1,2,3,4

'%(prog)s COMMAND --help' shows a command's options."""


def _load_table(path: Path) -> np.ndarray:
    name = path.name.lower()
    if name.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt") as f:
            first = f.readline()
            try:
                [float(v) for v in first.strip().split(",")]
                skip = 0
            except ValueError:
                skip = 1
        return np.loadtxt(path, delimiter=",", skiprows=skip, dtype=np.float64, ndmin=2)
    raise ValueError(f"{path}: expected a .npy, .csv or .csv.gz file")


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
    from .coding import coding_summary

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
    # clustering bits come from the 8 features only: clusters chosen on the
    # target's bits would select on the outcome and bias the regression
    c = compress(train, beta=args.beta, tau=args.tau, cluster_columns=range(data.shape[1] - 1))
    t1 = time.perf_counter()
    print(f"\ncompressed the {n_train:,}-row training table in {t1 - t0:.2f} s "
          f"(beta = {args.beta} feature bits, tau = {args.tau}; includes JIT compilation on first use)")
    print("\n".join(_describe(c)))
    out = Path(args.out)
    nbytes = save(c, out)
    print("\n".join(_size_report(c, nbytes)))
    with open_store(out) as r:
        rows = r.read_rows([0, n_train // 2, n_train - 1])
        assert np.array_equal(rows.view(np.uint64), train[[0, n_train // 2, n_train - 1]].view(np.uint64))
        samples, weights = r.condensed()
    print(f"wrote {out}; random access to rows 0, {n_train // 2}, {n_train - 1} is bit-exact")
    Xte, yte = test[:, :-1], test[:, -1]
    full = weighted_least_squares(train[:, :-1], train[:, -1])
    cond = weighted_least_squares(samples[:, :-1], samples[:, -1], weights)
    e_full, e_cond = mse(full, Xte, yte), mse(cond, Xte, yte)
    print("\nlinear regression (closed-form least squares), test MSE:")
    print(f"  full training split  {n_train:>6,} rows     {e_full:.4f}")
    print(f"  condensed samples    {len(weights):>6,} weighted  {e_cond:.4f}  "
          f"({e_cond / e_full - 1:+.1%}, {len(weights) / n_train:.2%} of the rows)")
    return 0


def cmd_compress(args) -> int:
    X = _load_table(Path(args.input))
    t0 = time.perf_counter()
    c = compress(X, beta=args.beta, tau=args.tau, widths=args.widths,
                 store_condensed=not args.no_store_condensed, coding=args.coding)
    dt = time.perf_counter() - t0
    nbytes = save(c, args.output)
    print(f"{args.input} -> {args.output} in {dt:.2f} s")
    print("\n".join(_describe(c)))
    print("\n".join(_size_report(c, nbytes)))
    return 0


def cmd_info(args) -> int:
    with open_store(args.file) as r:
        c = r.compressed
        print(f"{args.file}: .gede format {r.version[0]}.{r.version[1]}")
        print("\n".join(_describe(c)))
        print("\n".join(_size_report(c, r.nbytes)))
        if args.columns:
            names = c.dtype.names
            for j in range(c.d):
                field = "" if names is None else f"{names[j]} ({c.dtype.fields[names[j]][0].name}) "
                print(f"  column {j:>4}: {field}{c.codecs.describe(j)}")
    return 0


def cmd_decompress(args) -> int:
    with open_store(args.file) as r:
        X = r.read_rows(slice(None))
    np.save(args.output, X, allow_pickle=False)  # a structured .npy for a mixed-dtype table
    if X.dtype.names is not None:
        print(f"{args.file} -> {args.output}: {X.shape[0]:,} records of {len(X.dtype.names)} fields "
              f"({', '.join(X.dtype.names)})")
    else:
        print(f"{args.file} -> {args.output}: {X.shape[0]:,} x {X.shape[1]} {X.dtype}")
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

    c = sub.add_parser("compress", help="compress a .npy (plain or structured) / .csv / .csv.gz table "
                                        "into a .gede file")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--beta", type=int, default=None, help="clustering bits (default: no clustering)")
    c.add_argument("--tau", type=int, default=10, help="plateau threshold (default 10)")
    c.add_argument("--widths", choices=("narrow", "native"), default="narrow")
    c.add_argument("--no-store-condensed", action="store_true",
                   help="storage-constrained mode: keep only the beta positions")
    c.add_argument("--coding", choices=("raw", "entropy"), default="raw",
                   help="deviations as raw bits (the paper's, default) or entropy-coded (rANS, smaller)")
    c.set_defaults(func=cmd_compress)

    i = sub.add_parser("info", help="describe a .gede file")
    i.add_argument("file")
    i.add_argument("--columns", action="store_true", help="list every column's codec")
    i.set_defaults(func=cmd_info)

    d = sub.add_parser("decompress", help="decode a .gede file into a .npy file")
    d.add_argument("file")
    d.add_argument("output")
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
