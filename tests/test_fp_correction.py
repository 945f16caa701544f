"""DEAR's fixed-point correction: which iterates it supervises, how it weights them, the wiring."""

import json

import pytest
import torch

import clrs_tasks as ct
from dear.cli import main
from dear.config import ConfigError
from dear.reasoners import DEAR, build_model
from dear.reasoners.layout import BatchLayout
from dear.reasoners.models import GraphInputs
from tests.test_training import tiny


@pytest.fixture(scope="module")
def bf_batch():
    # Bellman-Ford graphs of different sizes take different numbers of solver iterations.
    ds = ct.load_split("bellman_ford", "train", "dear", num_samples=6, progress=False)
    return ds.spec, ct.collate([ds[i] for i in range(6)])


def _model(spec, **kw) -> DEAR:
    torch.manual_seed(0)
    return build_model("dear", spec, hidden=16, noise=0.0, jac_reg=0.0, **kw)


def test_each_graph_is_corrected_at_its_own_fraction_of_the_solve(bf_batch):
    spec, batch = bf_batch
    model = _model(spec, fpc_states=2, tol=1e-3)
    seen = {}
    inner = model._corrected_outputs

    def spy(trajectory, iterations, *args):
        seen["trajectory"], seen["iterations"] = [t.clone() for t in trajectory], iterations.clone()
        return inner(trajectory, iterations, *args)

    model._corrected_outputs = spy
    model.train()
    out, stats = model(batch)
    lengths = seen["iterations"].tolist()
    assert len(set(lengths)) > 1, lengths  # the check below must tell per-graph from batch-wide picks
    assert torch.equal(seen["iterations"], stats["iterations"])
    data = GraphInputs(batch, spec.stage("input"))
    layout = BatchLayout(data)
    enc = model.encode(data, layout)
    args = model._step_args(enc, layout, model.static_terms(enc, layout))
    key = spec.stage("output")[0].key
    for j in (1, 2):
        # Build the state graph by graph: graph g's rows from its iterate number j * L_g // 3.
        x = torch.empty_like(seen["trajectory"][0])
        for g, length in enumerate(lengths):
            rows = layout.batch == g
            x[rows] = seen["trajectory"][(j * length) // 3][rows]
        want = model.decode(model._f(x, *args), enc, layout, h_in=x)[key]
        assert torch.allclose(out[f"aux_fpc{j}:{key}"], want, atol=1e-5)
    # The final answer is not one of them: the correction adds states, it does not replace the last.
    assert not torch.allclose(out["aux_fpc2:" + key], out[key])


def test_weights_decay_towards_the_start_and_gradients_reach_the_processor(bf_batch):
    spec, batch = bf_batch
    terms = {}
    for gamma in (1.0, 0.5):
        model = _model(spec, fpc_states=1, fpc_gamma=gamma)
        model.train()
        out, stats = model(batch)
        terms[gamma] = model.loss_terms(batch, out, stats)["fp_correction"]
    # one state: weight gamma ** 1, on the same (deterministic) forward
    assert torch.allclose(terms[0.5], 0.5 * terms[1.0])
    terms[0.5].backward()
    grads = [p.grad for p in model.processor.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_only_in_training_and_only_when_asked(bf_batch):
    spec, batch = bf_batch
    plain = _model(spec)
    plain.train()
    out, stats = plain(batch)
    assert "fp_correction" not in plain.loss_terms(batch, out, stats)
    model = _model(spec, fpc_states=3)
    model.eval()
    with torch.no_grad():
        out, stats = model(batch)
    assert not any(k.startswith("aux_fpc") for k in out)
    assert "fp_correction" not in model.loss_terms(batch, out, stats)
    with pytest.raises(ValueError, match="fpc_states"):
        _model(spec, fpc_states=-1)
    with pytest.raises(ValueError, match="fpc_gamma"):
        _model(spec, fpc_states=1, fpc_gamma=0.0)
    with pytest.raises(ValueError, match="trajectory"):
        _model(spec, fpc_states=1, backward="unroll")


def test_config_and_cli(tmp_path):
    run = tmp_path / "dear"
    rc = main(["train", "--algorithm", "minimum", "--model", "dear", "--out", str(run), "--quiet", "--steps", "3",
               "--num-train", "16", "--batch-size", "4", "--hidden", "16", "--eval-every", "3", "--device", "cpu",
               "--fpc-states", "2", "--fpc-gamma", "0.5"])
    assert rc == 0
    config = json.loads((run / "config.json").read_text())
    assert config["fpc_states"] == 2 and config["fpc_gamma"] == 0.5
    with pytest.raises(ConfigError, match="--model dear"):
        tiny("nar", fpc_states=2)
    with pytest.raises(ConfigError, match="classic solver"):
        tiny("dear", fpc_states=2, solver="learned")
    with pytest.raises(ConfigError, match="fpc_gamma"):
        tiny("dear", fpc_states=2, fpc_gamma=1.5)
