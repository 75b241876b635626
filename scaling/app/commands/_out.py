"""What the commands print: rich tables that fit 100 columns, human units, progress on stderr.

- :func:`print_table` draws a table with rich: numeric columns right-aligned, the last rows
  (totals) after a rule. On a terminal it fits the terminal; elsewhere (a pipe, a file, a test)
  it is plain text, 100 columns wide (240 with ``--wide``), with no colour and no trailing spaces.
- The formatters write every figure with its unit and a prefix that keeps 3 significant digits
  (``0.0907 mWh`` is written ``327 mJ``; ``2,507 J`` is ``2.51 kJ``): :func:`fmt_j`, :func:`fmt_wh`,
  :func:`fmt_s`, :func:`fmt_g`, :func:`fmt_kwh`, :func:`fmt_range`; :func:`plural` and
  :func:`article` write ``1 step`` / ``50 steps`` and ``a video model`` / ``an image model``.
- :func:`probe_output` creates and removes a file next to an output before a long piece of work,
  so that a folder the OS will not let us write is refused first (even as root).
- :func:`progress` (a bar over known steps) and :func:`working` (a spinner with the elapsed time,
  for one long call) draw on stderr only when stderr is a terminal: a pipe or a test sees nothing.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from typing import Any, Iterable, Iterator, Sequence

from scaling.units import J_PER_WH, S_PER_HOUR

PLAIN_WIDTH = 100
"""Width of the tables when stdout is not a terminal."""
WIDE_WIDTH = 240
"""... and with ``--wide``."""

_NUMERIC = re.compile(r"^[-+~<>]?[\d.,]+(e[-+]?\d+)?( ?[%a-zA-Zµ/²]+)?( ?-( ?[\d.,]+(e[-+]?\d+)?)( ?[%a-zA-Zµ/]+)?)?x?$|^-$")


def add_wide_arg(p) -> None:
    p.add_argument("--wide", action="store_true",
                   help=f"every column, in tables up to {WIDE_WIDTH} characters (default: fit {PLAIN_WIDTH})")


# -- tables ------------------------------------------------------------------------------------

def _console(wide: bool = False, file=None):
    from rich.console import Console

    file = file or sys.stdout
    tty = bool(getattr(file, "isatty", lambda: False)())
    width = None if tty else (WIDE_WIDTH if wide else PLAIN_WIDTH)
    return Console(file=file, width=width, markup=False, highlight=False, emoji=False, soft_wrap=False)


def _box(terminal: bool):
    from rich.box import Box

    dash = "─" if terminal else "-"
    return Box("    \n    \n" f" {dash}{dash} \n" "    \n" f" {dash}{dash} \n" "    \n    \n    \n")


_RANK = re.compile(r"^\d*$|^-$")


def label_columns(header: Sequence[str], cells: Sequence[Sequence[str]]) -> tuple[int, ...]:
    """The identifier columns of a table, which never wrap: the first, and the second too when the first is
    a rank (``#``: whole numbers or ``-``)."""
    if not header:
        return ()
    if len(header) > 1 and cells and all(_RANK.match(r[0]) for r in cells):
        return (0, 1)
    return (0,)


def render_table(rows: Sequence[Sequence[Any]], header: Sequence[str], *, wide: bool = False, totals: int = 0,
                 justify: Sequence[str] | None = None, file=None, no_wrap: Sequence[int] | None = None) -> str:
    """The table as text (see :func:`print_table`).

    The label columns (``no_wrap``; default :func:`label_columns`: the first, or ``#`` and the one after it)
    are never wrapped mid-word (``h100-sxm x2 u1r1c2*`` stays on one line). Where the table is too wide the
    text columns (a memory verdict, ``never measured``) wrap first, then the numeric ones, then the labels at
    their spaces; a layout that cuts no word is taken, else the first that crops no cell.
    """
    cells = [[("-" if c is None else str(c)) for c in r] for r in rows]
    labels = set(label_columns(header, cells) if no_wrap is None else no_wrap)
    justs = [justify[i] if justify is not None else
             ("right" if i > 0 and cells and all(_NUMERIC.match(r[i]) for r in cells if r[i]) else "left")
             for i in range(len(header))]
    numeric = {i for i, j in enumerate(justs) if j == "right"}
    # what may not wrap: labels and numbers, the labels only, the numbers only (labels wrap at spaces), none
    tiers = [labels | numeric, labels, numeric, set()]
    uncut = []
    for keep in tiers:
        text = _render(cells, header, justs, wide=wide, totals=totals, file=file, no_wrap=keep)
        if _cropped(text, cells, header, keep):  # rich crops a no_wrap cell it cannot fit: never taken
            continue
        folded = _folded(text, cells, header)
        if not folded:
            return text
        uncut.append((folded, text.count("\n"), len(uncut), text))
    # no tier keeps every word whole: the one that cuts the fewest columns' words, then the one that wraps
    # least (the fewest lines), the earlier on a tie
    return min(uncut)[3]


def _items(cells, header, i: int) -> list[str]:
    return [r[i] for r in cells if i < len(r)] + str(header[i]).split("\n")


def _cropped(text: str, cells, header, columns: set[int]) -> bool:
    """The longest cell (or header line) of one of ``columns`` (no_wrap) is not printed whole on a line."""
    lines = text.splitlines()
    for i in columns:
        longest = max(_items(cells, header, i), key=len, default="")
        if longest and not any(longest in line for line in lines):
            return True
    return False


def _folded(text: str, cells, header) -> int:
    """How many columns have their longest word cut over two lines (a column narrower than that word)."""
    lines = text.splitlines()
    count = 0
    for i in range(len(header)):
        longest = max((w for item in _items(cells, header, i) for w in item.split()), key=len, default="")
        if longest and not any(longest in line for line in lines):
            count += 1
    return count


def _render(cells, header, justs, *, wide: bool, totals: int, file, no_wrap: set[int]) -> str:
    from rich.table import Table
    from rich.text import Text

    console = _console(wide, file)
    table = Table(box=_box(console.is_terminal), show_edge=False, pad_edge=False, highlight=False,
                  header_style="bold" if console.is_terminal else None, collapse_padding=True)
    for i, h in enumerate(header):
        table.add_column(Text(str(h)), justify=justs[i], overflow="fold", no_wrap=i in no_wrap)
    body = len(cells) - totals
    for j, r in enumerate(cells):
        table.add_row(*[Text(c) for c in r], end_section=(totals > 0 and j == body - 1))
    with console.capture() as cap:
        console.print(table)
    return "\n".join(line.rstrip() for line in cap.get().rstrip("\n").splitlines())


def print_table(rows: Sequence[Sequence[Any]], header: Sequence[str], *, wide: bool = False, totals: int = 0,
                justify: Sequence[str] | None = None) -> None:
    """Print ``rows`` under ``header``; the last ``totals`` rows after a rule."""
    print(render_table(rows, header, wide=wide, totals=totals, justify=justify))


# -- units -------------------------------------------------------------------------------------

_PREFIXES = {15: "P", 12: "T", 9: "G", 6: "M", 3: "k", 0: "", -3: "m", -6: "µ", -9: "n"}


def si(value: float | None, unit: str, digits: int = 3) -> str:
    """``value`` with an SI prefix that leaves ``digits`` significant digits: ``2.51 kJ``, ``327 mJ``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if not math.isfinite(value):
        return f"{value} {unit}"
    rounded = float(f"{value:.{digits}g}")
    if rounded == 0:
        return f"0 {unit}"
    exp3 = min(15, max(-9, math.floor(math.log10(abs(rounded)) / 3) * 3))
    m = rounded / 10.0 ** exp3
    text = f"{m:.{digits}g}"
    if "e" in text:  # beyond the largest prefix
        text = f"{m:,.0f}"
    return f"{text} {_PREFIXES[exp3]}{unit}"


def fmt_j(j: float | None) -> str:
    """Energy: ``327 mJ``, ``2.51 kJ``, ``4.1 MJ``."""
    return si(j, "J")


def fmt_wh(j: float | None) -> str:
    """Energy in watt-hours, from joules: ``0.715 Wh``, ``90.7 µWh``, ``7.15 kWh``."""
    return "-" if j is None else si(j / J_PER_WH, "Wh")


def fmt_kwh(kwh: float | None) -> str:
    """A fleet's energy, from kWh: ``7.15 kWh``, ``1.26 MWh``, ``0.34 Wh``."""
    return "-" if kwh is None else si(kwh * 1000.0, "Wh")


def fmt_g(g: float | None) -> str:
    """CO2e mass, from grams: ``340 mg``, ``1.26 kg``, ``3.4 t`` (a tonne is 1 Mg)."""
    if g is None:
        return "-"
    if abs(g) >= 1e6 * (1 - 5e-4):
        return si(g / 1e6, "t")
    return si(g, "g")


def fmt_s(s: float | None) -> str:
    """Time: ``1.96 ms``, ``4.79 s``, ``12.5 min``, ``3.2 h``, ``41.7 d``."""
    if s is None or (isinstance(s, float) and not math.isfinite(s)):
        return "-"
    a = abs(s)
    if a < 1.0:
        return si(s, "s")
    if a < 120:
        return f"{s:.3g} s"
    if a < 2 * S_PER_HOUR:
        return f"{s / 60:.3g} min"
    if a < 3 * 86400:
        return f"{s / S_PER_HOUR:.3g} h"
    d = s / 86400
    return f"{d:,.0f} d" if abs(d) >= 1000 else f"{d:.3g} d"


def fmt_hours(h: float | None) -> str:
    """GPU-hours, 3 significant digits (``0.0133``, ``12.5``), whole with thousands commas from 1,000."""
    if h is None:
        return "-"
    return f"{h:,.0f}" if abs(h) >= 1000 else f"{h:.3g}"


def fmt_range(lo: float | None, hi: float | None, fmt=fmt_j) -> str:
    """``1.97 - 3.13 kJ`` (one unit when both bounds share it), ``987 J - 1.2 kJ`` otherwise."""
    a, b = fmt(lo), fmt(hi)
    ua, ub = a.partition(" ")[2], b.partition(" ")[2]
    if ua and ua == ub:
        return f"{a.partition(' ')[0]} - {b}"
    return f"{a} - {b}"


def fmt_flop(x: float | None) -> str:
    """``883 TFLOP``, ``28.6 PFLOP``: 3 significant digits."""
    return si(x, "FLOP")


def plural(n: float, word: str, many: str | None = None) -> str:
    """``1 step``, ``50 steps``, ``1,000,000 outputs``."""
    text = f"{n:,}" if isinstance(n, int) else f"{n:g}"
    return f"{text} {word if n == 1 else (many or word + 's')}"


def article(word: str) -> str:
    """``a video``, ``an image``, ``an audio``."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


# -- outputs -----------------------------------------------------------------------------------

def probe_output(path) -> None:
    """Create and remove a file next to ``path``: a folder the OS will not let us write (a read-only file
    system, /proc, a full disk) is refused now, in one line, not after the measurement (even as root, for
    whom permission bits say yes)."""
    import os
    import tempfile
    from pathlib import Path

    from scaling._files import output_error

    folder = Path(os.path.realpath(path)).parent
    while not folder.exists():
        folder = folder.parent
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".scaling-probe-"):
            pass
    except OSError as exc:
        raise output_error(path, exc, "cannot be written") from None


# -- progress ----------------------------------------------------------------------------------

def _stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


@contextlib.contextmanager
def working(what: str) -> Iterator[None]:
    """A spinner with the elapsed time on stderr while the block runs (a terminal only)."""
    if not _stderr_is_terminal():
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(file=sys.stderr), transient=True) as bar:
        bar.add_task(what, total=None)
        yield


def progress(items: Iterable[Any], what: str, total: int | None = None, label=str) -> Iterator[Any]:
    """Iterate ``items`` with a progress bar on stderr (a terminal only); ``label(item)`` names the current one."""
    items = list(items) if total is None else items
    total = len(items) if total is None else total
    if not _stderr_is_terminal():
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(what, total=total)
        for item in items:
            bar.update(task, description=f"{what}: {label(item)}")
            yield item
            bar.advance(task)
