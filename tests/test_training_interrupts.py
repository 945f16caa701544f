"""Interrupted training: SIGINT/SIGTERM stop at a step boundary and resume to exactly the weights
of an uninterrupted run; an interrupted validation is rerun; failed setups leave no config."""

import dataclasses
import json
import math
import signal
import threading
from pathlib import Path

import pytest
import torch

import dear.training as training
from dear.cli import main
from dear.config import ConfigError, profile_config
from dear.training import RunError, TrainingInterrupted, is_complete, train

STEPS, EVAL_EVERY = 12, 5  # validations at steps 5, 10 and 12 (the last step)


@pytest.fixture(autouse=True)
def _default_sigint():
    """Python's own SIGINT handler for every test, as in an interactive run. A test process
    started in the background (``nohup``, ``cmd &`` in a script) inherits SIGINT ignored, and
    training rightly leaves an ignored signal alone (test_an_ignored_signal_is_left_alone)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def tiny(**kw):
    base = dict(algorithm="bfs", model="dear", num_train=24, num_val=8, steps=STEPS, batch_size=4, hidden=8,
                eval_every=EVAL_EVERY, device="cpu")
    base.update(kw)
    return profile_config("quick", **base)


def strict_json(path: Path):
    """The file's JSON, failing on the non-standard ``Infinity``/``NaN`` tokens."""
    def refuse(token):
        raise AssertionError(f"{path.name} holds {token}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def assert_same_run(a: Path, b: Path) -> None:
    """Same final weights, the same validations and the same best checkpoint."""
    wa = torch.load(a / "checkpoint_last.pt", weights_only=False)
    wb = torch.load(b / "checkpoint_last.pt", weights_only=False)
    assert wa["step"] == wb["step"] == STEPS
    for k, v in wa["model"].items():
        assert torch.equal(v, wb["model"][k]), k
    ha, hb = strict_json(a / "history.json"), strict_json(b / "history.json")
    assert [(h["step"], h["val_loss"]) for h in ha["history"]] == [(h["step"], h["val_loss"]) for h in hb["history"]]
    assert ha["best"] == hb["best"] and ha["best"]["step"] > 0
    assert is_complete(a) and is_complete(b)
    for d in (a, b):
        assert strict_json(d / "train_summary.json")["best"]["step"] == ha["best"]["step"]


@pytest.fixture
def reference(tmp_path):
    train(tiny(), tmp_path / "whole", progress=False)
    return tmp_path / "whole"


def during_forward(monkeypatch, call: int, action) -> None:
    """Run ``action`` inside the training step whose forward pass is the ``call``-th (1-based):
    after the forward pass has drawn its random numbers, before the update."""
    original, count = training.model_loss, [0]

    def patched(*args, **kwargs):
        out = original(*args, **kwargs)
        count[0] += 1
        if count[0] == call:
            action()
        return out

    monkeypatch.setattr(training, "model_loss", patched)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_step_stops_at_the_step_boundary_and_resumes_exactly(tmp_path, monkeypatch, reference, sig):
    """The signal lands after step 7's forward pass (its noise drawn): the step finishes, step 7
    is checkpointed, and the resumed run ends with the uninterrupted run's weights. The
    previous handlers are back afterwards."""
    def unhandled(signum, frame):  # without train's own handler, SIGTERM would kill pytest
        raise RuntimeError(f"{signal.Signals(signum).name} reached the previous handler")

    previous_term = signal.signal(signal.SIGTERM, unhandled)
    try:
        during_forward(monkeypatch, 7, lambda: signal.raise_signal(sig))
        with pytest.raises(TrainingInterrupted) as stopped:
            train(tiny(), tmp_path / "split", progress=False)
        assert signal.getsignal(signal.SIGTERM) is unhandled
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous_term)
    e = stopped.value
    assert isinstance(e, KeyboardInterrupt) and e.signum == sig and e.saved_step == 7 and not e.finished
    assert f"{signal.Signals(sig).name}: stopped after step 7 of {STEPS}" in str(e) and "holds step 7" in str(e)
    assert torch.load(tmp_path / "split" / "checkpoint_last.pt", weights_only=False)["step"] == 7
    strict_json(tmp_path / "split" / "history.json")  # best is still inf here: written as null
    assert train(tiny(), tmp_path / "split", progress=False).resumed_from == 7
    assert_same_run(reference, tmp_path / "split")


def test_a_signal_before_the_first_validation_writes_valid_json(tmp_path, monkeypatch):
    during_forward(monkeypatch, 2, lambda: signal.raise_signal(signal.SIGINT))
    with pytest.raises(TrainingInterrupted):
        train(tiny(), tmp_path, progress=False)
    saved = strict_json(tmp_path / "history.json")
    assert saved == {"history": [], "best": {"loss": None, "score": None, "step": -1}}


