"""DEAR's alignment regulariser: the forward-only matching, the loss, and the training wiring."""

import itertools
import json

import pytest
import torch

import clrs_tasks as ct
from dear.cli import main
from dear.config import ConfigError
from dear.reasoners import DEAR, NAR, build_model
from dear.reasoners.alignment import alignment_cost, alignment_loss, monotone_alignment
from dear.training import RunError, train
from tests.test_training import tiny


def brute_force(cost: torch.Tensor, k: int, t: int) -> tuple[float, tuple[int, ...]]:
    """Cheapest matching of k DEAR states to t NAR states under the rule, by enumeration."""
    if k == 1:
        return float(cost[0, t - 1]), (t - 1,)
    strict = k <= t
    best = (float("inf"), ())
    for js in itertools.product(range(t), repeat=k):
        if js[0] != 0 or js[-1] != t - 1:
            continue
        if any((b <= a) if strict else (b < a) for a, b in zip(js, js[1:])):
            continue
        c = sum(float(cost[i, j]) for i, j in enumerate(js))
        if c < best[0]:
            best = (c, js)
    return best


def test_matching_is_the_cheapest_forward_only_one():
    g = torch.Generator().manual_seed(0)
    lens = [(1, 3), (2, 2), (3, 5), (4, 4), (5, 3), (3, 1), (4, 6), (2, 5)]  # (K_b, T_b), both regimes
    cost = torch.rand(len(lens), 6, 7, generator=g)
    dear_len = torch.tensor([k for k, _ in lens])
    nar_len = torch.tensor([t for _, t in lens])
    match = monotone_alignment(cost, dear_len, nar_len)
    for b, (k, t) in enumerate(lens):
        want_cost, want = brute_force(cost[b], k, t)
        got = tuple(match[b, :k].tolist())
        assert got == want, (b, got, want)
        assert abs(sum(float(cost[b, i, j]) for i, j in enumerate(got)) - want_cost) < 1e-9
        assert (match[b, k:] == -1).all()


def test_matching_rejects_impossible_lengths():
    with pytest.raises(ValueError, match="lengths"):
        monotone_alignment(torch.zeros(1, 3, 3), torch.tensor([4]), torch.tensor([2]))


def test_cost_and_loss_are_per_graph_and_differentiable():
    torch.manual_seed(0)
    batch = torch.tensor([0, 0, 1, 1, 1])
    d = torch.randn(3, 5, 4, requires_grad=True)
    t = torch.randn(4, 5, 4)
    cost = alignment_cost(d, t, batch, 2)
    # graph 1, DEAR state 2 vs NAR state 3, by hand
    want = ((d[2, 2:] - t[3, 2:]) ** 2).sum(-1).mean() / 4
    assert torch.allclose(cost[1, 2, 3], want)
    loss = alignment_loss(d, t, batch, 2, torch.tensor([2, 3]), torch.tensor([4, 4]))
    loss.backward()
    # graph 0 uses only DEAR states 0 and 1: state 2's rows of graph 0 get no gradient
    assert d.grad[2, :2].abs().sum() == 0 and d.grad[2, 2:].abs().sum() > 0
    # a DEAR trajectory equal to the NAR's (same length) costs nothing
    zero = alignment_loss(t[:3].clone(), t[:3], batch, 2, torch.tensor([3, 3]), torch.tensor([3, 3]))
    assert float(zero) < 1e-10


@pytest.fixture(scope="module")
def minimum_batch():
    ds = ct.load_split("minimum", "train", "dear", num_samples=6, progress=False)
    return ds.spec, ct.collate([ds[i] for i in range(6)])


def test_dear_adds_the_term_only_in_training_with_a_teacher(minimum_batch):
    spec, batch = minimum_batch
    torch.manual_seed(0)
    dear = build_model("dear", spec, hidden=16, align_weight=0.5)
    teacher = build_model("nar", spec, hidden=16)
    out, stats = dear(batch)
    assert "alignment" not in dear.loss_terms(batch, out, stats)  # no teacher yet
    dear.set_alignment_teacher(teacher)
    assert not any(p.requires_grad for p in teacher.parameters())
    assert not any(k.startswith("_align") for k in dear.state_dict())  # not saved with the model
    out, stats = dear(batch)
    terms = dear.loss_terms(batch, out, stats)
    assert terms["alignment"] > 0
    terms["alignment"].backward()
    grads = [p.grad for p in dear.processor.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in teacher.parameters())
    dear.eval()
    with torch.no_grad():
        out, stats = dear(batch)
    assert "aux_align_states" not in out and "alignment" not in dear.loss_terms(batch, out, stats)


def test_teacher_must_match(minimum_batch):
    spec, _ = minimum_batch
    dear = build_model("dear", spec, hidden=16, align_weight=0.1)
    with pytest.raises(ValueError, match="must match"):
        dear.set_alignment_teacher(build_model("nar", spec, hidden=8))
    with pytest.raises(ValueError, match="no-hint NAR"):
        dear.set_alignment_teacher(build_model("nar-lt", spec, hidden=16))
    with pytest.raises(ValueError, match="trajectory"):
        build_model("dear", spec, hidden=16, align_weight=0.1, backward="unroll")


def test_aligned_training_moves_toward_the_teacher(minimum_batch):
    """Training on the alignment term alone lowers it: the gradient points the right way."""
    spec, batch = minimum_batch
    torch.manual_seed(1)
    dear: DEAR = build_model("dear", spec, hidden=16, align_weight=1.0, noise=0.0, jac_reg=0.0)
    teacher: NAR = build_model("nar", spec, hidden=16)
    dear.set_alignment_teacher(teacher)
    opt = torch.optim.Adam(dear.parameters(), lr=3e-3)
    values = []
    for _ in range(40):
        out, stats = dear(batch)
        loss = dear.loss_terms(batch, out, stats)["alignment"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    assert values[-1] < 0.5 * values[0], values


def test_train_with_a_teacher_run_and_config_errors(tmp_path):
    nar_dir = tmp_path / "nar"
    train(tiny("nar", steps=3), nar_dir, progress=False)
    run = tmp_path / "dear"
    rc = main(["train", "--algorithm", "minimum", "--model", "dear", "--out", str(run), "--quiet", "--steps", "3",
               "--num-train", "16", "--batch-size", "4", "--hidden", "16", "--eval-every", "3", "--device", "cpu",
               "--align-weight", "0.01", "--align-teacher", str(nar_dir)])
    assert rc == 0
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["align_teacher"]["run_dir"] == str(nar_dir) and len(summary["align_teacher"]["sha256"]) == 64
    with pytest.raises(ConfigError, match="needs both"):
        tiny("dear", align_weight=0.01)
    with pytest.raises(ConfigError, match="dear only"):
        tiny("nar", align_weight=0.01, align_teacher=str(nar_dir))
    with pytest.raises(RunError, match="must be a no-hint nar run"):
        train(tiny("dear", steps=2, align_weight=0.01, align_teacher=str(run)), tmp_path / "x", progress=False)
    with pytest.raises(RunError, match="not a run directory"):
        train(tiny("dear", steps=2, align_weight=0.01, align_teacher=str(tmp_path / "nope")), tmp_path / "y",
              progress=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # refused before writing
