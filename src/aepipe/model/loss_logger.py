"""The training's losses handed to DVCLive as each epoch ends: `dvc exp show` reads its step and
latest validation MSE while an experiment trains, and its files hold every epoch's and every step's
loss."""

import json
from pathlib import Path

from dvclive import Live
from dvclive.plots import NumpyEncoder
from dvclive.serialize import dump_json

from aepipe.atomic import atomic_path, copy_file
from aepipe.model.training import History


class WholeFileLive(Live):
    """DVCLive whose summary, metrics.json (`dvc exp show` reads it while an experiment trains), is
    replaced whole at each epoch's end: DVCLive rewrites it in place, so a kill or a full disk in
    the middle of a write would leave it cut short."""

    def make_summary(self):
        if self._step is not None:
            self.summary["step"] = self.step
        with atomic_path(self.metrics_file) as tmp:
            dump_json(self.summary, tmp, cls=NumpyEncoder)


class LossLogger:
    """Hands each finished epoch to DVCLive: epoch losses as metrics, every step's loss as a
    plot."""

    def __init__(self, live: Live, headline: str | Path):
        self.live = live
        self.headline = headline  # where `finish` copies the final numbers (a stage's own output)
        self.steps: list[dict] = []

    def __call__(self, history: History, epoch: int) -> None:
        first_step = len(self.steps) + 1
        self.steps += [
            {"step": first_step + i, "epoch": epoch + 1, "mse": float(loss)}
            for i, loss in enumerate(history.batch_losses[epoch].numpy())
        ]
        self.live.step = epoch + 1
        self.live.log_metric("train_mse", history.train_losses[epoch])
        self.live.log_metric("val_mse", history.val_losses[epoch])
        # The summary (a DVC metric) keeps only what compares experiments: `dvc exp show` has room
        # for about ten numbers on a 200-column terminal. The history keeps both losses.
        del self.live.summary["train_mse"]
        self.live.next_step()

    def finish(self, seconds: float, segmenter_seconds: float | None) -> None:
        self.live.summary["train_seconds"] = round(seconds, 2)
        if segmenter_seconds is not None:
            self.live.summary["segmenter_seconds"] = round(segmenter_seconds, 2)
        self.live.end()
        # Once, when the training is done, whole and renamed, in DVCLive's own format: rewritten in
        # place at each epoch's end (DVCLive's log_plot), a full disk or a kill would leave it cut
        # short, and git would show it as a file to commit (DVC drops an output's .gitignore entry
        # while its stage runs). The metrics above still follow each epoch.
        with atomic_path(Path(self.live.plots_dir) / "custom" / "batch_mse.json") as tmp:
            tmp.write_text(json.dumps(self.steps, indent=4) + "\n", encoding="utf-8")
        copy_file(self.live.metrics_file, self.headline)