def _double_sigint():
    signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGINT)  # the second one stops at once: KeyboardInterrupt here


def _raise_keyboard_interrupt():
    raise KeyboardInterrupt


@pytest.mark.parametrize("action", [_double_sigint, _raise_keyboard_interrupt])
def test_an_immediate_interrupt_mid_step_saves_the_state_of_the_step_start(tmp_path, monkeypatch, reference, action):
    """A second Ctrl-C (or a KeyboardInterrupt from code) inside step 7 cannot wait: the
    checkpoint holds step 6 with the RNG state from before step 7's forward pass."""
    during_forward(monkeypatch, 7, action)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(tiny(), tmp_path / "split", progress=False)
    assert stopped.value.saved_step == 6 and "stopped at once" in str(stopped.value)
    assert stopped.value.signum == (signal.SIGINT if action is _double_sigint else None)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert train(tiny(), tmp_path / "split", progress=False).resumed_from == 6
    assert_same_run(reference, tmp_path / "split")


def test_an_interrupt_inside_the_parameter_update_keeps_the_previous_checkpoint(tmp_path, monkeypatch, reference):
    """Interrupted after step 7's update was applied but before it was counted: saving then
    would apply the update twice on resume, so checkpoint_last.pt keeps step 5."""
    original, count = torch.optim.Adam.step, [0]

    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        count[0] += 1
        if count[0] == 7:
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(tiny(), tmp_path / "split", progress=False)
    monkeypatch.undo()
    assert stopped.value.saved_step == 5 and "cannot be saved" in str(stopped.value)
    assert "holds step 5" in str(stopped.value)
    assert train(tiny(), tmp_path / "split", progress=False).resumed_from == 5
    assert_same_run(reference, tmp_path / "split")


def during_validation(monkeypatch, call: int, action) -> None:
    """Run ``action`` at the start of the ``call``-th validation (1-based)."""
    original, count = training.validate, [0]

    def patched(*args, **kwargs):
        count[0] += 1
        if count[0] == call:
            action()
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "validate", patched)


def test_ctrl_c_during_the_final_validation_lets_it_finish(tmp_path, monkeypatch, reference):
    """A Ctrl-C during the last validation waits for it: the run is complete, says so, and
    training it again does nothing."""
    during_validation(monkeypatch, 3, lambda: signal.raise_signal(signal.SIGINT))
    with pytest.raises(TrainingInterrupted) as stopped:
        train(tiny(), tmp_path / "split", progress=False)
    assert stopped.value.finished and stopped.value.saved_step == STEPS and "is complete" in str(stopped.value)
    assert_same_run(reference, tmp_path / "split")
    assert train(tiny(), tmp_path / "split", progress=False).resumed_from == STEPS


def test_an_immediate_interrupt_during_the_final_validation_reruns_it_on_resume(tmp_path, monkeypatch, reference):
    """The run stops at its last step with that step's validation unfinished: it is not
    complete, and the resumed call validates (writing the best checkpoint) before finishing."""
    during_validation(monkeypatch, 3, _raise_keyboard_interrupt)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(tiny(), tmp_path / "split", progress=False)
    assert stopped.value.saved_step == STEPS and not stopped.value.finished
    assert f"during step {STEPS}'s validation (rerun on resume)" in str(stopped.value)
    assert not is_complete(tmp_path / "split")
    assert [h["step"] for h in strict_json(tmp_path / "split" / "history.json")["history"]] == [5, 10]
    monkeypatch.undo()
    assert train(tiny(), tmp_path / "split", progress=False).best_step > 0
    assert_same_run(reference, tmp_path / "split")


def test_an_interrupt_while_setting_up_says_nothing_was_saved(tmp_path, monkeypatch):
    def load_data(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "load_data", load_data)
    with pytest.raises(TrainingInterrupted, match="while setting up the run .*no checkpoint was saved yet"):
        train(tiny(), tmp_path, progress=False)
    assert not (tmp_path / "config.json").exists()


def test_a_run_stopped_before_its_last_validation_by_an_older_version_is_repaired(tmp_path):
    """Run dirs left by the old Ctrl-C handler: checkpoint_last.pt at the last step, no
    validation there, no best checkpoint (eval_every above the step count). Resuming validates."""
    cfg = tiny(eval_every=100)
    train(cfg, tmp_path / "whole", progress=False)
    d = tmp_path / "broken"
    train(cfg, d, progress=False)
    state = torch.load(d / "checkpoint_last.pt", weights_only=False)
    state["history"], state["best"] = [], {"loss": math.inf, "score": math.nan, "step": -1}
    state.pop("train_loss", None)
    torch.save(state, d / "checkpoint_last.pt")
    (d / "checkpoint_best.pt").unlink()
    (d / "train_summary.json").unlink()
    res = train(cfg, d, progress=False)
    assert res.best_step == STEPS and is_complete(d)
    assert_same_run(tmp_path / "whole", d)


