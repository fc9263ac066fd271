"""bmrsparse: Bayesian sparsification of deep networks with stochastic Bayesian model reduction.

Reproduces Marković, Friston & Kiebel (2023), *Bayesian sparsification for deep neural networks with
Bayesian model reduction*, with JAX, NumPyro, Optax and Flax.
"""

__version__ = "0.1.0"
