"""The generator trainers' progress: a bar counting kimg that ends at 100 %, and StyleGAN2-ADA-style tick lines."""

from __future__ import annotations

import logging
import re

import pytest
from _gan_dist_worker import two_class_trainer

from gemix_monai.engines.run import RunSettings
from gemix_monai.handlers.progress import KimgProgress, format_duration

TICK = re.compile(
    r"^tick (\d+)\s+kimg (\d+\.\d{3})\s+time \S+( \S+)?\s+sec/tick [\d.]+\s+sec/kimg [\d.]+"
    r"\s+loss_D [-\d.]+\s+loss_G [-\d.]+\s+augment \d\.\d{3}$"
)


def _trainer(tmp_path, max_kimg, resume=None, progress=True):
    run = RunSettings(
        output_dir=tmp_path, device="cpu", seed=3, progress=progress, resume=resume, checkpoint_kimg=0.004
    )
    return two_class_trainer(run, max_kimg=max_kimg)


def _progress(trainer) -> KimgProgress:
    from ignite.engine import Events

    found = {
        h.__self__
        for h, _, _ in trainer._event_handlers[Events.STARTED]
        if isinstance(getattr(h, "__self__", None), KimgProgress)
    }
    assert len(found) == 1
    return found.pop()


def test_the_bar_counts_kimg_with_a_rate_and_ends_at_100_percent(tmp_path, capsys, caplog):
    trainer = _trainer(tmp_path, max_kimg=0.014)  # batch 4: 4 steps = 0.016 kimg, not a whole multiple of the budget
    with caplog.at_level(logging.INFO, logger="gemix_monai.training"):
        trainer.run()
    err = capsys.readouterr().err
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "100%" in final and "0.014/0.014 kimg" in final and "s/kimg" in final, final
    assert "Epoch" not in err


def test_tick_lines_give_kimg_time_rates_losses_and_augment(tmp_path, caplog):
    trainer = _trainer(tmp_path, max_kimg=0.016, progress=False)
    with caplog.at_level(logging.INFO, logger="gemix_monai.training"):
        trainer.run()
    lines = [r.getMessage() for r in caplog.records if r.name == "gemix_monai.training"]
    assert lines and lines == _progress(trainer).lines
    for line in lines:
        assert TICK.match(line), line
    kimg = [float(TICK.match(line).group(2)) for line in lines]
    assert kimg == sorted(kimg) and kimg[-1] == pytest.approx(0.016)
    assert [int(TICK.match(line).group(1)) for line in lines] == list(range(len(lines)))


def test_a_resumed_run_starts_its_bar_and_ticks_at_the_resumed_kimg(tmp_path, capsys, caplog):
    _trainer(tmp_path, max_kimg=0.008, progress=False).run()
    trainer = _trainer(tmp_path, max_kimg=0.016, resume="auto")
    with caplog.at_level(logging.INFO, logger="gemix_monai.training"):
        trainer.run()
    first = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[0]
    assert "0.008/0.016 kimg" in first, first
    kimg = [float(TICK.match(line).group(2)) for line in _progress(trainer).lines]
    assert kimg[0] > 0.008 and kimg[-1] == pytest.approx(0.016)


@pytest.mark.parametrize(("seconds", "text"), [(41.4, "41s"), (187, "3m 07s"), (7500, "2h 05m"), (97200, "1d 03h")])
def test_durations_read_like_stylegan2_ada(seconds, text):
    assert format_duration(seconds) == text
