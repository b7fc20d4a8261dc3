"""The autoregressive PFN (docs/design.md §3).

Each pair ``(x_i, y_i)`` gives two tokens: a *query* token ``q_i`` (from ``x_i``) and a
*pair* token ``p_i`` (from ``x_i`` and ``y_i``). There is no positional encoding; the
mask carries position:

* ``p_i`` attends to ``p_1..p_i``            (a causal transformer over pairs);
* ``q_i`` attends to ``p_1..p_{i-1}`` and itself;
* nothing attends to a query except itself.

Tokens are laid out as ``[p_1..p_K, q_1..q_K]``; attention is permutation-equivariant, so
this is the interleaved mask of docs/design.md §3 with rows and columns reordered. Logits are read
at the query tokens: ``logits[:, i]`` is the predictive distribution of ``y_i`` given the
pairs before i and ``x_i``.

Pair tokens never see queries or the future, so their keys/values can be cached and
extended one pair at a time (:class:`KVCache`): appending a pair never changes what
earlier tokens computed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

__all__ = ["PFN", "KVCache", "ModelConfig", "attention_mask"]

QUERY, PAIR = 0, 1


def attention_mask(context_length: int, device=None) -> torch.Tensor:
    """Boolean (2K, 2K) mask for tokens ``[p_1..p_K, q_1..q_K]``; True = may attend."""
    k = context_length
    idx = torch.arange(k, device=device)
    mask = torch.zeros(2 * k, 2 * k, dtype=torch.bool, device=device)
    mask[:k, :k] = idx[None, :] <= idx[:, None]  # pair i -> pairs j <= i
    mask[k:, :k] = idx[None, :] < idx[:, None]  # query i -> pairs j < i
    mask[k:, k:] = torch.eye(k, dtype=torch.bool, device=device)  # query i -> itself
    return mask


def interleaved_mask(context_length: int) -> torch.Tensor:
    """The same mask in the interleaved order ``q_1 p_1 q_2 p_2 ...`` (for display)."""
    k = context_length
    order = torch.stack([torch.arange(k) + k, torch.arange(k)], dim=1).reshape(-1)  # q_i, p_i
    return attention_mask(k)[order][:, order]


class KVCache:
    """Preallocated keys/values of pair tokens, per layer: (B, H, slots, d_head).

    ``length`` pairs are stored; the slots after them are scratch space where the keys and
    values of tokens in flight (queries, pairs being appended) are written before attending,
    so attention reads one contiguous prefix of the cache and nothing is copied.
    """

    def __init__(
        self, config: ModelConfig, batch_size: int, capacity: int, device=None, dtype=torch.float32, scratch: int = 1
    ):
        d_head = config.d_model // config.n_heads
        shape = (config.n_layers, batch_size, config.n_heads, capacity + scratch, d_head)
        self.keys = torch.empty(shape, device=device, dtype=dtype)
        self.values = torch.empty(shape, device=device, dtype=dtype)
        self.capacity = capacity  # pairs it can hold
        self.length = 0

    @property
    def slots(self) -> int:
        return self.keys.shape[3]

    def repeat_interleave(self, repeats: int) -> KVCache:
        """A cache of ``repeats`` consecutive copies of every sequence, pairs and free slots."""
        copy = object.__new__(KVCache)
        copy.keys, copy.values = self.keys.repeat_interleave(repeats, 1), self.values.repeat_interleave(repeats, 1)
        copy.capacity, copy.length = self.capacity, self.length
        return copy


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.ln_attn = nn.LayerNorm(config.d_model)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.ln_mlp = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, config.d_mlp),
            nn.GELU(approximate="tanh"),
            nn.Linear(config.d_mlp, config.d_model),
        )

    def _split_heads(self, z: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> (B, H, T, d_head)."""
        b, t, _ = z.shape
        return z.view(b, t, self.n_heads, -1).transpose(1, 2)

    def _heads(self, h: torch.Tensor):
        """(B, T, d_model) -> q, k, v each (B, H, T, d_head)."""
        return [self._split_heads(z) for z in self.qkv(self.ln_attn(h)).split(h.shape[-1], dim=-1)]

    def _finish(self, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = attn.shape
        h = h + self.proj(attn.transpose(1, 2).reshape(b, t, -1))
        return h + self.mlp(self.ln_mlp(h))

    def forward(self, h: torch.Tensor, mask: torch.Tensor, first_output: int = 0) -> torch.Tensor:
        """Full pass over tokens h (B, T, d_model); returns the outputs of tokens ``first_output:``.

        Every token still serves as key and value; skipping outputs nobody reads (the pair
        tokens after the last layer) saves their query projection, attention rows and MLP.
        """
        if first_output == 0:
            q, k, v = self._heads(h)
        else:
            d, x = h.shape[-1], self.ln_attn(h)
            weight, bias = self.qkv.weight, self.qkv.bias
            q = self._split_heads(F.linear(x[:, first_output:], weight[:d], bias[:d]))
            k, v = (self._split_heads(z) for z in F.linear(x, weight[d:], bias[d:]).split(d, dim=-1))
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[first_output:])
        return self._finish(h[:, first_output:], attn)

    def step(self, h: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, start: int, mask: torch.Tensor | None):
        """Incremental pass of new tokens h (B, T, d_model) against a key/value cache.

        ``keys``/``values`` (B, H, slots, d_head) hold the cached pairs in ``[:start]``; the
        new tokens' keys and values are written to ``[start:start + T]`` and every new token
        attends to ``[:start + T]`` under ``mask`` (T, start + T), or to all of it if None.
        """
        q, stop = self.write_kv(h, keys, values, start), start + h.shape[1]
        attn = F.scaled_dot_product_attention(q, keys[:, :, :stop], values[:, :, :stop], attn_mask=mask)
        return self._finish(h, attn)

    def write_kv(self, h: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, start: int) -> torch.Tensor:
        """Store the keys/values of tokens h in the cache slots from ``start``; return their queries."""
        q, k, v = self._heads(h)
        keys[:, :, start : start + h.shape[1]] = k
        values[:, :, start : start + h.shape[1]] = v
        return q


