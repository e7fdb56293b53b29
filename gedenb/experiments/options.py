"""Command-line options of the experiments, declared once, beside each function.

``@experiment(summary, name=Option(help), ...)`` marks a function as an
experiment of ``python -m gedenb reproduce``; every keyword names one of the
function's parameters and becomes the option ``--name`` (underscores as
dashes).  Its default is the function's own: shown by ``--help`` and never
passed on, so the signature stays the one place that sets it.  Its type is
the default's (for a tuple default, the elements' type, and the option takes
comma-separated values such as ``--seed 0,1,2``) unless the :class:`Option`
says otherwise; a ``bool`` parameter takes ``0`` or ``1`` (also ``false`` /
``true``, ``no`` / ``yes``, ``off`` / ``on``), as in ``--progress 0``.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Callable, NamedTuple

__all__ = ["COMMON", "ROOT", "Experiment", "Option", "add_arguments", "check_choices", "experiment"]

#: Parameters every experiment has; the CLI sets them from ``--out``, ``--quick`` and ``--no-figure``.
COMMON = ("out_dir", "quick", "figure")

_METAVARS = {int: "N", float: "X", str: "NAME", Path: "DIR", bool: "0|1"}
_BOOLEANS = {"0": False, "false": False, "no": False, "off": False, "1": True, "true": True, "yes": True, "on": True}


class Option(NamedTuple):
    """One command-line option: ``help`` text, and what the default's type does not tell.

    Parameters
    ----------
    help : str
        One line for ``--help`` (the default and choices are appended).
    type : callable, optional
        Parses one value; default: the type of the default (of its elements for a tuple).
        Required when the default is None.
    many : bool, optional
        Comma-separated values, passed on as a tuple; default: whether the default is a tuple.
    choices : tuple, optional
        The values allowed.
    """

    help: str
    type: Callable | None = None
    many: bool | None = None
    choices: tuple | None = None


#: The ``root`` option of the experiments that read data sets other than California Housing.
ROOT = Option("data folder in torchvision's raw layout (default: $GEDENB_DATA)", type=Path)


class Experiment(NamedTuple):
    """What :func:`experiment` records on a function (as its ``cli`` attribute)."""

    summary: str
    #: parameter name -> (resolved :class:`Option`, the function's default)
    options: dict
    #: whether the experiment draws a figure when asked (some accept ``figure`` for the common signature only)
    draws_figure: bool = True


def experiment(summary: str, *, draws_figure: bool = True, **options: Option) -> Callable:
    """Decorator: declare a function's command-line options (see the module docstring).

    Parameters
    ----------
    summary : str
        One line for ``reproduce --help``.
    draws_figure : bool
        False for an experiment that accepts ``figure`` but draws none.
    **options : Option
        One per parameter offered on the command line.

    Raises
    ------
    TypeError
        At import, for an option that names no parameter of the function, or whose type cannot be
        told from its default.
    """

    def mark(fn: Callable) -> Callable:
        params = inspect.signature(fn).parameters
        resolved = {}
        for name, opt in options.items():
            if name not in params or name in COMMON:
                raise TypeError(f"{fn.__name__}: no parameter {name!r} to offer as an option")
            default = params[name].default
            seq = isinstance(default, (tuple, list))
            first = (default[0] if default else None) if seq else default
            kind = opt.type or (None if first is None or first is inspect.Parameter.empty else type(first))
            if kind is None or default is inspect.Parameter.empty:
                raise TypeError(f"{fn.__name__}: option {name!r} needs a default, and a type when the default "
                                f"does not tell it (default {default!r})")
            resolved[name] = (opt._replace(type=kind, many=seq if opt.many is None else opt.many), default)
        fn.cli = Experiment(summary, resolved, draws_figure)
        return fn

    return mark


def add_arguments(parser: argparse.ArgumentParser, fn: Callable) -> None:
    """Add the options :func:`experiment` declared for ``fn`` to ``parser``.

    An option the command line leaves out is absent from the parsed
    namespace (``argparse.SUPPRESS``): the function's default applies.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The experiment's sub-command parser.
    fn : callable
        A function marked by :func:`experiment`.
    """
    for name, (opt, default) in fn.cli.options.items():
        metavar = _METAVARS.get(opt.type, "VALUE")
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=argparse.SUPPRESS, type=_parse(opt),
                            metavar=f"{metavar},..." if opt.many else metavar, help=_help(opt.help, opt, default))


def check_choices(what: str, values, allowed) -> None:
    """Raise ValueError for the first of ``values`` that is not in ``allowed``: before any work starts.

    Parameters
    ----------
    what : str
        The option's name, for the message.
    values : iterable
        The values given.
    allowed : container
        The values allowed (shown in the message in their order).

    Examples
    --------
    >>> check_choices("method", ("rs2", "rs3"), ("full", "rs2"))
    Traceback (most recent call last):
    ...
    ValueError: method: invalid choice 'rs3' (choose from full, rs2)
    """
    reason = _invalid(values, allowed)
    if reason is not None:
        raise ValueError(f"{what}: {reason}")


def _invalid(values, allowed) -> str | None:
    bad = [v for v in values if v not in allowed]
    return f"invalid choice {bad[0]!r} (choose from {', '.join(map(str, allowed))})" if bad else None


def _show(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError(text) from None


def _help(text: str, opt: Option | None = None, default=None) -> str:
    notes = []
    if opt is not None and opt.choices is not None:
        notes.append(f"{'any' if opt.many else 'one'} of {', '.join(map(str, opt.choices))}")
    if default is not None:
        notes.append(f"default: {_show(default)}")
    if notes:
        text += f" ({'; '.join(notes)})"
    return text.replace("%", "%%")  # argparse formats help strings with %


def _parse(opt: Option) -> Callable[[str], object]:
    """The argparse ``type`` of an option: one value, or a tuple of comma-separated ones."""

    def parse(text: str):
        parts = [t.strip() for t in text.split(",") if t.strip()] if opt.many else [text]
        convert = _boolean if opt.type is bool else opt.type
        try:
            values = tuple(convert(t) for t in parts)
        except ValueError:
            what = f"comma-separated {opt.type.__name__} values" if opt.many else f"a {opt.type.__name__} value"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError("give at least one value")
        reason = None if opt.choices is None else _invalid(values, opt.choices)
        if reason is not None:
            raise argparse.ArgumentTypeError(reason)
        return values if opt.many else values[0]

    return parse
