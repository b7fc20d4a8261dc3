"""The output heads' floor on Student-t predictives — those of unknown noise — without training.

    python examples/head_floor_student_t.py
    python examples/head_floor_student_t.py --dof 5 6 --buckets 128 256

A Student-t predictive with ``dof`` degrees of freedom (2 a_n under a Normal-Inverse-Gamma
posterior: 2 a + n after n pairs) at several locations and scales is turned into its KL-best
approximation by each head, built as ``config.yaml`` builds it (:meth:`lrpfn.buckets.
BarDistribution.fit`), and ``KL(t || head)`` is computed by quadrature between the head's kinks
(:func:`lrpfn.predictive.kl_divergence`). A location-scale head's floor does not depend on the
location or the scale; the bar head's does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from lrpfn import priors
from lrpfn.bayes import StudentT
from lrpfn.buckets import HEADS, build_head
from lrpfn.config import PriorConfig, prepare
from lrpfn.predictive import kl_divergence

PLACES = ((0.0, 0.35), (3.0, 0.35), (0.0, 2.0), (-5.0, 1.0))  # (location, scale): noise sd ... prior sd


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dof", type=float, nargs="+", default=[3, 4, 5, 6, 8, 12, 20, 1000])
    parser.add_argument("--buckets", type=int, nargs="+", help="bucket counts (default: the config's)")
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS))
    args = parser.parse_args(argv)
    config = prepare(yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text()))
    prior = priors.build(PriorConfig.from_dict(config.get("prior")), config["dim"])
    print("KL(t || head) [nats] at (location, scale) = " + ", ".join(f"({a:g}, {b:g})" for a, b in PLACES))
    for kind in args.heads:
        for buckets in args.buckets or [config["model"]["n_buckets"]]:
            head = build_head(kind, buckets, config["noise_var"], prior)
            for dof in args.dof:
                floors = []
                for loc, scale in PLACES:
                    t = StudentT(*(torch.tensor([v], dtype=torch.float64) for v in (dof, loc, scale**2)))
                    floors.append(kl_divergence(t, head, head.fit(t)[0]))
                print(f"{kind:>15} {buckets:4d} buckets  dof {dof:6g}: " + "  ".join(f"{v:.5f}" for v in floors))


if __name__ == "__main__":
    main()
