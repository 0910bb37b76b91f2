"""Progress outside a terminal: plain lines now and then, not a bar drawn only at the end."""

from __future__ import annotations

from advlab import progress


def test_log_lines_are_printed_when_not_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    with progress.progress_bar(3, "epoch 1", completed=1) as bar:
        bar(1)
        bar.describe("epoch 1 (loss 0.5)")
        bar(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("epoch 1: 2/3 (")
    assert lines[-1].startswith("epoch 1 (loss 0.5): 3/3 (")


def test_log_lines_wait_for_the_interval_but_always_show_the_end(monkeypatch, capsys):
    monkeypatch.setattr(progress, "LOG_EVERY_S", 3600.0)
    with progress.progress_bar(5, "work") as bar:
        for _ in range(5):
            bar(1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("work: 5/5 (")


def test_disabled_progress_prints_nothing(capsys):
    with progress.progress_bar(2, "quiet", enabled=False) as bar:
        bar(2)
    assert capsys.readouterr().err == ""
