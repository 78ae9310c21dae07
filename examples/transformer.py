"""A tiny decoder-only transformer, trained with Adam on next-token prediction.

Two layers, width 16, one attention head per layer, a feed-forward block of
width 32, residual blocks without normalisation (so that too large a step can blow
the activations up, as in a network without it), learned positions. The task: 6 fixed
sequences of 6 tokens over a vocabulary of 8, each counting upwards modulo 8
from its own start with its own stride (1, 2 or 3). Predicting the next token
needs the stride, which only attention to earlier tokens can read. The loss is
the mean cross-entropy of every next token: 2.31 at initialisation with
seed 0 (guessing uniformly gives log 8 = 2.08).

Parameter groups (the top-level keys of `init`): "embed" (token and position
embeddings and the read-out), "attn" (queries, keys, values, outputs) and
"ff" (the feed-forward blocks). `lr.attn` and `lr.ff` set the learning rates
of attention and feed-forward layers (the plane of Torkamandi 2025, "Mapping
the Edge of Chaos"); "embed" trains at `lr`.
"""

import jax
import jax.numpy as jnp
import numpy as np

VOCAB = 8
LENGTH = 6  # tokens per sequence; the model predicts tokens 2..LENGTH from those before
SEQUENCES = 6
WIDTH = 16
HIDDEN = 32
LAYERS = 2

HYPERS = {}  # nothing of its own: the plane is two learning rates

OPTIMIZER = {"optimizer": "adam", "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


def data(seed):
    rng = np.random.default_rng(seed)
    start = rng.integers(0, VOCAB, SEQUENCES)
    stride = rng.integers(1, 4, SEQUENCES)
    tokens = (start[:, None] + stride[:, None] * np.arange(LENGTH)[None, :]) % VOCAB
    return {"tokens": tokens.astype(np.int32)}


def init(seed, hp):
    keys = iter(jax.random.split(jax.random.PRNGKey(seed), 4 + 6 * LAYERS))

    def dense(fan_in, fan_out):
        return jax.random.normal(next(keys), (fan_in, fan_out)) / jnp.sqrt(fan_in)

    return {
        "embed": {
            "tokens": jax.random.normal(next(keys), (VOCAB, WIDTH)),
            "positions": 0.1 * jax.random.normal(next(keys), (LENGTH, WIDTH)),
            "out": dense(WIDTH, VOCAB),
        },
        "attn": [{"q": dense(WIDTH, WIDTH), "k": dense(WIDTH, WIDTH), "v": dense(WIDTH, WIDTH),
                  "o": dense(WIDTH, WIDTH)} for _ in range(LAYERS)],
        "ff": [{"in": dense(WIDTH, HIDDEN), "out": dense(HIDDEN, WIDTH)} for _ in range(LAYERS)],
    }


def loss(params, data, hp):
    tokens = data["tokens"].astype(jnp.int32)  # whatever dtype the data arrive in
    e = params["embed"]
    h = e["tokens"][tokens] + e["positions"][None, :, :]  # (sequences, length, width)
    causal = jnp.tril(jnp.ones((LENGTH, LENGTH), dtype=bool))
    for a, f in zip(params["attn"], params["ff"]):
        q, k, v = h @ a["q"], h @ a["k"], h @ a["v"]
        scores = jnp.einsum("sid,sjd->sij", q, k) / jnp.sqrt(WIDTH)
        scores = jnp.where(causal, scores, -1e9)
        h = h + jnp.einsum("sij,sjd->sid", jax.nn.softmax(scores, axis=-1), v) @ a["o"]
        h = h + jax.nn.gelu(h @ f["in"]) @ f["out"]
    logits = h[:, :-1] @ e["out"] / jnp.sqrt(WIDTH)  # predict token t+1 from tokens up to t
    target = tokens[:, 1:]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, target[..., None], axis=-1).mean()
