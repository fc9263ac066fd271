"""Which seeds' initialisations collapse: train one method for a few hundred steps from many seeds at once (vmapped)
and print, per seed, the initial per-layer global scales and the accuracy after each stretch of steps.

    python tools/init_sweep.py DATA.npz [--method tiered_ff] [--arch mlp] [--seeds 0-11] [--steps 250,250,500]
                               [--configfile config/config.yaml] [--swap A:B ...] [--init-only]

``DATA.npz`` is a prepared data set (``results/data/fashion_mnist.npz``); the training settings are the config's for
``--method`` on ``--arch`` (the settings a workflow job of that method gets). For the tiered model the printed scale
of layer l is :math:`\\ln(v_l / \\tau_0) = (\\mu_{\\hat a_l} - \\mu_{\\hat b_l}) / 2` at the guide's initial
locations (the output layer's: :math:`\\ln \\gamma_L`), and their sum over layers. ``--swap A:B`` gives seed B the
initial global-scale locations (``v_a``, ``v_b``) of seed A before training: the causal test of docs/tiered-collapse.md.
A seed is "collapsed" when its accuracy is at chance level (:func:`bmrsparse.metrics.at_chance`).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def seed_list(text: str) -> list[int]:
    """``"0-11"`` or ``"0,1,5"`` -> seeds."""
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def config_settings(configfile: str, method: str, arch: str):
    """The :class:`~bmrsparse.settings.TrainingSettings` a workflow job of ``method`` on ``arch`` gets."""
    import yaml

    from bmrsparse.settings import TrainingSettings
    from bmrsparse.workflow import Config
    from bmrsparse.workflow.jobs import job_settings
    from bmrsparse.workflow.schema import validated

    with open(configfile) as f:
        config = validated(yaml.safe_load(f))
    return TrainingSettings.from_mapping(job_settings(Config.from_mapping(config), method, arch))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--method", default="tiered_ff")
    p.add_argument("--arch", default="mlp")
    p.add_argument("--seeds", default="0-11", type=seed_list)
    p.add_argument("--steps", default="250,250,500", type=lambda t: [int(s) for s in t.split(",")])
    p.add_argument("--configfile", default="config/config.yaml")
    p.add_argument("--test-images", type=int, default=1000, help="test images per evaluation (10 samples)")
    p.add_argument("--init-only", action="store_true", help="print the initial scales and stop (no training)")
    p.add_argument("--swap", action="append", default=[], metavar="A:B",
                   help="seed B starts from seed A's initial global scales (tiered model)")
    args = p.parse_args(argv)

    import jax.numpy as jnp

    from bmrsparse import data as bdata
    from bmrsparse.metrics import at_chance
    from bmrsparse.train import State, Trainer

    settings = config_settings(args.configfile, args.method, args.arch).replace(test_subset=args.test_images)
    ds = bdata.load_prepared(args.data)
    trainer = Trainer(arch=args.arch, method=args.method, dataset=ds, seeds=args.seeds, settings=settings)
    state = trainer.init()
    step, (params, opt) = state.svi_state.optim_state
    if args.swap:
        if "v_a.loc" not in params:
            p.error(f"--swap needs the tiered model's global scales; {args.method} has none")
        index = {s: i for i, s in enumerate(args.seeds)}
        pairs = [tuple(index[int(s)] for s in pair.split(":")) for pair in args.swap]
        params = dict(params)
        for site in ("v_a.loc", "v_b.loc"):
            original, values = np.array(params[site]), np.array(params[site])
            for a, b in pairs:  # every swap reads the initial values, not an earlier swap's
                values[b] = original[a]
            params[site] = jnp.asarray(values)
        state = State(state.svi_state._replace(optim_state=(step, (params, opt))), state.data_key, state.masks,
                      state.step)
    init = {k: np.asarray(v) for k, v in trainer.params(state).items()}
    if "v_a.loc" in init:
        scales = 0.5 * (init["v_a.loc"] - init["v_b.loc"])
        for seed, row in zip(args.seeds, scales):
            print(f"seed {seed}: initial ln(v/tau0) per layer [{', '.join(f'{x:+.2f}' for x in row)}], "
                  f"sum {row.sum():+.2f}")
    if args.init_only:
        return 0
    done = 0
    for n in args.steps:
        state, _ = trainer.train(state, n, chunk_size=min(n, 50), progress=False)
        done += n
        rows = trainer.evaluate(state, done, 10)
        print(f"step {done}: acc " + " ".join(f"{s}:{r['acc']:.3f}" for s, r in zip(args.seeds, rows)), flush=True)
    down = [s for s, r in zip(args.seeds, rows) if at_chance(r["acc"], trainer.num_classes)]
    print(f"collapsed (at chance after {done} steps): {down if down else 'none'} of {len(args.seeds)} seeds")
    return 0


if __name__ == "__main__":
    from bmrsparse.provenance import limit_threads

    limit_threads(1)  # one XLA thread, as a workflow job on one core (before JAX starts)
    sys.exit(main())
