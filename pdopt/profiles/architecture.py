"""Model architecture from a Hugging Face `config.json`: parameters, FLOPs and bytes per token.

Pure functions over the few config fields that matter for serving cost (docs/profiles.md,
"Estimates", Eqs. E1-E8). Families: Llama, Mistral, Qwen2/Qwen3 (dense and MoE), Mixtral,
MiniMax-M2, gpt-oss, DeepSeek-V2/V3 and Kimi-K2 (MLA attention, MoE with shared experts).
gpt-oss's alternate sliding-window layers are counted as full attention (KV overstated). Norms,
biases and rotary tables are left out: they are well under 0.1% of the parameters of every
bundled model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdopt.inputfiles import FileTooLargeError, InputFileError, read_limited
from pdopt.scenario.problems import Problem, ScenarioError

DENSE_TYPES = {"llama", "mistral", "qwen2", "qwen3"}
# Every layer an MoE of `num_local_experts` experts of width `intermediate_size`, no shared expert
# (MiniMax-M2 and gpt-oss lay out their configs as Mixtral does).
MIXTRAL_LIKE_TYPES = {"mixtral", "minimax_m2", "gpt_oss"}
MOE_TYPES = MIXTRAL_LIKE_TYPES | {"qwen2_moe", "qwen3_moe"}
MLA_TYPES = {"deepseek_v2", "deepseek_v3", "kimi_k2"}  # Kimi-K2 is DeepSeek-V3's architecture
SUPPORTED_TYPES = DENSE_TYPES | MOE_TYPES | MLA_TYPES
GATED_MLP_MATRICES = 3  # gate, up and down projections of a SwiGLU MLP
#: Hugging Face config.json files are a few kB; anything near this limit is not one.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ModelArch:
    """The shape of a decoder-only transformer, as far as serving cost is concerned."""

    name: str
    model_type: str
    hidden_size: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int  # query/key head dimension (GQA); for MLA see the mla_* fields
    intermediate_size: int  # dense MLP width
    vocab_size: int
    tie_word_embeddings: bool
    moe_layers: int = 0  # layers whose MLP is a mixture of experts
    experts: int = 0  # routed experts per MoE layer
    experts_per_token: int = 0
    expert_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0  # total width of always-on shared experts
    mla_q_lora_rank: int | None = None
    mla_kv_lora_rank: int = 0
    mla_qk_nope_head_dim: int = 0
    mla_qk_rope_head_dim: int = 0
    mla_v_head_dim: int = 0

    @property
    def is_mla(self) -> bool:
        return self.mla_kv_lora_rank > 0

    @property
    def is_moe(self) -> bool:
        return self.moe_layers > 0

    @property
    def dense_layers(self) -> int:
        return self.layers - self.moe_layers

    # --- parameters (Eqs. E1-E4) -------------------------------------------------------------

    @property
    def attention_params_per_layer(self) -> int:
        """Eq. E1 (GQA: q, k, v, o projections) or Eq. E2 (MLA: low-rank q and kv, o)."""
        d, h = self.hidden_size, self.heads
        if not self.is_mla:
            return d * (h + 2 * self.kv_heads) * self.head_dim + h * self.head_dim * d
        qk = self.mla_qk_nope_head_dim + self.mla_qk_rope_head_dim
        r_kv = self.mla_kv_lora_rank
        if self.mla_q_lora_rank:
            q = d * self.mla_q_lora_rank + self.mla_q_lora_rank * h * qk
        else:
            q = d * h * qk
        kv = d * (r_kv + self.mla_qk_rope_head_dim) + r_kv * h * (
            self.mla_qk_nope_head_dim + self.mla_v_head_dim
        )
        o = h * self.mla_v_head_dim * d
        return q + kv + o

    @property
    def dense_mlp_params(self) -> int:
        """Eq. E3: a gated MLP has 3 x hidden x intermediate weights."""
        return GATED_MLP_MATRICES * self.hidden_size * self.intermediate_size

    @property
    def expert_params(self) -> int:
        """One routed expert (a gated MLP of width expert_intermediate_size)."""
        return GATED_MLP_MATRICES * self.hidden_size * self.expert_intermediate_size

    @property
    def shared_expert_params(self) -> int:
        return GATED_MLP_MATRICES * self.hidden_size * self.shared_expert_intermediate_size

    @property
    def router_params(self) -> int:
        return self.hidden_size * self.experts

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """The output projection (its weights are the embedding's when tied)."""
        return self.vocab_size * self.hidden_size

    @property
    def attention_params(self) -> int:
        return self.layers * self.attention_params_per_layer

    @property
    def routed_expert_params(self) -> int:
        """All routed experts of all MoE layers."""
        return self.moe_layers * self.experts * self.expert_params

    @property
    def always_active_mlp_params(self) -> int:
        """Dense MLPs, shared experts and routers: the MLP weights every token uses."""
        return self.dense_layers * self.dense_mlp_params + self.moe_layers * (
            self.shared_expert_params + self.router_params
        )

    @property
    def total_params(self) -> int:
        """Eq. E4: every weight held in memory."""
        head = 0 if self.tie_word_embeddings else self.lm_head_params
        return (self.attention_params + self.always_active_mlp_params + self.routed_expert_params
                + self.embedding_params + head)

    @property
    def active_params(self) -> int:
        """Eq. E5: weights one token multiplies through (the embedding lookup is not a matmul)."""
        routed = self.moe_layers * self.experts_per_token * self.expert_params
        return self.attention_params + self.always_active_mlp_params + routed + self.lm_head_params

    # --- per-token cost (Eqs. E6-E8) ----------------------------------------------------------

    def kv_bytes_per_token(self, kv_dtype_bytes: float) -> float:
        """Eq. E6: K and V of every layer (GQA), or MLA's compressed latent plus rope key."""
        if self.is_mla:
            latent = self.mla_kv_lora_rank + self.mla_qk_rope_head_dim
            return self.layers * latent * kv_dtype_bytes
        return 2 * self.layers * self.kv_heads * self.head_dim * kv_dtype_bytes

    def prefill_flops_per_token(self, input_tokens: float) -> float:
        """Eq. E7: mean FLOPs per prompt token of a prompt of `input_tokens` tokens.

        2 FLOPs per active weight (without the output projection, needed for the last token
        only) plus causal attention: position t attends to t tokens with 2 x heads x (qk + v)
        dims FLOPs each; the mean of t over 1..n is (n + 1) / 2."""
        qk, v = self._attention_dims(prefill=True)
        matmul = 2 * (self.active_params - self.lm_head_params)
        return matmul + self.layers * self.heads * (qk + v) * (input_tokens + 1)

    def decode_flops_per_token(self, context_tokens: float) -> float:
        """Eq. E8: FLOPs of one generated token at a resident context of `context_tokens`
        (MLA decodes in the absorbed form: queries and values live in the kv_lora space)."""
        qk, v = self._attention_dims(prefill=False)
        return 2 * self.active_params + 2 * self.layers * self.heads * (qk + v) * context_tokens

    def prefill_attention_dims(self) -> tuple[int, int]:
        """(query-key, value) dims per head of prefill attention (MLA: the expanded form)."""
        return self._attention_dims(prefill=True)

    def prefill_attention_flops_per_token(self, input_tokens: float) -> float:
        """The causal attention part of Eq. E7 (scores and values, no weights):
        L h (qk + v) (n + 1) per prompt token."""
        qk, v = self.prefill_attention_dims()
        return self.layers * self.heads * (qk + v) * (input_tokens + 1)

    def decode_attention_dims(self) -> tuple[int, int]:
        """(query-key, value) dims per head of decode attention (MLA: the absorbed form)."""
        return self._attention_dims(prefill=False)

    def _attention_dims(self, prefill: bool) -> tuple[int, int]:
        if not self.is_mla:
            return self.head_dim, self.head_dim
        if prefill:
            return self.mla_qk_nope_head_dim + self.mla_qk_rope_head_dim, self.mla_v_head_dim
        return self.mla_kv_lora_rank + self.mla_qk_rope_head_dim, self.mla_kv_lora_rank


def _field(config: Mapping[str, Any], key: str, source: str, *, default: Any = None,
           minimum: int = 1) -> Any:
    value = config.get(key, default)
    if value is None:
        raise ScenarioError([Problem(key, "required field is missing")], source)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScenarioError([Problem(key, f"must be an integer >= {minimum}, got {value!r}")],
                            source)
    return value


def arch_from_config(config: Mapping[str, Any], name: str, source: str | None = None) -> ModelArch:
    """Read a Hugging Face config.json (as a mapping) into a ModelArch. Raises ScenarioError
    naming the source and the field for anything missing or unsupported."""
    src = source or name
    if "text_config" in config and "hidden_size" not in config:
        config = config["text_config"]  # multimodal wrappers keep the language model here
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_TYPES:
        raise ScenarioError(
            [Problem("model_type", f"'{model_type}' is not supported by the estimator "
                     f"(supported: {', '.join(sorted(SUPPORTED_TYPES))})")], src)
    d = _field(config, "hidden_size", src)
    layers = _field(config, "num_hidden_layers", src)
    heads = _field(config, "num_attention_heads", src)
    kv_heads = _field(config, "num_key_value_heads", src, default=heads)
    head_dim = config.get("head_dim") or d // heads
    common: dict[str, Any] = dict(
        name=name, model_type=model_type, hidden_size=d, layers=layers, heads=heads,
        kv_heads=kv_heads, head_dim=head_dim,
        intermediate_size=_field(config, "intermediate_size", src),
        vocab_size=_field(config, "vocab_size", src),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
    )
    if model_type in DENSE_TYPES:
        return ModelArch(**common)
    if model_type in MIXTRAL_LIKE_TYPES:
        return ModelArch(
            **common, moe_layers=layers,
            experts=_field(config, "num_local_experts", src),
            experts_per_token=_field(config, "num_experts_per_tok", src),
            expert_intermediate_size=common["intermediate_size"],
        )
    if model_type in ("qwen2_moe", "qwen3_moe"):
        step = _field(config, "decoder_sparse_step", src, default=1)
        dense_only = set(config.get("mlp_only_layers") or [])
        moe_layers = sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
        return ModelArch(
            **common, moe_layers=moe_layers,
            experts=_field(config, "num_experts", src),
            experts_per_token=_field(config, "num_experts_per_tok", src),
            expert_intermediate_size=_field(config, "moe_intermediate_size", src),
            shared_expert_intermediate_size=_field(
                config, "shared_expert_intermediate_size", src, default=0, minimum=0),
        )
    # DeepSeek-V2/V3: the first `first_k_dense_replace` layers are dense, then every
    # `moe_layer_freq`-th layer is MoE; shared experts have the routed experts' width.
    first_dense = _field(config, "first_k_dense_replace", src, default=0, minimum=0)
    freq = _field(config, "moe_layer_freq", src, default=1)
    moe_layers = sum(1 for i in range(first_dense, layers) if i % freq == 0)
    expert_width = _field(config, "moe_intermediate_size", src)
    shared = _field(config, "n_shared_experts", src, default=0, minimum=0)
    return ModelArch(
        **common, moe_layers=moe_layers,
        experts=_field(config, "n_routed_experts", src),
        experts_per_token=_field(config, "num_experts_per_tok", src),
        expert_intermediate_size=expert_width,
        shared_expert_intermediate_size=shared * expert_width,
        mla_q_lora_rank=config.get("q_lora_rank"),
        mla_kv_lora_rank=_field(config, "kv_lora_rank", src),
        mla_qk_nope_head_dim=_field(config, "qk_nope_head_dim", src),
        mla_qk_rope_head_dim=_field(config, "qk_rope_head_dim", src),
        mla_v_head_dim=_field(config, "v_head_dim", src),
    )


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a config.json; ScenarioError naming the file for unreadable or non-JSON content.

    A regular file of at most MAX_CONFIG_BYTES (pdopt.inputfiles): a FIFO or a device is refused
    without blocking or reading it."""
    p = Path(path)
    try:
        data = json.loads(read_limited(p, MAX_CONFIG_BYTES, "model configs").decode("utf-8"))
    except FileTooLargeError as e:
        raise ScenarioError([Problem("", str(e))], str(p)) from None
    except InputFileError as e:
        raise ScenarioError([Problem("", f"cannot read model config: {e}")], str(p)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ScenarioError([Problem("", f"not a JSON model config: {e}")], str(p)) from None
    if not isinstance(data, dict):
        raise ScenarioError([Problem("", "expected a JSON object (a Hugging Face config.json)")],
                            str(p))
    return data
