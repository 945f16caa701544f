"""Fast parsers for the numeric text files that node-classification datasets ship in.

The AM-GCN features are ~100-200 MB of dense text per dataset and OGB ships gzipped CSV
tables of millions of rows; ``numpy.loadtxt`` needs minutes on them. These helpers read a
byte stream in newline-aligned chunks and hand each chunk to numpy's C tokenizer
(``numpy.fromstring`` in text mode), or, for the mostly-zero feature files, to a vectorised
scan that only parses the tokens holding a non-zero digit. Every parser checks that the
table is rectangular and that nothing unparsable is left over, so a truncated or corrupt
file is an error rather than a silently shorter array.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import BinaryIO

import numpy as np
from tqdm.auto import tqdm

from clrs_tasks.progress import progress_bar

#: Bytes per chunk: large enough that numpy's per-call overhead vanishes, small enough to
#: bound the temporary arrays of the sparse scan (~10 bytes per input byte).
CHUNK_BYTES = 1 << 24

# Byte classes for the vectorised scan: anything else cannot occur in a numeric table.
_OTHER, _SPACE, _DIGITLIKE = 0, 1, 2
_BYTE_KIND = np.zeros(256, dtype=np.uint8)
_BYTE_KIND[list(b" \t\r\n")] = _SPACE
_BYTE_KIND[list(b"0123456789.-+eE")] = _DIGITLIKE
_COMMA_TO_SPACE = bytes.maketrans(b",", b" ")

#: Whether long reads show a progress bar; :func:`progress_bars` switches it (``--quiet``).
_PROGRESS: ContextVar[bool] = ContextVar("dear_nodecls_read_progress", default=True)


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Show (or hide) the progress bars of long dataset reads inside the ``with`` block, so
    ``dear nodecls train --quiet`` is quiet on a dataset's first load too."""
    token = _PROGRESS.set(bool(enabled))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def iter_line_chunks(
    stream: BinaryIO, total: int | None = None, desc: str = ""
) -> Iterator[bytes]:
    """Yield the stream's bytes in pieces of about :data:`CHUNK_BYTES` that each end at a line
    break (the last may not).

    A tqdm progress bar (over ``total`` bytes when known) appears only once more than a few
    chunks have been read, so small files and tests stay quiet.
    """
    chunk_bytes = CHUNK_BYTES
    bar: tqdm | None = None
    seen = 0
    rest = b""
    try:
        while block := stream.read(chunk_bytes):
            seen += len(block)
            if bar is None and seen > 4 * chunk_bytes and _PROGRESS.get():
                bar = progress_bar(total=total, initial=seen, desc=desc, unit="B", unit_scale=True,
                                   leave=False)
            elif bar is not None:
                bar.update(len(block))
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:  # one very long line: keep reading until it ends
                rest = block
                continue
            rest = block[cut:]
            yield block[:cut]
        if rest.strip():
            yield rest
    finally:
        if bar is not None:
            bar.close()