def test_a_run_without_a_finite_validation_is_not_marked_finished(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "validate", lambda *a, **k: {"loss": math.nan, "score": math.nan})
    with pytest.raises(RunError, match="no validation .* had a finite loss"):
        train(tiny(steps=3), tmp_path, progress=False)
    assert not (tmp_path / "train_summary.json").exists() and not is_complete(tmp_path)
    strict_json(tmp_path / "history.json")


def test_training_in_a_worker_thread_runs_without_signal_handlers(tmp_path, reference):
    """Signal handlers can be set from the main thread only: elsewhere training runs as before."""
    errors = []

    def work():
        try:
            train(tiny(), tmp_path / "split", progress=False, stop_after=4)
            train(tiny(), tmp_path / "split", progress=False)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert_same_run(reference, tmp_path / "split")


def test_an_ignored_signal_is_left_alone(tmp_path, monkeypatch, reference):
    """A process that ignores SIGINT (started with nohup, or in the background of a script)
    keeps ignoring it while training: no handler is installed for it, and a SIGINT mid-step
    changes nothing."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    during_forward(monkeypatch, 7, lambda: signal.raise_signal(signal.SIGINT))
    train(tiny(), tmp_path / "split", progress=False)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert_same_run(reference, tmp_path / "split")


@pytest.mark.parametrize("bad", [{"num_train": 0}, {"extra": {"solver_options": {"bogus": 1}}},
                                 {"lr": math.inf}, {"model": "nar", "extra": {"solver_options": {"m": 3}}}])
def test_a_failed_setup_leaves_no_config_behind(tmp_path, bad):
    """Errors from the data, the model's options or the first step leave no config.json that
    would refuse the corrected command as "a different config"."""
    cfg = dataclasses.replace(tiny(steps=2), **bad)  # unvalidated: train() itself must refuse it
    with pytest.raises(ValueError):
        train(cfg, tmp_path, progress=False)
    assert not (tmp_path / "config.json").exists()
    assert train(tiny(steps=2), tmp_path, progress=False).steps == 2


def test_solver_options_are_refused_for_models_other_than_dear(tmp_path, capsys):
    with pytest.raises(ConfigError, match="solver options .* apply only to --model dear, not --model nar"):
        train(dataclasses.replace(tiny(model="nar"), extra={"solver_options": {"m": 3}}), tmp_path, progress=False)
    args = ["train", "--algorithm", "bfs", "--model", "nar", "--steps", "2", "--num-train", "8", "--hidden", "8",
            "--device", "cpu", "--quiet", "--solver-opt", "m=3", "--out", str(tmp_path / "cli")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only --model dear reads --solver-opt" in err
    assert not (tmp_path / "cli" / "config.json").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_model"])
def test_an_unusable_last_checkpoint_is_a_one_line_error_naming_it(tmp_path, damage):
    run = tmp_path / "run"
    train(tiny(steps=5), run, progress=False)
    last = run / "checkpoint_last.pt"
    if damage == "truncate":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "garbage":
        last.write_text("garbage\n")
    else:  # a checkpoint of the same format from a wider model
        other = tmp_path / "other"
        train(tiny(steps=5, hidden=16), other, progress=False)
        last.write_bytes((other / "checkpoint_last.pt").read_bytes())
    with pytest.raises(RunError, match="checkpoint_last.pt") as err:
        train(tiny(steps=5), run, progress=False)
    # one line (dear/cli.py prints a RunError as one `error:` line), saying how to go on
    assert "\n" not in str(err.value) and "delete it" in str(err.value)
    last.unlink()
    train(tiny(steps=5), run, progress=False)
    assert is_complete(run)


@pytest.mark.parametrize("exc, code, text", [
    (TrainingInterrupted("SIGTERM: stopped after step 3 of 12; RUN/checkpoint_last.pt holds step 3",
                         signum=signal.SIGTERM, saved_step=3), 143, "interrupted: SIGTERM: stopped after step 3"),
    (KeyboardInterrupt(), 130, "finished runs and checkpoints are kept"),
])
def test_the_cli_reports_what_an_interrupt_saved(monkeypatch, capsys, exc, code, text):
    import dear.cli as cli

    def stop(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_train", stop)
    assert main(["train", "--algorithm", "bfs", "--model", "dear", "--out", "unused"]) == code
    assert text in capsys.readouterr().err


def test_the_cli_handles_an_interrupt_while_starting(monkeypatch, capsys):
    """Ctrl-C while the parser is built (it imports torch and every subcommand, seconds) is a
    one-line message and exit 130, not a traceback."""
    import dear.cli as cli

    def interrupted_parser():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted_parser)
    assert cli.main(["--help"]) == 130
    err = capsys.readouterr().err
    assert "interrupted before anything started" in err and "Traceback" not in err