class PFN(nn.Module):
    """Autoregressive PFN: (x, y) -> the output head's parameters (bucket logits, and for a
    location-scale head a location and log-scale before them) of every y_i given the pairs
    before i; :mod:`lrpfn.buckets` reads them as a distribution."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed_x = nn.Linear(config.dim, config.d_model)
        self.embed_y = nn.Linear(1, config.d_model, bias=False)
        self.embed_role = nn.Embedding(2, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_final = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.n_outputs)
        self._mask_cache: dict[tuple, torch.Tensor] = {}
        self.apply(self._init_weights)
        # GPT-2 style: residual projections scaled down with depth; zero head = uniform start.
        # Query and key weights start larger (config.qk_init_std), so attention is not uniform
        # from the first step: at 0.02 most seeds of the default experiment settled early in a
        # basin ~0.05 nats above the others and stayed there (docs/results.md, "Choosing the default").
        for block in self.blocks:
            nn.init.normal_(block.qkv.weight[: 2 * config.d_model], std=config.qk_init_std)
            nn.init.normal_(block.proj.weight, std=0.02 / math.sqrt(2 * config.n_layers))
            nn.init.normal_(block.mlp[2].weight, std=0.02 / math.sqrt(2 * config.n_layers))
        nn.init.zeros_(self.head.weight)

    @staticmethod
    def _init_weights(module: nn.Module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _queries(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_x(x) + self.embed_role.weight[QUERY]

    def _pairs(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.embed_x(x) + self.embed_y(y.unsqueeze(-1)) + self.embed_role.weight[PAIR]

    def _mask(self, context_length: int, device) -> torch.Tensor:
        key = (context_length, str(device))
        if key not in self._mask_cache:
            self._mask_cache[key] = attention_mask(context_length, device)
        return self._mask_cache[key]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, K, D), y (B, K) -> outputs (B, K, n_outputs); outputs[:, i] predict y_i."""
        k = x.shape[1]
        ex, role = self.embed_x(x), self.embed_role.weight
        h = torch.cat([ex + self.embed_y(y.unsqueeze(-1)) + role[PAIR], ex + role[QUERY]], dim=1)  # (B, 2K, d_model)
        mask = self._mask(k, x.device)
        for block in self.blocks[:-1]:
            h = block(h, mask)
        h = self.blocks[-1](h, mask, first_output=k)  # only the queries' outputs are read
        return self.head(self.ln_final(h))

    # --- incremental inference over a pair cache -------------------------------------

    def new_cache(self, batch_size: int, capacity: int, queries: int = 1) -> KVCache:
        """A cache for ``capacity`` pairs per sequence that predicts at up to ``queries`` queries per call."""
        p = next(self.parameters())
        return KVCache(self.config, batch_size, capacity, device=p.device, dtype=p.dtype, scratch=queries)

    def step(self, cache: KVCache, x_query: torch.Tensor | None = None, x_pair=None, y_pair=None):
        """Predict at new queries and/or append new pairs to ``cache``.

        ``x_query`` (B, Q, D): outputs (B, Q, n_outputs) for y at each query given the cached
        pairs (queries see neither each other nor the pairs appended in the same call).
        ``x_pair`` (B, P, D), ``y_pair`` (B, P): pairs appended to the cache, in order.
        Returns the query logits, or None without queries.
        """
        logits = None if x_query is None else self._predict(cache, x_query)
        if x_pair is not None:
            self._append(cache, x_pair, y_pair)
        return logits

    def _incremental(self, cache: KVCache, h: torch.Tensor, causal: bool) -> torch.Tensor | None:
        """Run new tokens through every layer against the cache; new tokens sit in the slots
        after the cached pairs. ``causal`` (pairs): new tokens also see earlier new tokens, and
        only their keys/values matter, so the last layer stores them and stops (returns None).
        Otherwise (queries) each new token sees only the cache and itself."""
        start, t = cache.length, h.shape[1]
        if start + t > cache.slots:
            raise ValueError(f"cache holds {cache.capacity} pairs; {t} new tokens after {start} pairs overflow it")
        mask = None
        if t > 1:
            mask = torch.ones(t, start + t, dtype=torch.bool, device=h.device)
            new = torch.ones(t, t, dtype=torch.bool, device=h.device)
            mask[:, start:] = torch.tril(new) if causal else torch.eye(t, dtype=torch.bool, device=h.device)
        for layer, block in enumerate(self.blocks):
            if causal and layer == len(self.blocks) - 1:
                block.write_kv(h, cache.keys[layer], cache.values[layer], start)
                return None
            h = block.step(h, cache.keys[layer], cache.values[layer], start, mask)
        return h

    def _predict(self, cache: KVCache, x_query: torch.Tensor) -> torch.Tensor:
        h = self._incremental(cache, self._queries(x_query), causal=False)
        return self.head(self.ln_final(h))

    def _append(self, cache: KVCache, x_pair: torch.Tensor, y_pair: torch.Tensor) -> None:
        n_new = x_pair.shape[1]
        if cache.length + n_new > cache.capacity:
            raise ValueError(f"cache holds {cache.capacity} pairs; appending {n_new} to {cache.length} overflows it")
        self._incremental(cache, self._pairs(x_pair, y_pair), causal=True)
        cache.length += n_new