def parse_numbers(text: bytes, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Parse whitespace- or comma-separated numbers into a flat array.

    Raises:
        ValueError: if any token is not a number (numpy would otherwise stop at it with only
            a DeprecationWarning and return a truncated array).
    """
    if b"," in text:
        text = text.translate(_COMMA_TO_SPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=dtype, sep=" ")
        except (ValueError, DeprecationWarning) as err:
            raise ValueError(f"unparsable numeric text ({err})") from None


def _first_line(text: bytes) -> bytes:
    """The first non-blank line, without building a list of every line."""
    start = 0
    while True:
        end = text.find(b"\n", start)
        line = text[start:] if end < 0 else text[start:end]
        if line.strip() or end < 0:
            return line
        start = end + 1


def _count_rows(text: bytes, numbers: int, ncols: int) -> int:
    """Rows in a chunk: its line count, or, when that does not fit ``numbers`` (blank lines),
    the exact count of non-blank lines."""
    rows = text.count(b"\n") + (0 if text.endswith(b"\n") else 1)
    if numbers == rows * ncols:
        return rows
    return sum(1 for line in text.splitlines() if line.strip())


def read_table(
    stream: BinaryIO,
    dtype: np.dtype | type = np.float64,
    *,
    ncols: int | None = None,
    nrows: int | None = None,
    total: int | None = None,
    desc: str = "",
) -> np.ndarray:
    """Read a rectangular numeric text table (one row per line) into a 2-D array.

    Args:
        stream: binary stream (a file, a zip member or a gzip stream).
        dtype: numpy dtype of the result. Integer ids parse exactly as integers.
        ncols: expected number of columns; inferred from the first row when ``None``.
        nrows: expected number of rows, if known: the result is then filled in place
            instead of concatenated, halving peak memory on gigabyte tables.
        total: uncompressed size for the progress bar, if known.
        desc: progress-bar label.

    Raises:
        ValueError: on a non-numeric token, rows of different lengths, or a row count other
            than ``nrows``.
    """
    parts: list[np.ndarray] = []
    out: np.ndarray | None = None
    filled = 0
    for chunk in iter_line_chunks(stream, total=total, desc=desc):
        values = parse_numbers(chunk, dtype)
        if values.size == 0:
            continue
        if ncols is None:
            ncols = len(_first_line(chunk).replace(b",", b" ").split())
        rows = _count_rows(chunk, values.size, ncols)
        if values.size != rows * ncols:
            raise ValueError(
                f"table is not rectangular: {values.size} numbers on {rows} rows, "
                f"expected {ncols} per row"
            )
        if nrows is None:
            parts.append(values.reshape(rows, ncols))
            continue
        if out is None:
            out = np.empty((nrows, ncols), dtype=dtype)
        if filled + rows > nrows:
            raise ValueError(f"table has more than the expected {nrows} rows")
        out[filled:filled + rows] = values.reshape(rows, ncols)
        filled += rows
    if nrows is not None:
        if filled != nrows:
            raise ValueError(f"table has {filled} rows, expected {nrows}")
        return out if out is not None else np.empty((0, ncols or 0), dtype=dtype)
    if not parts:
        return np.empty((0, ncols or 0), dtype=dtype)
    return np.concatenate(parts)


def read_column(stream: BinaryIO, dtype: np.dtype | type = np.int64) -> np.ndarray:
    """Read a one-number-per-line file (node ids, labels) into a 1-D array."""
    return read_table(stream, dtype, ncols=1).reshape(-1)


def read_sparse_table(
    stream: BinaryIO, *, total: int | None = None, desc: str = ""
) -> tuple[tuple[int, int], np.ndarray, np.ndarray, np.ndarray]:
    """Read a dense text matrix that is mostly zeros into COO form.

    Bag-of-words features are >99% zeros: instead of converting every token to a float, a
    vectorised byte scan finds token boundaries, rows and columns, and only tokens containing
    a digit 1-9 are converted (a decimal number whose digits are all 0 is 0, whatever its
    notation). A chunk with many non-zeros falls back to numpy's tokenizer.

    Returns:
        ``(shape, row, col, value)`` with int64 ``row``/``col`` and float32 ``value`` holding
        only the non-zero entries.

    Raises:
        ValueError: on characters that cannot be part of a number or ragged rows.
    """
    rows_out: list[np.ndarray] = []
    cols_out: list[np.ndarray] = []
    vals_out: list[np.ndarray] = []
    ncols: int | None = None
    nrows = 0
    for chunk in iter_line_chunks(stream, total=total, desc=desc):
        if not chunk.endswith(b"\n"):
            chunk += b"\n"
        if b"," in chunk:
            chunk = chunk.translate(_COMMA_TO_SPACE)
        a = np.frombuffer(chunk, dtype=np.uint8)
        kind = _BYTE_KIND[a]
        if kind.min() == _OTHER:
            pos = int(np.argmin(kind))
            raise ValueError(f"non-numeric character {chunk[pos:pos + 1]!r} in numeric table")
        in_token = kind == _DIGITLIKE
        token_start = np.empty_like(in_token)
        token_start[0] = in_token[0]
        np.greater(in_token[1:], in_token[:-1], out=token_start[1:])
        # tokens_upto[i] = number of tokens starting at or before byte i
        tokens_upto = np.cumsum(token_start.view(np.uint8), dtype=np.int64)
        newlines = np.flatnonzero(a == ord("\n"))
        tokens_at_eol = tokens_upto[newlines]
        per_line = np.diff(tokens_at_eol, prepend=0)
        filled = per_line > 0  # blank lines are not rows
        if not filled.any():
            continue
        if ncols is None:
            ncols = int(per_line[filled][0])
        if np.any(per_line[filled] != ncols):
            raise ValueError(f"table is not rectangular: rows with other than {ncols} values")
        row_of_line = np.cumsum(filled) - 1 + nrows
        nrows += int(filled.sum())

        if int(tokens_upto[-1]) // 8 < np.count_nonzero((a >= ord("1")) & (a <= ord("9"))):
            values = parse_numbers(chunk, np.float32).reshape(-1, ncols)
            r, c = np.nonzero(values)
            rows_out.append(r + row_of_line[filled][0])
            cols_out.append(c)
            vals_out.append(values[r, c])
            continue
        # One representative non-zero digit per token that has any.
        digit_pos = np.flatnonzero((a >= ord("1")) & (a <= ord("9")))
        token_id, first = np.unique(tokens_upto[digit_pos], return_index=True)
        pos = digit_pos[first]
        line = np.searchsorted(newlines, pos)
        rows_out.append(row_of_line[line])
        cols_out.append(token_id - 1 - (tokens_at_eol[line] - per_line[line]))
        # Token spans: walk outwards from the digit (tokens are a few bytes long).
        begin, end = pos.copy(), pos + 1
        while (more := (begin > 0) & in_token[np.maximum(begin - 1, 0)]).any():
            begin[more] -= 1
        while (more := in_token[end]).any():  # the chunk ends in a newline, so end stays in range
            end[more] += 1
        vals_out.append(
            np.array([float(chunk[i:j]) for i, j in zip(begin, end)], dtype=np.float32)
        )
    if ncols is None:
        return (0, 0), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    row, col, val = (np.concatenate(p) for p in (rows_out, cols_out, vals_out))
    keep = val != 0
    return (nrows, ncols), row[keep].astype(np.int64), col[keep].astype(np.int64), val[keep]
