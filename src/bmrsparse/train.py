r"""Training: NumPyro SVI with Optax AdaBelief in compiled chunks of steps, and the state that continues a run.

A :class:`~bmrsparse.model.Model` is a network bound to a method and a data set's shapes. A :class:`Trainer` adds
what training needs: the SVI object, the training data and one or more seeds, and the compiled step and loop. Its state (:class:`State`) is everything a run needs to continue bit-for-bit: the SVI state
(guide parameters, optimiser state, the SVI PRNG key), the minibatch PRNG key, the keep-masks and the step counter.
Several seeds train in one compiled program: every array of the state has a leading seed axis and the step is
``vmap``-ped over it (one seed is a batch of one).

Pruning belongs to the method: :meth:`Trainer.prune` calls the method's declared prune function
(:attr:`bmrsparse.methods.Method.prune`) with a :class:`~bmrsparse.methods.PruneContext`.

The training data stay on the device as ``uint8``; a chunk of SVI steps runs as one compiled program (see the
``training.step_loop`` setting, :data:`bmrsparse.settings.STEP_LOOPS`), compiled ahead of time; the host only syncs
between chunks (progress bar, checkpoints, non-finite loss check).
"""

from __future__ import annotations

import contextlib
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI, TraceGraph_ELBO, TraceMeanField_ELBO

from . import _rng, methods, metrics
from .model import FORMAT_VERSION, Model, uses_primitive
from .progress import ProgressLog, progress_bar, progress_chunk
from .settings import STEP_LOOPS, TrainingSettings

__all__ = ["Trainer", "State", "select", "Model", "FORMAT_VERSION", "NonFiniteLossError", "StateMismatchError",
           "ProgressLog", "progress_chunk", "uses_primitive", "PRUNE_KEY_TAG"]

#: Folded into a seed's key, plus the epoch, for the prune function's key (evaluation uses
#: :data:`bmrsparse.metrics.EVAL_KEY_TAG`): the draws of pruning, evaluation and training never coincide.
PRUNE_KEY_TAG = 2_000_003


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


def select(state: State, index: int) -> State:
    """The state of seed number ``index`` alone (a batch of one)."""
    take = lambda a: a[index : index + 1]  # noqa: E731
    return State(jax.tree.map(take, state.svi_state), take(state.data_key), jax.tree.map(take, state.masks),
                 state.step)


