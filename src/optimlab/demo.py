"""A short example of the library: one small model, three optimizers, one table."""

from __future__ import annotations

import torch
from sklearn.datasets import load_iris

from optimlab import optim


def main() -> None:
    x, y = load_iris(return_X_y=True)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    y = torch.tensor(y)
    print(f"{'optimizer':<10} {'convention':<10} {'loss':>8} {'accuracy':>9}")
    for name, convention in [("sgd", "pytorch"), ("momentum", "keras"), ("adam", "paper")]:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        opt = optim.create(name, model.parameters(), convention=convention, lr=0.1)
        for _ in range(200):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        acc = (model(x).argmax(1) == y).float().mean().item()
        print(f"{name:<10} {convention:<10} {loss.item():>8.4f} {acc:>9.3f}")


if __name__ == "__main__":
    main()
