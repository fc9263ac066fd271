"""Dump the authors' code's initial guide parameters (BMR-S&S regression, MLP 5x400, FashionMNIST) to an .npz.

For ``tools/authors_schedule.py --init-from``: the authors' code (bmr4pml) draws its initial parameters with
``svi.init`` under the key its ``fit_and_test`` splits from ``PRNGKey(seed)``; this script does the same through
``ref_bench.py`` (the set-up in ``../shared/notes/reference-bench.md``: ``BMR4PML_DIR`` and equinox on
``PYTHONPATH``).

    BMR4PML_DIR=<scratch>/bmr4pml PYTHONPATH=<scratch>/eqx python tools/authors_init.py OUT.npz \\
        [--seed 0] [--data /usr/share/datasets/fashion-mnist] [--ref-bench ../shared/tools/ref_bench.py]

Prints the six layers' initial q(c^-2) locations, the numbers that decide most of the early pruning.

    BMR4PML_DIR=... PYTHONPATH=... python tools/authors_init.py --tiered-scales 0-199

instead prints, per seed, the authors' Tiered-FF initial global scales ln(v_l / tau0) = (mu(z_0) - mu(z_1)) / 2 of
each layer (the output layer's: ln gamma_L) and their sum, the numbers that decide whether Tiered-FF collapses
(docs/tiered-collapse.md; ``tools/init_sweep.py --init-only`` prints ours).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", help="the .npz to write (BMR-S&S's initial parameters)")
    ap.add_argument("--tiered-scales", metavar="A-B", help="print Tiered-FF's initial global scales of seeds A..B")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="folder with the four *-ubyte.gz")
    ap.add_argument("--ref-bench", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "tools",
                                                        "ref_bench.py"))
    a = ap.parse_args(argv)
    if not (a.out or a.tiered_scales):
        ap.error("give OUT.npz or --tiered-scales A-B")
    if not os.environ.get("BMR4PML_DIR"):
        sys.exit("set BMR4PML_DIR to the folder holding the authors' bmr4pml/ (see ../shared/notes/reference-bench.md)")
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.ref_bench)))
    import jax
    import numpy as np
    import ref_bench as rb  # noqa: PLC0415 (the authors' code, found through BMR4PML_DIR)
    from jax import random as jr

    train, _ = rb.load_fmnist(a.data)
    if a.tiered_scales:
        return tiered_scales(rb, train, *map(int, a.tiered_scales.split("-")))
    _, svi, _ = _mlp_svi(rb, "BMR-S&S", train)
    _, key = jr.split(jr.PRNGKey(a.seed))  # fit_and_test: key, _key = split(key); svi.init(_key, ...)
    state = svi.init(key, train["image"], y=train["label"], batch_size=128, with_hyperprior=False)
    params = jax.device_get(svi.get_params(state))
    np.savez(a.out, **{k: np.asarray(v) for k, v in params.items()})
    print("initial q(c^-2) locations per layer:",
          [round(float(params[f"layer{i}.weight.c_inv_sqr.loc"]), 4) for i in range(6)])


def _mlp_svi(rb, method: str, train):
    """``(regression, SVI, with_hyperprior)`` of the authors' ``method`` on the MLP 5 x 400, scaled per datum as
    ``ref_bench.py`` fits it."""
    from jax import random as jr
    from numpyro import handlers
    from numpyro.infer import SVI

    reg, hyper = rb.regression(method, rb.make_net("mlp", (1, 28, 28), 10, jr.PRNGKey(137)))
    n = train["image"].shape[0]
    return reg, SVI(handlers.scale(reg.model, 1 / n), handlers.scale(reg.guide, 1 / n), reg.optim, reg.loss), hyper


def tiered_scales(rb, train, first: int, last: int) -> None:
    """The authors' Tiered-FF MLP: each seed's initial ln(v_l / tau0) per layer and their sum (one line per seed)."""
    import jax
    from jax import random as jr

    _, svi, hyper = _mlp_svi(rb, "Tiered-FF", train)
    x, y = train["image"][:128], train["label"][:128]  # the data do not change the parameters' initial values
    init = jax.jit(lambda key: svi.get_params(svi.init(key, x, y=y, batch_size=128, with_hyperprior=hyper)))
    for seed in range(first, last + 1):
        _, key = jr.split(jr.PRNGKey(seed))  # as fit_and_test splits the fit's key
        params = jax.device_get(init(key))
        locs = [params[f"layer{i}.weight.z_auto_loc"] for i in range(6)]  # z = (z_0, z_1) ~ Gamma(1/2, 1)^2
        scales = [0.5 * (float(z[0]) - float(z[1])) for z in locs]
        print(f"seed {seed}: initial ln(v/tau0) per layer [{', '.join(f'{v:+.2f}' for v in scales)}], "
              f"sum {sum(scales):+.2f}", flush=True)


if __name__ == "__main__":
    main()
