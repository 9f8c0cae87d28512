"""Progress on a pipe or in a log: one line per event, whatever the console's width and the message's brackets."""

from __future__ import annotations

import io

from rich.console import Console

from robustad.engine.progress import PlainReporter, RichReporter, reporter_for


def test_plain_lines_are_never_wrapped_or_read_as_markup():
    console = Console(file=io.StringIO(), width=40, force_terminal=False)
    reporter = reporter_for(console, total_cells=3)
    assert isinstance(reporter, PlainReporter)
    stage = "bottle: fgsm, pgd, apgd, square, worstcase 8/255 via score"
    done = "bottle seed=0 torchattacks:MIFGSM 8/255 score [bold]platt: clean_auroc=0.998 adv_auroc=0.437"
    with reporter:
        reporter.stage(stage, 59)
        reporter.cell_done(done)
    assert console.file.getvalue().splitlines() == [f"stage: {stage} (59)", f"[1/3] {done}"]


def test_a_terminal_gets_bars():
    console = Console(file=io.StringIO(), width=80, force_terminal=True)
    assert isinstance(reporter_for(console, total_cells=1), RichReporter)
