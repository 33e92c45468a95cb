"""Synthetic OpenVLA / OpenVLA-OFT directories in the exact layout of the published ones, at tiny size.

What is real about them (the reference each follows):
- ``RealPrismaticTree``: the module tree the reference model has (openvla/openvla ``prismatic/extern/hf/
  modeling_prismatic.py`` over timm towers): every tower block including the last, each tower's final ``norm``,
  SigLIP's ``attn_pool`` (timm ``AttentionPoolLatent``: ``latent``, ``q``, ``kv``, ``proj``, ``norm``,
  ``mlp.fc1`` / ``mlp.fc2``), and RLinf's value head (rlinf/models/embodiment/modules/value_head.py:
  ``value_head.mlp.{0,2,4}``, no bias on the last layer). peft adapters are saved around this tree, as RLinf's
  ``get_peft_model(model, LoraConfig(target_modules=RLINF_LORA_TARGETS))`` (rlinf/models/__init__.py) does.
- ``write_real_checkpoint``: bf16 shards + ``model.safetensors.index.json``, the config.json keys of
  openvla/openvla-7b (``text_config`` holding only model_type / pad_token_id / torch_dtype / vocab_size plus the
  tiny dimensions, which the 7B file leaves to LlamaConfig's defaults), ``dataset_statistics.json``, and a
  Llama-2-style ``tokenizer.json`` (SentencePiece BPE with byte fallback, ``<s>`` prepended, the empty "\u2581"
  token, ``<PAD>`` added after the base vocabulary).

Used by tests/models/test_openvla_fidelity.py and ``rlvla inspect-checkpoint``'s tests.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from rlvla_cli.models.presets import OpenVLADims, openvla_dims
from rlvla_cli.models.prismatic import PrismaticVLA
from rlvla_cli.models.vision import Block

# RLinf's default LoRA targets (rlinf/models/__init__.py, get_model): vision, projector, LLM and lm_head.
RLINF_LORA_TARGETS = ["proj", "qkv", "fc1", "fc2", "q", "kv", "fc3", "out_proj", "q_proj", "k_proj", "v_proj",
                      "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]
PROMPT_WORDS = ("in what action should the robot take to out pick up put place open close the red block drawer "
                "spoon on towel and then microwave carrot plate eggplant basket").split()
STATS = {
    "bridge_orig": {
        "action": {"q01": [-0.03, -0.04, -0.03, -0.1, -0.1, -0.2, 0.0], "q99": [0.03, 0.04, 0.04, 0.1, 0.1, 0.2, 1.0],
                   "mask": [True] * 6 + [False]},
        "proprio": {"q01": [-1.0] * 3, "q99": [1.0] * 3},
    },
}


class AttentionPoolLatent(nn.Module):
    """timm's SigLIP MAP head, parameters only (OpenVLA never runs it)."""

    def __init__(self, dim: int, mlp_dim: int):
        super().__init__()
        self.latent = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, mlp_dim), nn.Linear(mlp_dim, dim)


class RLinfValueHead(nn.Module):
    """RLinf's ValueHead(hidden, (512, 128), V, gelu, bias_last=False)."""

    def __init__(self, hidden: int, outputs: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden, 512), nn.GELU(), nn.Linear(512, 128), nn.GELU(),
                                 nn.Linear(128, outputs, bias=False))
        nn.init.normal_(self.mlp[4].weight, std=0.5)  # non-zero so a test sees it load

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


class RealPrismaticTree(nn.Module):
    """The reference OpenVLA(-OFT) module tree at ``dims`` (see the module docstring); ``vla`` is rlvla's network
    whose parameters it shares (``vla.vision_backbone`` etc. are the same modules, extended in place)."""

    def __init__(self, dims: OpenVLADims, image_size: int = 28, pad_token_id: int = 1024,
                 value_outputs: int | None = None, proprio_dim: int | None = None):
        super().__init__()
        vla = PrismaticVLA(dims, image_size, pad_token_id, "eager")
        for tower, tdims in ((vla.vision_backbone.featurizer, dims.dino), (vla.vision_backbone.fused_featurizer,
                                                                            dims.siglip)):
            tower.blocks.append(Block(tdims))  # the last block, index depth - 1
            tower.norm = nn.LayerNorm(tdims.embed_dim, eps=1e-6)
            if tdims.attn_pool:
                tower.attn_pool = AttentionPoolLatent(tdims.embed_dim, tdims.mlp_dim)
        self.vision_backbone, self.projector = vla.vision_backbone, vla.projector
        self.language_model = vla.language_model
        if value_outputs:
            self.value_head = RLinfValueHead(dims.llm.hidden_size, value_outputs)
        if proprio_dim:  # OFT's ProprioProjector (prismatic/models/projectors.py): fc1, GELU, fc2
            from rlvla_cli.models.openvla_oft import ProprioProjector

            self.proprio_projector = ProprioProjector(proprio_dim, dims.llm.hidden_size)

    # PrismaticForConditionalGeneration's accessors: peft's save (save_embedding_layers, on when lm_head is a
    # target) looks them up and then also writes lm_head's base weight into the adapter file, as for RLinf's model
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()