class Trainer:
    """Trains one (dataset, architecture, method) with NumPyro SVI.

    Args:
      arch: architecture name (see :data:`bmrsparse.nets.NETWORKS`).
      method: method name (see :data:`bmrsparse.methods.METHODS`).
      dataset: a :class:`bmrsparse.data.Dataset`.
      seeds: integer seeds trained together (vmapped); the same seeds give the same numbers on CPU.
      settings: the stage's :class:`~bmrsparse.settings.TrainingSettings` (a plain mapping is read with
        :meth:`~bmrsparse.settings.TrainingSettings.from_mapping`).

    ``model`` is its :class:`Model`; its attributes (``method``, ``net``, ``layers``, ``head``, ``built``, ...) are
    also the trainer's.
    """

    def __init__(self, *, arch: str, method: str, dataset, seeds, settings: TrainingSettings = TrainingSettings()):
        self.seeds = [int(x) for x in ([seeds] if np.isscalar(seeds) else seeds)]
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers, got {seeds!r}")
        self.model = model = Model(arch=arch, method=method, dataset=dataset, settings=settings)
        self.arch, self.method, self.dataset_name = arch, model.method, model.dataset_name
        # the settings with the AdaBelief step size resolved: the settings', else the method's declared rate
        self.settings = settings = model.settings.replace(
            learning_rate=float(model.settings.learning_rate or self.method.learning_rate))
        self.net, self.layers, self.head, self.built = model.net, model.layers, model.head, model.built
        self.preprocess, self.input_shape, self.image_shape = model.preprocess, model.input_shape, model.image_shape
        self.n_data, self.num_classes = model.n_data, model.num_classes
        self.batch_size = int(settings.batch_size)
        # training.elbo: the mean-field guides' estimator; a point estimate (MAP) always uses TraceMeanField_ELBO
        elbo = TraceGraph_ELBO if settings.elbo == "trace_graph" and not self.method.point_estimate else None
        self.learning_rate = settings.learning_rate
        adabelief = optax.adabelief(self.learning_rate)
        self.svi = SVI(self.built.model, self.built.guide, adabelief, loss=(elbo or TraceMeanField_ELBO)())

        self.x_train = jnp.asarray(dataset.x_train)
        self.y_train = jnp.asarray(dataset.y_train, jnp.int32)
        n_test = settings.test_subset or dataset.x_test.shape[0]
        n_test = min(int(n_test), dataset.x_test.shape[0])
        self.x_test = np.asarray(dataset.x_test[:n_test])
        self.y_test = np.asarray(dataset.y_test[:n_test])
        self._run = None
        self.compile_seconds = 0.0
        self.step_loop = None  # "host" or "device" once compiled (training.step_loop resolved)
        self._prune = None

    # ------------------------------------------------------------------ state
    def init(self) -> State:
        """A fresh state: guide parameters initialised as the authors do, all weights kept, one row per seed."""
        masks = methods.all_kept(self.layers)
        x0, y0 = self.x_train[: self.batch_size], self.y_train[: self.batch_size]

        def init_one(key, x0, y0):
            svi_key, data_key = jax.random.split(key)
            return self.svi.init(svi_key, x0, y0, masks=masks, train=False), data_key

        keys = jnp.stack([jax.random.PRNGKey(s) for s in self.seeds])
        # one compiled program (cached on disk with the jobs' compilation cache): run op by op, the first
        # initialisation of a network compiles each of its small operations, several times slower
        # (docs/design-notes.md)
        svi_state, data_key = jax.jit(jax.vmap(init_one, in_axes=(0, None, None)))(keys, x0, y0)
        n = len(self.seeds)
        masks = jax.tree.map(lambda m: jnp.broadcast_to(m, (n,) + m.shape), masks)
        return State(svi_state, data_key, masks, 0)

    def params(self, state: State) -> dict:
        """Constrained guide parameters (``<site>.loc``, ``<site>.scale``), leading seed axis."""
        return self.svi.get_params(state.svi_state)

    def select(self, state: State, index: int) -> State:
        """The state of seed number ``index`` alone (a batch of one)."""
        return select(state, index)

    # ------------------------------------------------------------------ training
    def _compile(self, state: State):
        """Compile the training step(s) ahead of time (timed: :attr:`compile_seconds`).

        ``step_loop`` (setting, :data:`bmrsparse.settings.STEP_LOOPS`): ``"device"`` runs a chunk as one compiled
        ``lax.fori_loop``; ``"host"`` calls one compiled step per SVI step from Python without syncing (dispatch is
        asynchronous). On CPU, XLA runs convolutions inside a while loop slower than in a plain program, while
        dense networks' Bayesian steps run faster in the loop; so ``"auto"`` picks ``"host"`` for networks whose
        program holds XLA convolutions on CPU (:attr:`Model.xla_convolutions`: the Mixer's and ViT's patch
        embeddings; LeNet-5's convolutions are matrix products there) and ``"device"`` otherwise. Both give the same
        numbers.
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

        mode = self.settings.step_loop
        has_conv = self.model.xla_convolutions
        on_cpu = jax.default_backend() == "cpu"
        if mode == "auto":
            mode = "host" if on_cpu and has_conv else "device"
        if mode not in STEP_LOOPS:
            raise ValueError(f"training.step_loop must be one of {list(STEP_LOOPS)}, got {mode!r}")
        carry0, masks0 = self._carry(state.svi_state, state.data_key), self._unbatch(state.masks)
        t0 = time.perf_counter()
        if mode == "device":
            def chunk(carry, masks, x, y, num_steps):
                return jax.lax.fori_loop(0, num_steps, lambda _, c: body_seeds(c, masks, x, y), carry)

            # on CPU, networks without XLA convolutions: the straight-line Threefry (the same bits, cheaper random
            # draws; see bmrsparse._rng). Not with XLA convolutions: such a step program takes very long to compile.
            # Not for the Bayesian steps of several seeds: vmapped, the draws are not kept in their own buffers
            # (see _rng.once) and the hash would be evaluated once per consumer.
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
        bar = progress_bar(num_steps, desc, progress)
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

    # ------------------------------------------------------------------ pruning
    def prune(self, state: State, reference: dict | None = None, *, epoch: int = 0) -> State:
        """Prune before ``epoch`` by the method's declared prune function (:attr:`bmrsparse.methods.Method.prune`).

        The function gets a :class:`~bmrsparse.methods.PruneContext` per seed (built model, output layer,
        settings, and this seed's prune key, seed and ``epoch``); masks accumulate. ``reference``: the keep-masks
        (leading seed axis) of the state of :attr:`~bmrsparse.methods.Method.reference` of the same epoch, for
        methods that declare one (e.g. pruning baselines matched to BMR-S&S's per-layer counts).
        """
        prune_fn = self.method.prune
        if prune_fn is None:
            raise ValueError(f"method {self.method.name!r} does not prune")
        if self.method.reference is not None and reference is None:
            raise ValueError(f"method {self.method.name!r} prunes against the state of {self.method.reference!r}: "
                             "pass its masks as reference")
        if self._prune is None:
            built, head, s = self.built, self.head, self.settings

            def prune_one(params, masks, ref, key, seed, ep):
                return prune_fn(methods.PruneContext(built, head, s, key, seed, ep), params, masks, ref)

            self._prune = jax.jit(jax.vmap(prune_one, in_axes=(0, 0, 0, 0, 0, None)))
        keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(sd), PRUNE_KEY_TAG + int(epoch)) for sd in self.seeds])
        masks = self._prune(self.params(state), state.masks, reference, keys, jnp.asarray(self.seeds, jnp.int32),
                            jnp.int32(epoch))
        return State(state.svi_state, state.data_key, masks, state.step)

    def pruned_fraction(self, state: State) -> list[float]:
        """Fraction of weights pruned per seed (see :func:`bmrsparse.metrics.pruned_fractions`)."""
        return metrics.pruned_fractions(self.model, state.masks)

    # ------------------------------------------------------------------ evaluation (bmrsparse.metrics)
    def eval_keys(self, tag: int):
        """:func:`bmrsparse.metrics.eval_keys` of this trainer's seeds."""
        return metrics.eval_keys(self.seeds, tag)

    def predictive_probs(self, state: State, keys, num_samples: int) -> np.ndarray:
        """:func:`bmrsparse.metrics.predictive_probs` on this trainer's test subset, ``[seeds, N, K]``."""
        return metrics.predictive_probs(self.model, self.params(state), state.masks, keys, self.x_test,
                                        num_samples=num_samples)

    def evaluate(self, state: State, tag: int, num_samples: int, x=None, y=None) -> list[dict]:
        """:func:`bmrsparse.metrics.evaluate_state` on this trainer's test subset (or on images ``x`` with labels
        ``y``), one dict per seed."""
        x, y = (self.x_test, self.y_test) if x is None else (x, y)
        return metrics.evaluate_state(self.model, self.params(state), state.masks, x, y,
                                      metrics.eval_keys(self.seeds, tag), num_samples=num_samples)

    def posterior_mean_weights(self, state: State, key=None, num_draws: int = 256, index: int = 0) -> dict:
        """:func:`bmrsparse.metrics.posterior_mean_weights` of seed number ``index``."""
        one = select(state, index)
        return metrics.posterior_mean_weights(self.model, jax.tree.map(lambda a: a[0], self.params(one)),
                                              jax.tree.map(lambda a: a[0], one.masks), key=key, num_draws=num_draws)

    def header(self) -> dict:
        return self.model.header(self.seeds)


