"""How much exact Bayes gains over ridge at the mean noise when each task draws its own noise
variance, by the shape a of the inverse gamma (docs/results.md §15). No training: both exact
predictors score the same seeded sequences.

    python examples/unknown_noise_gap.py
"""

from __future__ import annotations

from lrpfn import families
from lrpfn.config import NoiseConfig, TaskFamily

DIM, CONTEXT, NOISE_VAR, SEQUENCES = 4, 16, 0.125, 4096


def main() -> None:
    print("shape  NLL gap averaged over positions [nats]  at position 0  largest  MSE ridge / Bayes")
    for shape in (2.5, 3.0, 4.0, 8.0):
        family = families.build(TaskFamily(noise=NoiseConfig("inverse_gamma", (("shape", shape),))), DIM, NOISE_VAR)
        batch = family.eval_set(SEQUENCES, CONTEXT, seed=0)
        roles = family.references()
        scores = {role: roles[role].score_sequences(batch.x, batch.y) for role in ("ridge", "bayes")}
        gap = (scores["ridge"][1] - scores["bayes"][1]).mean(0)
        mse = {role: ((mean - batch.target.double()) ** 2).mean().item() for role, (mean, _) in scores.items()}
        print(
            f"{shape:5.1f}  {gap.mean().item():.4f}  {gap[0].item():.4f}  {gap.max().item():.4f}  "
            f"{mse['ridge'] / mse['bayes']:.6f}"
        )


if __name__ == "__main__":
    main()
