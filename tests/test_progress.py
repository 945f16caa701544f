"""Progress bars written to a log file redraw rarely (clrs_tasks.progress): a bar per step in
a redirected log is what made ``dear demo > log`` keep 882 bar states in one minute."""

from __future__ import annotations

import io
import time

import pytest

from clrs_tasks.progress import LOG_INTERVAL_S, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _redraws(stream: io.StringIO, updates: int = 50, pause: float = 0.005, **kwargs) -> int:
    with progress_bar(total=updates, file=stream, **kwargs) as bar:
        for _ in range(updates):
            time.sleep(pause)
            bar.update(1)
    return stream.getvalue().count("\r")


def test_a_bar_written_to_a_file_keeps_only_its_first_and_last_state() -> None:
    log = io.StringIO()
    assert _redraws(log) <= 3  # opening state, final state (and the close's own refresh)
    assert "50/50" in log.getvalue()


def test_a_bar_on_a_terminal_redraws_as_tqdm_does() -> None:
    terminal = _Terminal()
    # 50 updates over ~0.25 s with tqdm's 0.1 s interval: several redraws, not two or three
    assert _redraws(terminal, updates=50, pause=0.01) >= 4


def test_the_caller_and_tqdm_environment_override_the_log_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    with progress_bar(total=1, file=io.StringIO()) as bar:
        assert bar.mininterval == LOG_INTERVAL_S
        # tqdm's monitor thread redraws any bar silent for maxinterval (10 s by default): a log bar
        # left at that default redrew every 10 s after its first 30 (seen in a 50-minute training log)
        assert bar.maxinterval >= LOG_INTERVAL_S
    with progress_bar(total=1, file=io.StringIO(), mininterval=0.5, maxinterval=5) as bar:
        assert (bar.mininterval, bar.maxinterval) == (0.5, 5)
    with progress_bar(total=1, file=_Terminal()) as bar:
        assert bar.maxinterval == 10  # terminals keep tqdm's defaults
    monkeypatch.setenv("TQDM_MININTERVAL", "2")
    with progress_bar(total=1, file=io.StringIO()) as bar:
        assert bar.mininterval != LOG_INTERVAL_S


def test_a_closed_or_odd_stream_counts_as_a_log() -> None:
    closed = io.StringIO()
    closed.close()
    from clrs_tasks.progress import _is_terminal

    assert not _is_terminal(closed)
    assert not _is_terminal(object())  # type: ignore[arg-type]
    assert _is_terminal(_Terminal())