def llama_style_tokenizer(base_vocab_size: int):
    """A ``PreTrainedTokenizerFast`` shaped like Llama-2's tokenizer.json: BPE with byte fallback over
    ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, the 256 ``<0x..>`` bytes, then "\u2581"-prefixed pieces learned from
    robot prompts; normaliser prepends "\u2581" and maps spaces to it; ``<s>`` prepended; ``<PAD>`` added at
    ``base_vocab_size``; filler pieces up to ``base_vocab_size`` so the last 256 ids are the action tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from rlvla_cli.models.tokenization import PROMPT

    learner = Tokenizer(models.BPE(unk_token="<unk>"))
    learner.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=min(base_vocab_size - 256 - 259, 400), show_progress=False,
                                  initial_alphabet=["\u2581"])
    corpus = [PROMPT.format(task=" ".join(PROMPT_WORDS[i:i + 5])) for i in range(len(PROMPT_WORDS))] * 3
    learner.train_from_iterator(corpus, trainer)
    learned = json.loads(learner.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for piece in sorted(learned["vocab"], key=learned["vocab"].get):
        vocab.setdefault(piece, len(vocab))
    while len(vocab) < base_vocab_size:
        vocab[f"<filler_{len(vocab)}>"] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.add_special_tokens({"pad_token": "<PAD>"})
    return fast


def real_config_json(dims: OpenVLADims, image_size: int, pad_token_id: int, stats: dict) -> dict:
    """openvla/openvla-7b's config.json keys; ``text_config`` as published plus the tiny dimensions (the 7B file
    omits them: LlamaConfig's defaults apply) and ``rlvla_vision_dims`` (the 7B towers are known by timm id)."""
    from dataclasses import asdict

    llm = dims.llm
    return {
        "arch_specifier": "no-align+fused-gelu-mlp", "architectures": ["OpenVLAForActionPrediction"],
        "auto_map": {"AutoConfig": "configuration_prismatic.OpenVLAConfig",
                     "AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction"},
        "hf_llm_id": "meta-llama/Llama-2-7b-hf", "image_resize_strategy": "resize-naive",
        "image_sizes": [image_size, image_size], "llm_backbone_id": "llama2-7b-pure", "llm_max_length": 2048,
        "model_type": "openvla", "n_action_bins": 256, "norm_stats": stats, "output_projector_states": False,
        "pad_to_multiple_of": 64, "pad_token_id": pad_token_id,
        "text_config": {"model_type": "llama", "pad_token_id": pad_token_id, "torch_dtype": "bfloat16",
                        "vocab_size": llm.vocab_size, "hidden_size": llm.hidden_size,
                        "intermediate_size": llm.intermediate_size, "num_hidden_layers": llm.num_hidden_layers,
                        "num_attention_heads": llm.num_attention_heads,
                        "num_key_value_heads": llm.num_key_value_heads},
        "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
        "timm_override_act_layers": [None, None], "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
        "use_fused_vision_backbone": True, "vision_backbone_id": "dinosiglip-vit-so-224px",
        "rlvla_vision_dims": [asdict(dims.dino), asdict(dims.siglip)],
    }


def tiny_real_dims() -> OpenVLADims:
    """The tiny preset with Llama-style GQA off (the 7B has none) and rms_norm_eps left to the default."""
    dims = openvla_dims("tiny")
    return replace(dims, llm=replace(dims.llm, num_key_value_heads=dims.llm.num_attention_heads))


def write_real_checkpoint(directory: Path, seed: int = 0, *, value_outputs: int | None = None,
                          config_stats: dict | None = None, file_stats: dict | None = None) -> RealPrismaticTree:
    """Write a tiny checkpoint in the real layout (module docstring) and return the tree whose weights it holds
    (bf16-rounded, so a loaded model can be compared bit for bit). ``config_stats`` / ``file_stats``: the
    ``norm_stats`` of config.json and the dataset_statistics.json (default: STATS in both)."""
    from rlvla_cli.models.checkpoint import save_state_dict

    torch.manual_seed(seed)
    dims = tiny_real_dims()
    tokenizer = llama_style_tokenizer(dims.llm.base_vocab_size)
    tree = RealPrismaticTree(dims, 28, tokenizer.pad_token_id, value_outputs)
    with torch.no_grad():
        for p in tree.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    state = {k: v.to(torch.bfloat16) for k, v in tree.state_dict().items()}
    directory.mkdir(parents=True, exist_ok=True)
    files = save_state_dict(state, directory, max_shard_bytes=300_000)
    assert len(files) > 1, "the synthetic checkpoint should be sharded"
    config = real_config_json(dims, 28, tokenizer.pad_token_id, STATS if config_stats is None else config_stats)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "dataset_statistics.json").write_text(json.dumps(STATS if file_stats is None else file_stats))
    tokenizer.save_pretrained(str(directory))
    tok_config = json.loads((directory / "tokenizer_config.json").read_text())
    tok_config.pop("backend", None)  # openvla-7b's tokenizer_config.json names the Llama class
    tok_config.update(tokenizer_class="LlamaTokenizer", legacy=False, add_bos_token=True, add_eos_token=False)
    (directory / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))
    return tree


def write_peft_adapter(tree: nn.Module, directory: Path, base_name: str | None, *, rank: int = 4,
                       targets: list[str] | None = None, seed: int = 1):
    """Save a peft adapter around ``tree`` (RLinf's targets by default) with random non-zero ``lora_B``, its
    adapter_config.json's ``base_model_name_or_path`` set to ``base_name``; returns the ``PeftModel``."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=targets or RLINF_LORA_TARGETS,
                        init_lora_weights="gaussian", base_model_name_or_path=base_name)
    model = get_peft_model(tree, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.save_pretrained(str(directory))
    saved = json.loads((directory / "adapter_config.json").read_text())
    saved["base_model_name_or_path"] = base_name
    (directory / "adapter_config.json").write_text(json.dumps(saved, indent=2))
    return model
