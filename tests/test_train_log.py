"""TrainLog: rows appended whole, columns widened by an atomic rewrite, resumed runs cut at their checkpoint."""

from __future__ import annotations

import csv

from flashmotion.train.logging import TrainLog


def _read(path):
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_rows_are_appended_and_a_new_column_rewrites_the_file(tmp_path):
    path = tmp_path / "log.csv"
    log = TrainLog(path, tensorboard=False)
    log.log(1, {"loss/a": 0.5})
    log.log(2, {"loss/a": 0.25})
    assert _read(path) == [["step", "loss/a"], ["1", "0.5"], ["2", "0.25"]]  # readable while the run goes on
    inode = path.stat().st_ino
    log.log(3, {"loss/a": 0.125})
    assert path.stat().st_ino == inode  # appended, not rewritten
    log.log(4, {"loss/a": 0.1, "loss/b": 2.0})  # a key seen for the first time: the header widens
    log.log(5, {"loss/b": 1.0})
    log.close()
    assert _read(path) == [["step", "loss/a", "loss/b"], ["1", "0.5", ""], ["2", "0.25", ""], ["3", "0.125", ""],
                           ["4", "0.1", "2.0"], ["5", "", "1.0"]]


def test_resume_keeps_rows_up_to_its_step_and_drops_a_damaged_tail(tmp_path):
    path = tmp_path / "log.csv"
    log = TrainLog(path, tensorboard=False)
    for step in range(1, 7):
        log.log(step, {"loss/a": step / 10})
    log.close()
    resumed = TrainLog(path, start_step=4, tensorboard=False)  # checkpoint at step 4; rows 5-6 are dropped
    assert [int(r[0]) for r in _read(path)[1:]] == [1, 2, 3, 4]
    resumed.log(5, {"loss/a": 0.55})
    resumed.close()
    assert _read(path)[-1] == ["5", "0.55"]

    path.write_text("step,loss/a\n1,0.1\n2,0.2\n3,0.")  # a run stopped mid-row (machine crash)
    assert [int(r[0]) for r in _read(path)[1:]] == [1, 2, 3]
    TrainLog(path, start_step=3, tensorboard=False).close()
    assert _read(path) == [["step", "loss/a"], ["1", "0.1"], ["2", "0.2"]]  # "0." is no whole row; resume redoes 3

    path.write_text("step,loss/a\n1,0.1\n2,0.2\n1,0.3\n")  # a step that does not follow (a cut "12,..." row)
    TrainLog(path, start_step=3, tensorboard=False).close()
    assert _read(path) == [["step", "loss/a"], ["1", "0.1"], ["2", "0.2"]]
