r"""Training loop: NumPyro SVI with Optax AdaBelief, compiled chunks of steps, BMR pruning, evaluation, state files.

A :class:`Trainer` binds a network, a method, a data set and one or more seeds. Its state (:class:`State`) is
everything a run needs to continue bit-for-bit: the SVI state (guide parameters, optimiser state, the SVI PRNG key),
the minibatch PRNG key, the BMR keep-masks and the step counter. Several seeds train in one compiled program: every
array of the state has a leading seed axis and the step is ``vmap``-ped over it (one seed is a batch of one). States are saved as ``.npz`` files of named arrays plus a JSON header, never
pickles.

Performance: the training data stay on the device as ``uint8``; a whole chunk of SVI steps runs as one compiled
``lax.fori_loop`` with a dynamic trip count (compiled once per shape, ahead of time so compile time is measured);
the host only syncs between chunks (progress bar, checkpoints, non-finite loss check).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import sys
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI, TraceGraph_ELBO, TraceMeanField_ELBO

from . import _rng, bmr, data as bdata, methods, metrics, nets
from .io import atomic_savez, load_npz

FORMAT_VERSION = 1


class NonFiniteLossError(RuntimeError):
    """The ELBO became NaN or infinite during training."""


class StateMismatchError(ValueError):
    """A state or checkpoint file does not belong to this (dataset, architecture, method) or network shape."""


class State(NamedTuple):
    """Everything needed to continue a run: SVI state, minibatch key, BMR masks (leading seed axis), step counter."""

    svi_state: object
    data_key: jax.Array
    masks: dict
    step: int


def _key_to_str(path) -> str:
    return jax.tree_util.keystr(path)


class Trainer:
    """Trains one (dataset, architecture, method) with NumPyro SVI.

    Args:
      arch: architecture name (see :data:`bmrsparse.nets.ARCHS`).
      method: method name (see :data:`bmrsparse.methods.METHODS`).
      dataset: a :class:`bmrsparse.data.Dataset`.
      seeds: integer seeds trained together (vmapped); the same seeds give the same numbers on CPU.
      settings: resolved settings (see :data:`bmrsparse.experiment.DEFAULT_SETTINGS`).
    """

    def __init__(self, *, arch: str, method: str, dataset, seeds, settings: dict):
        self.arch = arch
        self.method = methods.get_method(method)
        self.dataset_name = dataset.name
        self.seeds = [int(x) for x in ([seeds] if np.isscalar(seeds) else seeds)]
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers, got {seeds!r}")
        self.settings = settings
        self.batch_size = int(settings["batch_size"])
        overrides = dict((settings.get("net") or {}).get(arch) or {})
        rate = float(settings["dropout"]) if self.method.dropout else 0.0
        self.net = nets.make_net(arch, dataset.name, dropout_rate=rate, **overrides)
        h, w, c = nets.input_shape(arch, dataset.name)
        self.input_shape = (h, w, c)
        self.image_shape = tuple(int(d) for d in dataset.x_train.shape[1:])

        mean, std = bdata.channel_stats(dataset.x_train)
        mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
        raw_h = dataset.x_train.shape[1]
        pad = (h - raw_h) // 2
        if pad < 0 or h - raw_h - 2 * pad != 0:
            raise ValueError(f"cannot fit {dataset.x_train.shape[1:]} images to the network's input {(h, w, c)}")

        def preprocess(x):
            x = (x.astype(jnp.float32) - mean) / std
            if pad:
                x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
            return x

        self.preprocess = preprocess
        abstract = jax.eval_shape(
            lambda: self.net.init(jax.random.PRNGKey(0), jnp.zeros((1, h, w, c), jnp.float32))
        )
        self.layers = methods.find_layers(abstract["params"])
        self.head = next(l.name for l in self.layers if l.is_head)
        self.n_data = int(dataset.x_train.shape[0])
        self.built = methods.build(
            self.method,
            self.net,
            self.layers,
            n_data=self.n_data,
            preprocess=preprocess,
            gamma0=float(settings["gamma0"]),
            tau0=float(settings["tau0"]),
            init_radius=float(settings["init_radius"]),
            init_scale=float(settings["init_scale"]),
        )
        lr = float((settings.get("learning_rate") or {}).get(method, self.method.learning_rate))
        self.learning_rate = lr
        # training.elbo: the mean-field guides' estimator; a point estimate (MAP) always uses TraceMeanField_ELBO
        elbo = TraceGraph_ELBO if settings.get("elbo") == "trace_graph" and not self.method.point_estimate else None
        self.svi = SVI(self.built.model, self.built.guide, optax.adabelief(lr), loss=(elbo or TraceMeanField_ELBO)())

        self.x_train = jnp.asarray(dataset.x_train)
        self.y_train = jnp.asarray(dataset.y_train, jnp.int32)
        n_test = settings.get("test_subset") or dataset.x_test.shape[0]
        n_test = min(int(n_test), dataset.x_test.shape[0])
        self.x_test = np.asarray(dataset.x_test[:n_test])
        self.y_test = np.asarray(dataset.y_test[:n_test])
        self._run = None
        self.compile_seconds = 0.0
        self._predict = None
        self._prune = None

    # ------------------------------------------------------------------ state
    def init(self) -> State:
        """A fresh state: guide parameters initialised as the authors do, all weights kept, one row per seed."""
        masks = methods.all_kept(self.layers)
        x0, y0 = self.x_train[: self.batch_size], self.y_train[: self.batch_size]

        def init_one(key):
            svi_key, data_key = jax.random.split(key)
            return self.svi.init(svi_key, x0, y0, masks=masks, train=False), data_key

        keys = jnp.stack([jax.random.PRNGKey(s) for s in self.seeds])
        svi_state, data_key = jax.vmap(init_one)(keys)
        n = len(self.seeds)
        masks = jax.tree.map(lambda m: jnp.broadcast_to(m, (n,) + m.shape), masks)
        return State(svi_state, data_key, masks, 0)

    def params(self, state: State) -> dict:
        """Constrained guide parameters (``<site>.loc``, ``<site>.scale``), leading seed axis."""
        return self.svi.get_params(state.svi_state)

    def select(self, state: State, index: int) -> State:
        """The state of seed number ``index`` alone (a batch of one)."""
        take = lambda a: a[index : index + 1]  # noqa: E731
        return State(jax.tree.map(take, state.svi_state), take(state.data_key), jax.tree.map(take, state.masks),
                     state.step)

    # ------------------------------------------------------------------ training
    def _compile(self, state: State):
        """Compile the training step(s) ahead of time (timed: :attr:`compile_seconds`).

        ``step_loop`` (setting): ``"device"`` runs a chunk as one compiled ``lax.fori_loop``; ``"host"`` calls one
        compiled step per SVI step from Python without syncing (dispatch is asynchronous). Measured on a 2-core
        CPU: XLA runs convolutions inside a while loop about 3x slower than in a plain program (LeNet-5 Flat-FF
        77 vs 24 ms/step), while the dense MLP's Bayesian steps are faster in the loop (Flat-FF 24 vs 39 ms/step).
        So ``"auto"`` picks ``"host"`` for networks with convolutions on CPU and ``"device"`` otherwise.
        """
        svi, b, n = self.svi, self.batch_size, self.n_data
        # a method that never prunes keeps every weight: its step skips the keep-masks (one multiplication and its
        # gradient over every weight; the same numbers, as a kept weight's factor is exactly 1)
        prunes = self.method.prunes

        def body(carry, masks, x, y):
            s, dk, total, bad, i = carry
            dk, sub = jax.random.split(dk)
            idx = jax.random.randint(sub, (b,), 0, n)
            s, loss = svi.update(s, jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0),
                                 masks=masks if prunes else None, train=True)
            bad = jnp.where((bad < 0) & ~jnp.isfinite(loss), i, bad)
            return s, dk, total + loss, bad, i + 1

        single = len(self.seeds) == 1
        # one seed runs unbatched (a vmapped conv becomes a grouped conv, much slower on CPU): the seed axis is
        # dropped once per chunk, not per step
        body_seeds = body if single else jax.vmap(body, in_axes=(0, 0, None, None))
        self._single = single

        mode = self.settings.get("step_loop", "auto")
        has_conv = any(layer.kind == "conv" for layer in self.layers)
        on_cpu = jax.default_backend() == "cpu"
        if mode == "auto":
            mode = "host" if on_cpu and has_conv else "device"
        if mode not in ("host", "device"):
            raise ValueError(f"training.step_loop must be 'auto', 'host' or 'device', got {mode!r}")
        carry0, masks0 = self._carry(state.svi_state, state.data_key), self._unbatch(state.masks)
        t0 = time.perf_counter()
        if mode == "device":
            def chunk(carry, masks, x, y, num_steps):
                return jax.lax.fori_loop(0, num_steps, lambda _, c: body_seeds(c, masks, x, y), carry)

            # on CPU, networks without convolutions: the straight-line Threefry (the same bits). Flat-MAP's dropout
            # masks: MLP 10.0 -> 6.9-7.3 ms/step; the Bayesian steps' ~1e6 normal draws, each made once into its own
            # buffer (guides.standard_normal): Flat-FF 12.0 -> 10.6 ms, compile 1.7 -> 2.1 s (Tiered-FF 3.1 -> 5.1 s).
            # Not for convolutions: one LeNet-5 step program compiled for minutes. Not for the Bayesian steps of
            # several seeds: vmapped, the draws are not kept in their own buffers (see _rng.once) and the hash would
            # be evaluated once per consumer.
            straight = not has_conv and on_cpu and (single or self.method.point_estimate)
            with _rng.straight_line_threefry() if straight else contextlib.nullcontext():
                lowered = jax.jit(chunk).lower(carry0, masks0, self.x_train, self.y_train, jnp.int32(1))
            compiled = lowered.compile()
            run = lambda carry, masks, x, y, num_steps: compiled(carry, masks, x, y, jnp.int32(num_steps))  # noqa
        else:
            # the carry is donated: each step updates the state's buffers in place, as the device loop does
            step = jax.jit(body_seeds, donate_argnums=0).lower(carry0, masks0, self.x_train, self.y_train).compile()

            def run(carry, masks, x, y, num_steps):
                for _ in range(num_steps):
                    carry = step(carry, masks, x, y)
                return carry

        self.compile_seconds = time.perf_counter() - t0
        self.step_loop = mode

        def run_chunk(svi_state, data_key, masks, x, y, num_steps):
            carry = self._carry(svi_state, data_key)
            s, dk, total, bad, _ = run(carry, self._unbatch(masks), x, y, int(num_steps))
            if single:
                s, dk, total, bad = jax.tree.map(lambda a: a[None], (s, dk, total, bad))
            return s, dk, total, bad

        self._run = run_chunk

    def _unbatch(self, tree):
        return jax.tree.map(lambda a: a[0], tree) if self._single else tree

    def _carry(self, svi_state, data_key):
        """A fresh copy of the state to train on (it may be donated), with loss and step accumulators."""
        shape = () if self._single else (len(self.seeds),)
        fresh = lambda t: jax.tree.map(jnp.copy, self._unbatch(t))  # noqa: E731
        return (fresh(svi_state), fresh(data_key), jnp.zeros(shape, jnp.float32),
                jnp.full(shape, -1, jnp.int32), jnp.zeros(shape, jnp.int32))

    def train(self, state: State, num_steps: int, *, chunk_size: int, on_chunk=None, on_loss=None, progress=True,
              desc=""):
        """Run ``num_steps`` SVI steps in compiled chunks of at most ``chunk_size``.

        ``on_loss(n, seconds, losses)`` is called after every chunk with its number of steps, its wall time and the
        mean training loss (the negative ELBO estimate; Flat-MAP: the negative log joint) of its steps per seed, a
        numpy array that the chunk returns as its sum (no host sync inside a chunk); then
        ``on_chunk(state, steps_done)`` (used for checkpoints). Raises
        :class:`NonFiniteLossError` naming the first step whose loss was not finite; the state passed to the last
        ``on_chunk`` call is then the last finite one. Returns ``(state, seconds)`` with the wall time spent in
        compiled training chunks (compile time excluded).
        """
        if self._run is None:
            self._compile(state)
        done, seconds = 0, 0.0
        bar = _progress(num_steps, desc, progress)
        try:
            while done < num_steps:
                n = min(int(chunk_size), num_steps - done)
                t0 = time.perf_counter()
                svi_state, data_key, total, bad = self._run(
                    state.svi_state, state.data_key, state.masks, self.x_train, self.y_train, n
                )
                bad = np.asarray(bad)  # host sync once per chunk
                dt = time.perf_counter() - t0
                if (bad >= 0).any():
                    i = int(np.argmin(np.where(bad >= 0, bad, np.iinfo(np.int32).max)))
                    raise NonFiniteLossError(
                        f"the loss became non-finite at step {state.step + int(bad[i]) + 1} "
                        f"({self.dataset_name}/{self.arch}/{self.method.name}, seed {self.seeds[i]}); "
                        "the last finite checkpoint is kept. "
                        f"Lower the learning rate (training.learning_rate.{self.method.name}) or check the inputs."
                    )
                seconds += dt
                done += n
                state = State(svi_state, data_key, state.masks, state.step + n)
                bar.update(n)
                losses = np.asarray(total, np.float64) / n
                bar.set_postfix(step=state.step, loss=f"{float(np.mean(losses)):.4f}", steps_per_s=f"{n / dt:.1f}")
                if on_loss is not None:
                    on_loss(n, dt, losses)
                if on_chunk is not None:
                    on_chunk(state, done)
        finally:
            bar.close()
        return state, seconds

    # ------------------------------------------------------------------ BMR
    def prune(self, state: State, reference: dict | None = None) -> State:
        """Prune before an epoch by the method's declared rule (:attr:`bmrsparse.methods.Method.prune`).

        BMR-S&S: one BMR step (eqs. 19-23) over every layer but the output layer. Masks accumulate. ``reference``:
        the keep-masks (leading seed axis) of the state of :attr:`~bmrsparse.methods.Method.reference` of the same
        epoch, for methods that declare one (e.g. pruning baselines matched to BMR-S&S's per-layer counts).
        """
        rule = self.method.prune
        if rule is None:
            raise ValueError(f"method {self.method.name!r} does not prune")
        if self.method.reference is not None and reference is None:
            raise ValueError(f"method {self.method.name!r} prunes against the state of {self.method.reference!r}: "
                             "pass its masks as reference")
        if self._prune is None:
            built, head = self.built, self.head
            s = self.settings

            def spike_and_slab(params, masks):
                post = methods.layer_posteriors(built, params)
                new, _ = bmr.spike_and_slab_layers(
                    post, masks, alpha0=s["alpha0"], beta0=s["beta0"], iters=int(s["bmr_iters"]), frozen=(head,),
                    keep=s.get("bmr_keep", "zeta"),
                )
                return new

            ctx = methods.PruneContext(built, head, s, spike_and_slab)
            self._prune = jax.jit(jax.vmap(lambda params, masks, ref: rule(ctx, params, masks, ref)))
        masks = self._prune(self.params(state), state.masks, reference)
        return State(state.svi_state, state.data_key, masks, state.step)

    def pruned_fraction(self, state: State) -> list[float]:
        """Fraction of weights pruned per seed (see :func:`bmrsparse.metrics.pruned_fraction` for the rule)."""
        masks = jax.device_get(state.masks)
        order = [l.name for l in self.layers]
        return [
            metrics.pruned_fraction(jax.tree.map(lambda m: m[i], masks), order, self.head)
            for i in range(len(self.seeds))
        ]

    # ------------------------------------------------------------------ evaluation
    def eval_keys(self, tag: int):
        """One PRNG key per seed for evaluation ``tag`` (e.g. the epoch): independent of the other seeds."""
        return jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), 1_000_003 + int(tag)) for s in self.seeds])

    def predictive_probs(self, state: State, keys, num_samples: int) -> np.ndarray:
        r"""Posterior-predictive mean :math:`\frac1S\sum_s p(y \mid x, w_s)` on the test subset, ``[seeds, N, K]``.

        ``keys``: one PRNG key per seed (see :meth:`eval_keys`).
        """
        built, net, pre = self.built, self.net, self.preprocess
        point = self.method.point_estimate
        s = 1 if point else int(num_samples)
        bs = int(self.settings["eval_batch_size"])
        n = len(self.y_test)
        n_pad = math.ceil(n / bs) * bs
        x = np.zeros((n_pad,) + self.x_test.shape[1:], self.x_test.dtype)
        x[:n] = self.x_test
        x = jnp.asarray(x.reshape((n_pad // bs, bs) + self.x_test.shape[1:]))
        if self._predict is None:

            def predict(params, masks, key, xb_all):
                def one_sample(acc, k):
                    lat = methods.guides.sample_latents(built.sites, params, k, point_estimate=point)
                    w = methods.weights_from_latents(built, lat, masks)
                    probs = jax.lax.map(lambda xb: jax.nn.softmax(net.apply({"params": w}, pre(xb))), xb_all)
                    return acc + probs, None

                k0 = jnp.zeros(xb_all.shape[:2] + (self._num_classes(),), jnp.float32)
                acc, _ = jax.lax.scan(one_sample, k0, jax.random.split(key, s))
                return acc / s

            self._predict = jax.jit(jax.vmap(predict, in_axes=(0, 0, 0, None)))
        probs = np.asarray(self._predict(self.params(state), state.masks, keys, x))
        return probs.reshape(len(self.seeds), n_pad, -1)[:, :n]

    def _num_classes(self) -> int:
        return int(nets.NUM_CLASSES[self.dataset_name])

    def evaluate(self, state: State, tag: int, num_samples: int) -> list[dict]:
        """Per seed: ``acc``, ``ece``, ``ece_width15``, ``nll`` on the test subset and the ``pruned_fraction``.

        ``tag`` (the epoch) selects the evaluation's random draws, so a resumed run draws the same ones.
        """
        probs = self.predictive_probs(state, self.eval_keys(tag), num_samples)
        out = []
        for p, f in zip(probs, self.pruned_fraction(state)):
            m = metrics.evaluate_probs(p, self.y_test)
            m["pruned_fraction"] = f
            out.append(m)
        return out

    def posterior_mean_weights(self, state: State, key=None, num_draws: int = 256, index: int = 0) -> dict:
        r"""Posterior mean :math:`E_q[w]` of every weight as a Flax params dict.

        Under the mean-field posterior :math:`w = \gamma \hat w` with the scale :math:`\gamma` independent of
        :math:`\hat w`, so :math:`E[w] = E[\gamma]\, E[\hat w] = E[\gamma]\, \mu`: :math:`\hat w` is held at its
        mean :math:`\mu`, never sampled. :math:`E[\gamma]` is exact where the posterior allows: for point estimates,
        and for the flat prior, whose scale :math:`c = (c^{-2})^{-1/2}` with :math:`q(c^{-2}) = \mathcal{LN}(m, s^2)`
        has :math:`E[c] = e^{-m/2 + s^2/8}` (obtained by evaluating the model at
        :math:`c^{-2} = e^{m - s^2/4}`). The tiered prior's :math:`\gamma` (eq. 17) has no closed-form mean; it is
        averaged over ``num_draws`` draws of the scale variables alone (``key``). ``index`` picks the seed.
        """
        state = self.select(state, index)
        params = jax.tree.map(lambda a: a[0], self.params(state))
        built, point = self.built, self.method.point_estimate
        key = jax.random.PRNGKey(0) if key is None else key
        exact = point or self.method.prior == "flat"
        draws = 1 if exact else num_draws

        @jax.jit
        def mean_w(params, masks, key):
            def one(k):
                lat = methods.guides.sample_latents(built.sites, params, k, point_estimate=point)
                lat["w_hat"] = params["w_hat.loc"]
                if exact and not point:
                    m, s = params["c_inv_sqr.loc"], params["c_inv_sqr.scale"]
                    lat["c_inv_sqr"] = jnp.exp(m - 0.25 * s**2)
                return methods.weights_from_latents(built, lat, masks)

            ws = jax.lax.map(one, jax.random.split(key, draws))
            return jax.tree.map(lambda a: jnp.mean(a, axis=0), ws)

        return jax.device_get(mean_w(params, jax.tree.map(lambda a: a[0], state.masks), key))

    # ------------------------------------------------------------------ files
    def header(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "dataset": self.dataset_name,
            "arch": self.arch,
            "prior": self.method.prior,
            "point_estimate": self.method.point_estimate,
            "layers": [[l.name, [list(s) for _, s in l.shapes]] for l in self.layers],
            "image_shape": list(self.image_shape),
            "seeds": list(self.seeds),
        }

    def save(self, state: State, path, extra: dict | None = None, index: int | None = None) -> None:
        """Write ``state`` (and JSON-able ``extra``) to ``path`` atomically as ``.npz``.

        With ``index``, only that seed's state is written (a file for a single seed).
        """
        head = self.header()
        if index is not None:
            state = self.select(state, index)
            head["seeds"] = [self.seeds[index]]
        arrays = {}
        for p, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(state.svi_state))[0]:
            arrays["svi" + _key_to_str(p)] = np.asarray(leaf)
        for layer, leaves in jax.device_get(state.masks).items():
            for leaf, m in leaves.items():
                arrays[f"mask/{layer}/{leaf}"] = np.asarray(m)
        arrays["data_key"] = np.asarray(state.data_key)
        head = dict(head, method=self.method.name, step=int(state.step), extra=extra or {})
        arrays["header"] = np.asarray(json.dumps(head))
        atomic_savez(path, **arrays)  # with its digest: load() refuses a damaged file (bmrsparse.io)

    def load(self, path, *, require_method: bool = False) -> tuple[State, dict]:
        """Read a state written by :meth:`save` (a compatible method's, e.g. the Flat-FF warm-up for BMR-S&S).

        ``path`` may be a list of single-seed files, one per seed of this trainer, in order. Raises
        :class:`StateMismatchError` naming the difference when a file is for another data set, architecture,
        network shape, prior or seed, and :class:`bmrsparse.io.DamagedFileError` (naming the file and the command
        that remakes it) when a file is cut short, changed or without its digest. Returns ``(state, header)`` (the
        header of the first file).
        """
        if isinstance(path, (list, tuple)):
            if len(path) != len(self.seeds):
                raise StateMismatchError(f"{len(path)} state files for {len(self.seeds)} seeds")
            parts = [self._load_one(p, require_method, [s]) for p, s in zip(path, self.seeds)]
            states = [p[0] for p in parts]
            cat = lambda *a: jnp.concatenate(a, axis=0)  # noqa: E731
            state = State(jax.tree.map(cat, *[s.svi_state for s in states]), cat(*[s.data_key for s in states]),
                          jax.tree.map(cat, *[s.masks for s in states]), states[0].step)
            return state, parts[0][1]
        return self._load_one(path, require_method, self.seeds)

    def _load_one(self, path, require_method, seeds) -> tuple[State, dict]:
        arrays = load_npz(path, producer="bmrsparse.experiment.run_stage")
        head = json.loads(str(arrays.pop("header")))
        mine = dict(self.header(), seeds=list(seeds))
        for k in ("format", "dataset", "arch", "prior", "point_estimate", "layers", "image_shape", "seeds"):
            if head.get(k) != mine.get(k):
                raise StateMismatchError(
                    f"{path} was written for {k}={head.get(k)!r}, but this run has {k}={mine.get(k)!r} "
                    f"(dataset={self.dataset_name}, arch={self.arch}, method={self.method.name}). "
                    "Delete the file or point the run at a state of the same data set, architecture and prior."
                )
        if require_method and head.get("method") != self.method.name:
            raise StateMismatchError(
                f"{path} is a checkpoint of method {head.get('method')!r}, not {self.method.name!r}; delete it."
            )
        template = jax.eval_shape(self.init)
        n = len(seeds)
        flat, treedef = jax.tree_util.tree_flatten_with_path(template.svi_state)
        flat = [(p, jax.ShapeDtypeStruct((n,) + t.shape[1:], t.dtype)) for p, t in flat]
        leaves = []
        for p, t in flat:
            name = "svi" + _key_to_str(p)
            if name not in arrays or arrays[name].shape != t.shape:
                raise StateMismatchError(f"{path}: parameter {name} missing or of another shape; delete the file")
            leaves.append(jnp.asarray(arrays[name], t.dtype))
        svi_state = jax.tree_util.tree_unflatten(treedef, leaves)
        masks = {
            l.name: {leaf: jnp.asarray(arrays[f"mask/{l.name}/{leaf}"]) for leaf, _ in l.shapes} for l in self.layers
        }
        state = State(svi_state, jnp.asarray(arrays["data_key"]), masks, int(head["step"]))
        return state, head


class ProgressLog:
    """Progress lines for a training job's log, written at chunk boundaries (no host sync of their own).

    Each line reads ``step k/total, r steps/s, ETA h:mm:ss, loss L (-ELBO)``: ``k`` of the job's ``total`` SVI
    steps, the rate of its training chunks so far (compilation, pruning and evaluation not counted, so the ETA of
    the remaining steps at that rate leaves them out), and the mean training loss (the negative ELBO estimate, mean
    over seeds) of the steps since the previous line. A line is written before the steps since the previous one
    could exceed ``fraction`` of ``total`` with the next chunk (the caller keeps chunks at most ``max_chunk`` steps;
    :func:`progress_chunk` gives a size that allows one line per ``fraction``), and after the last step.
    """

    def __init__(self, total: int, *, done: int = 0, fraction: float = 0.1, max_chunk: int = 1, write=print):
        self.total, self.done, self.last = int(total), int(done), int(done)
        self.gap, self.max_chunk, self.write = fraction * int(total), int(max_chunk), write
        self.seconds, self.timed = 0.0, 0
        self.loss_sum, self.loss_steps = 0.0, 0

    def chunk(self, n: int, seconds: float, losses) -> None:
        self.done += int(n)
        self.seconds += float(seconds)
        self.timed += int(n)
        self.loss_sum += float(np.mean(losses)) * n
        self.loss_steps += int(n)
        if self.done >= self.total or self.done + self.max_chunk - self.last > self.gap:
            rate = self.timed / self.seconds if self.seconds > 0 else float("nan")
            left = (self.total - self.done) / rate if rate > 0 else float("nan")
            eta = str(datetime.timedelta(seconds=round(left))) if np.isfinite(left) else "?"
            loss = self.loss_sum / self.loss_steps
            self.write(f"step {self.done}/{self.total}, {rate:.1f} steps/s, ETA {eta}, loss {loss:.6g} (-ELBO)",
                       flush=True)
            self.last, self.loss_sum, self.loss_steps = self.done, 0.0, 0


def progress_chunk(chunk_size: int, total: int, fraction: float = 0.1) -> int:
    """The chunk size to use so that :class:`ProgressLog` can write a line at least once per ``fraction`` of a
    job's ``total`` steps: ``chunk_size`` capped at that many steps (at least 1). Speed only: the steps' numbers
    do not depend on how they are cut into chunks."""
    return max(1, min(int(chunk_size), int(fraction * int(total))))


class _NoBar:
    def update(self, n):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def _progress(total, desc, enabled):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
