"""The authors' BMR-S&S schedule on FashionMNIST with the MLP, and the first prune's sensitivity to k_max.

Schedule (the authors' code, bmr4pml): a flat warm-up (Flat-FF) of 10k SVI steps at AdaBelief lr 1e-2, then five
BMR-S&S epochs of (prune, 2k steps) at lr 1e-2; guide locations uniform in [-2, 2], scales 0.1, minibatch 128,
100 posterior-predictive samples on the full test set. Prints epochs 1..5 (ACC, NLL, pruned fraction) and, from the
warm-up posterior, the fraction the first prune removes against k_max.

    python tools/authors_schedule.py                      # the full schedule (about 5 min on 2 free CPU cores)
    python tools/authors_schedule.py --scale 0.2          # 2k warm-up + 5 x 400 steps (quick look)
    python tools/authors_schedule.py --set elbo=mean_field --set bmr_keep=q   # other settings
    python tools/authors_schedule.py --kmax-only results/.../warmup.npz       # only the k_max table of a state

Outputs go to --out (default results/authors_schedule/): warm-up and BMR states, metrics CSVs, summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np


def _value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def kmax_table(state_path, iters=(1, 2, 4, 5, 8, 20, None), keep="q"):
    """First-prune fraction against k_max for the (warm-up) posterior in ``state_path`` (seed index 0)."""
    from bmrsparse import bmr, methods
    from bmrsparse.state import load_state

    trainer, state, _ = load_state(state_path)
    params = jax.tree.map(lambda a: np.asarray(a[0]), trainer.params(state))
    post = methods.layer_posteriors(trainer.built, params)
    return bmr.first_prune_fraction(post, frozen=(trainer.head,), iters=iters, keep=keep)


def authors_init_state(data, out_path, authors_params, seed=0, settings=None):
    """Write a Flat-FF state for the MLP whose guide starts at the authors' code's initial parameters.

    ``authors_params``: an ``.npz`` of the authors' guide parameters (``layer{l}.weight.loc`` ``[out, in + 1]``,
    ``layer{l}.weight.c_inv_sqr.loc``), e.g. ``svi.get_params(svi.init(key, ...))`` of their BMR regression. The
    scales start at 0.1 on both sides. Everything else (optimiser state, keys) is this library's.
    """
    from bmrsparse.data import load_prepared
    from bmrsparse.settings import TrainingSettings
    from bmrsparse.methods._layers import Layout
    from bmrsparse.state import save_state
    from bmrsparse.train import State, Trainer

    src = np.load(authors_params)
    tr = Trainer(arch="mlp", method="flat_ff", dataset=load_prepared(data), seeds=[seed],
                 settings=TrainingSettings.from_mapping(settings))
    state = tr.init()
    step, (params, opt) = state.svi_state.optim_state
    params = dict(params)
    layout = Layout(tr.layers)
    w = np.array(params["w_hat.loc"])  # [1, P]
    c = np.array(params["c_inv_sqr.loc"])  # [1, L]
    for l, layer in enumerate(tr.layers):
        loc = src[f"layer{l}.weight.loc"]  # [out, in + 1]: weight columns, then the bias
        a, b, shape = layout.slices[(layer.name, "kernel")]
        w[0, a:b] = loc[:, :-1].T.reshape(-1)
        a, b, shape = layout.slices[(layer.name, "bias")]
        w[0, a:b] = loc[:, -1]
        c[0, l] = float(src[f"layer{l}.weight.c_inv_sqr.loc"])
        np.testing.assert_allclose(src[f"layer{l}.weight.scale"], 0.1, rtol=1e-5)
    params["w_hat.loc"], params["c_inv_sqr.loc"] = jax.numpy.asarray(w), jax.numpy.asarray(c)
    svi_state = state.svi_state._replace(optim_state=(step, (params, opt)))
    save_state(tr, State(svi_state, state.data_key, state.masks, 0), out_path)
    return out_path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the warm-up and epoch steps (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/authors_schedule")
    ap.add_argument("--data", default=None, help="a prepared FashionMNIST .npz (default: prepare one in --out)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a training setting (bmrsparse.settings.TrainingSettings), JSON value; repeatable")
    ap.add_argument("--kmax-only", metavar="STATE", help="print the k_max table of this warm-up state and stop")
    ap.add_argument("--init-from", metavar="NPZ", help="start the guide at these authors'-code initial parameters "
                    "(layer{l}.weight.loc, layer{l}.weight.c_inv_sqr.loc)")
    args = ap.parse_args(argv)

    if args.kmax_only:
        print(json.dumps(kmax_table(args.kmax_only)))
        return 0

    from bmrsparse.data import prepare_dataset
    from bmrsparse.experiment import run_stage

    os.makedirs(args.out, exist_ok=True)
    data = args.data or os.path.join(args.out, "fashion_mnist.npz")
    if not os.path.exists(data):
        prepare_dataset("fashion_mnist", data)
    warmup, epoch = max(1, round(10_000 * args.scale)), max(1, round(2_000 * args.scale))
    # the warm-up at BMR-S&S's rate, as the authors' code fits BMR-S&S's warm-up
    settings = {"learning_rate": 1e-2, "batch_size": 128, "init_radius": 2.0,
                "init_scale": 0.1, "num_eval_samples": 100, "test_subset": None, "chunk_size": 500,
                "checkpoint_every": 10**9}
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = _value(value)
    common = dict(data_path=data, dataset="fashion_mnist", arch="mlp", seed=args.seed, settings=settings,
                  progress=False)
    p = lambda name: os.path.join(args.out, name)  # noqa: E731
    t0 = time.perf_counter()
    init = None
    if args.init_from:
        init = authors_init_state(data, p("init.npz"), args.init_from, args.seed, settings)
    run_stage(method="flat_ff", schedule=[warmup], first_epoch=0, init_state=init, out_state=p("warmup.npz"),
              out_metrics=p("warmup.csv"), **common)
    t_warm = time.perf_counter() - t0
    kmax = kmax_table(p("warmup.npz"))
    t0 = time.perf_counter()
    df = run_stage(method="bmr_ss", schedule=[epoch] * 5, first_epoch=1, init_state=p("warmup.npz"),
                   out_state=p("bmr_ss.npz"), out_metrics=p("bmr_ss.csv"), **common)
    t_bmr = time.perf_counter() - t0
    rows = df.sort_values("epoch")
    summary = {
        "schedule": {"warmup": warmup, "epoch": epoch, "epochs": 5}, "settings": settings, "seed": args.seed,
        "init_from": args.init_from,
        "acc": [round(float(v), 4) for v in rows.acc], "nll": [round(float(v), 4) for v in rows.nll],
        "pruned": [round(float(v), 4) for v in rows.pruned_fraction],
        "first_prune_vs_kmax": {str(k): round(v, 4) for k, v in kmax.items()},
        "seconds": {"warmup": round(t_warm, 1), "bmr": round(t_bmr, 1)},
    }
    with open(p("summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    print(f"\nFashionMNIST MLP 5x400, warm-up {warmup} + 5 x {epoch} steps, seed {args.seed}, "
          f"{jax.devices()[0].device_kind}, warm-up {t_warm:.0f} s, BMR {t_bmr:.0f} s")
    print("| epoch | " + " | ".join(str(e) for e in rows.epoch) + " |")
    print("|---|" + "---|" * len(rows))
    for name in ("acc", "nll", "pruned"):
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in summary[name]) + " |")
    print("\nfirst prune's fraction (keep q^k >= 1/2) against k = k_max:")
    print("| k | " + " | ".join(summary["first_prune_vs_kmax"]) + " |")
    print("|---|" + "---|" * len(kmax))
    print("| pruned | " + " | ".join(f"{v:.3f}" for v in summary["first_prune_vs_kmax"].values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
