"""APGD and APGD-T: the step-size schedule, the DLR losses, and torchattacks as a referee."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks import APGD, APGDT, FABT, PGD, get_attack
from advlab.attacks.apgd import APGDStep, checkpoints, dlr_loss, dlr_targeted_loss
from advlab.attacks.norms import get_norm, perturbation_norms
from advlab.errors import AdvlabError


def test_checkpoints_follow_the_paper() -> None:
    # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), times 100 steps
    assert list(checkpoints(100)) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(100)[22] == 22 and checkpoints(100)[99] == 6
    assert list(checkpoints(6)) == [1, 2, 3, 4, 5]


def test_dlr_losses() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    label, target = torch.tensor([0]), torch.tensor([3])
    assert float(dlr_loss(logits, label)) == pytest.approx(-2 / 3)
    assert float(dlr_loss(logits, torch.tensor([1]))) == pytest.approx(2 / 3)
    assert float(dlr_targeted_loss(logits, target, label)) == pytest.approx(-4 / 3.5)
    # without the label, the best class other than the target stands in for it
    assert float(dlr_targeted_loss(logits, target)) == pytest.approx(-4 / 3.5)
    # invariant to shifting and scaling the logits
    assert torch.allclose(dlr_loss(7 * logits - 2, label), dlr_loss(logits, label))
    scaled = dlr_targeted_loss(7 * logits - 2, target, label)
    assert torch.allclose(scaled, dlr_targeted_loss(logits, target, label))


def drive(update: APGDStep, losses: torch.Tensor, hits: torch.Tensor | None = None) -> list:
    """Run ``update`` as the loop would on fixed losses (steps x images); the points seen."""
    steps, n = losses.shape
    x = torch.full((n, 1, 2, 2), 0.5)
    update.begin(x.clone())
    seen = []
    for t in range(steps):
        seen.append(x.clone())
        outputs = hits[t] if hits is not None else torch.zeros(n, dtype=torch.bool)
        update.observe(x, outputs, losses[t], None)
        grad = torch.ones_like(x) * (t % 2 * 2 - 1)  # alternating directions
        x = update.ball.project(update(x, grad, losses[t], None), update.origin, update.eps)
    update.observe(x, torch.zeros(n, dtype=torch.bool), torch.full((n,), -1.0), None)
    seen.append(x)
    return seen


def test_step_size_halves_when_progress_stalls_and_restarts_from_the_best() -> None:
    steps = 6  # checkpoints after steps 1, 2, 3, 4, 5 (windows of one step)
    losses = torch.tensor([
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],  # rising: never halves
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # flat: halves at every checkpoint (rule a)
        [5.0, 0.0, 1.0, 2.0, 3.0, 4.0],  # a fall (a), then rises below its best (b)
    ]).T  # fmt: skip
    update = APGDStep(get_norm("linf"), 0.25, steps, torch.zeros(3), lambda o, g: o)
    drive(update, losses)
    # image 2: halved at step 1 (a), not at 2 (just halved), at 3 (b), not 4, at 5 (b)
    assert update.step.tolist() == [0.5, 0.5 / 32, 0.5 / 8]
    assert torch.equal(update.best_loss, torch.tensor([5.0, 1.0, 5.0]))


def test_a_halving_restarts_from_the_best_point() -> None:
    losses = torch.tensor([[5.0], [0.0], [1.0], [2.0]])
    update = APGDStep(get_norm("l2"), 1.0, 4, torch.zeros(1), lambda o, g: o)
    seen = drive(update, losses)
    # Step 0 (no momentum) moved the start, 0.5 per pixel, by the full step 2 * eps along
    # -1 per pixel, projected onto the sphere: 0. At step 1 the loss fell (rule a): the
    # step halves to 1 and the image goes back to its best point, the start, to step along
    # the gradient there: z = 0 again, and with momentum 0.75 on the previous point (the
    # start): 0.5 + 0.75 * (0 - 0.5).
    assert torch.allclose(seen[1], torch.zeros(1, 1, 2, 2))
    assert torch.allclose(seen[2], torch.full((1, 1, 2, 2), 0.125))
    assert float(update.step[0]) == 0.5  # halved again at step 3 by rule (b)
    assert torch.equal(update.finish(seen[-1]), seen[0])  # the best loss: the start


def test_the_first_adversarial_point_is_kept() -> None:
    losses = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    hits = torch.tensor([[False], [True], [False], [True]])
    update = APGDStep(get_norm("linf"), 0.25, 4, torch.zeros(1), lambda o, g: o)
    seen = drive(update, losses, hits)
    assert bool(update.found[0])
    assert torch.equal(update.finish(seen[-1]), seen[1])


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.5)])
def test_apgd_is_at_least_as_strong_as_pgd(small_mnist_model, mnist_sample, norm, eps) -> None:
    model = small_mnist_model
    images, labels = mnist_sample[0][:48], mnist_sample[1][:48]
    ours = APGD(eps, 20, norm, seed=0)(model, images, labels)
    pgd = PGD(eps, steps=20, norm=norm, seed=0)(model, images, labels)
    assert 0 < int(ours.success.sum()) < len(labels)
    assert int(ours.success.sum()) >= int(pgd.success.sum()) - 1
    assert float(perturbation_norms(ours.adversarial, images)[norm].max()) <= eps * (1 + 1e-5)
    assert int(ours.queries.max()) <= 20


def test_early_stop_changes_only_the_work(small_mnist_model, mnist_sample) -> None:
    model = small_mnist_model
    images, labels = mnist_sample[0][:48], mnist_sample[1][:48]
    stopped = APGDT(0.1, 10, n_target_classes=3, seed=0)(model, images, labels)
    full = APGDT(0.1, 10, n_target_classes=3, early_stop=False, seed=0)(model, images, labels)
    assert torch.equal(stopped.success, full.success)
    assert bool((stopped.queries <= full.queries).all())
    assert int(stopped.queries.sum()) < int(full.queries.sum())
    with torch.no_grad():
        clean_wrong = model(images).argmax(1) != labels
    # images misclassified from the start cost nothing; the others 10 steps per target
    # until broken, all 3 targets if never broken
    assert bool((full.queries[clean_wrong] == 0).all())
    assert set(full.queries[~clean_wrong].tolist()) <= {10, 20, 30}
    assert bool((full.queries[~full.success] == 30).all())


def test_targeted_apgd_reaches_its_targets(small_mnist_model, mnist_sample) -> None:
    images, labels = mnist_sample[0][:32], mnist_sample[1][:32]
    for loss in ("ce", "dlr"):
        attack = APGD(0.3, 20, loss=loss, target="random", seed=0)
        result = attack(small_mnist_model, images, labels)
        assert result.targets is not None
        assert result.success_rate > 0.5, (loss, result.success_rate)


def test_registered_and_checked() -> None:
    assert get_attack("apgd") is APGD and get_attack("apgd-t") is APGDT
    assert APGDT(0.1).config() == {
        "attack": "apgd-t", "eps": 0.1, "steps": 100, "norm": "linf", "n_target_classes": 9,
        "restarts": 1, "rho": 0.75, "early_stop": True, "target": None, "seed": None,
    }  # fmt: skip
    with pytest.raises(AdvlabError, match="picks its own targets"):
        APGDT(0.1, target="random")
    with pytest.raises(AdvlabError, match="unknown loss 'cw'"):
        APGD(0.1, loss="cw")
    with pytest.raises(AdvlabError, match="steps must be >= 1"):
        APGD(0.1, steps=0)
    two_classes = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    images, labels = torch.rand(3, 1, 2, 2), torch.zeros(3, dtype=torch.long)
    with pytest.raises(AdvlabError, match="at least 3 classes"):
        APGD(0.1, 2, loss="dlr")(two_classes, images, labels)
    with pytest.raises(AdvlabError, match="at least 4 classes"):
        APGDT(0.1, 2)(two_classes, images, labels)


#: Operations that wait for the device (a host sync on a GPU).
SYNCS = {"aten::nonzero", "aten::_local_scalar_dense", "aten::is_nonzero", "aten::item"}


@pytest.mark.parametrize(
    "make",
    [
        lambda steps: APGD(1e-4, steps, early_stop=False, seed=0),
        lambda steps: APGDT(1e-4, steps, n_target_classes=2, early_stop=False, seed=0),
        lambda steps: FABT(1e-4, steps, n_target_classes=2, seed=0),
    ],
    ids=["apgd", "apgd-t", "fab-t"],
)
def test_no_host_sync_per_step(small_mnist_model, mnist_sample, make) -> None:
    """Without early stop, the waits for the device do not grow with the steps."""
    from torch.profiler import ProfilerActivity, profile

    model, images = small_mnist_model, mnist_sample[0][:6]
    with torch.no_grad():
        labels = model(images).argmax(1)  # robust at this eps: every step runs

    def syncs(steps: int) -> dict[str, int]:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            make(steps)(model, images, labels)
        return {e.key: e.count for e in prof.key_averages() if e.key in SYNCS}

    assert syncs(3) == syncs(12)


# -- torchattacks 3.5.1 (a port of the reference implementation) as a referee ----------------
@pytest.fixture(scope="module")
def robust_mnist(data_dir):
    from advlab.data import load_dataset
    from advlab.models import load_model

    data = load_dataset("mnist", split="test", n=40, seed=0, data_dir=data_dir)
    return load_model("mnist-cnn-robust-0.1"), data.images, data.labels


def robust_count(model: nn.Module, adversarial: torch.Tensor, labels: torch.Tensor) -> int:
    with torch.no_grad():
        return int((model(adversarial).argmax(1) == labels).sum())


@pytest.mark.data
@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: APGD(0.2, 25, seed=0), lambda ta, m: ta.APGD(m, eps=0.2, steps=25, loss="ce")),
        (
            lambda: APGD(1.5, 25, "l2", seed=0),
            lambda ta, m: ta.APGD(m, norm="L2", eps=1.5, steps=25, loss="ce"),
        ),
        (
            lambda: APGDT(0.2, 25, n_target_classes=3, seed=0),
            lambda ta, m: ta.APGDT(m, eps=0.2, steps=25, n_classes=4),  # 3 targets
        ),
    ],
    ids=["apgd-ce-linf", "apgd-ce-l2", "apgd-t-linf"],
)
def test_robust_accuracy_agrees_with_torchattacks(robust_mnist, ours, theirs) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model, images, labels = robust_mnist
    clean = robust_count(model, images, labels)
    result = ours()(model, images, labels)
    reference = theirs(torchattacks, model)(images, labels)
    ours_count = robust_count(model, result.adversarial, labels)
    theirs_count = robust_count(model, reference, labels)
    assert 0 < theirs_count < clean, (theirs_count, clean)
    print(f"robust: ours {ours_count}, torchattacks {theirs_count}, clean {clean} of 40")
    assert abs(ours_count - theirs_count) <= 1, (ours_count, theirs_count)
    assert ours_count == int((~result.success).sum())
