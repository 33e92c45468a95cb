"""Parameter counts and memory estimates against hand-computed numbers (arithmetic in the comments)."""

from __future__ import annotations

import pytest

from rlvla_cli.config.model import OpenVLAModelConfig, OpenVLAOFTModelConfig
from rlvla_cli.config.model_openpi import OpenPIModelConfig
from rlvla_cli.placement import memory as mem
from rlvla_cli.placement import model_sizes as ms
from rlvla_cli.placement.estimate import MemorySettings, actor_process_memory, rollout_process_memory
from rlvla_cli.placement.profiles import model_profile

GIB = 1024**3


# ---------------------------------------------------------------------------------------------- parameter counts
def test_llama2_7b_count_by_hand():
    # per layer: attention 4 x 4096^2 = 67,108,864; SwiGLU 3 x 4096 x 11008 = 135,266,304; 2 RMSNorms 8,192
    # -> 202,383,360 x 32 layers = 6,476,267,520 + final norm 4,096 = 6,476,271,616
    # + embeddings and untied LM head 2 x 32064 x 4096 = 262,668,288 -> 6,738,939,904
    assert ms.llama2_7b_stack().params() == 6_476_271_616
    assert ms.openvla_arch().other["embed_tokens"] * 2 == 262_668_288


def test_openvla_checkpoint_and_built_counts():
    # the published openvla-7b checkpoint: 7,541,237,184 parameters
    assert ms.openvla_arch(as_built=False).total_params() == 7_541_237_184
    # as built (the towers end at the block OpenVLA reads): minus DINOv2's last block 12,598,272 and norm 2,048,
    # SigLIP's last block 15,239,504 and norm 2,304, SigLIP's MAP head 15,238,352 = 43,080,480 fewer
    assert ms.openvla_arch().total_params() == 7_541_237_184 - 43_080_480 == 7_498_156_704


def test_vision_towers_by_hand():
    # DINOv2 ViT-L/14 layer: qkv 1024*3072+3072, proj 1024^2+1024, fc1 1024*4096+4096, fc2 4096*1024+1024,
    # 2 LayerNorms 4*1024, LayerScale 2*1024 = 12,598,272
    assert ms.dinov2_vit_large().layer_params() == 12_598_272
    # SigLIP So400m layer: qkv 1152*3456+3456, proj 1152^2+1152, fc1 1152*4304+4304, fc2 4304*1152+1152, norms 4608
    assert ms.siglip_so400m().layer_params() == 3_984_768 + 1_328_256 + 4_962_512 + 4_959_360 + 4_608


def test_pi0_count_by_hand():
    # SigLIP (HF, 224 px) 412,442,352 + projector 1152*2048+2048 = 2,361,344
    # Gemma 2B layers: q 2048*2048, k,v 2048*256 each, o 2048*2048, GeGLU 3*2048*16384, norms 2*2048
    #   = 110,104,576 x 18 + final norm 2,048 = 1,981,884,416; tied embeddings 257152*2048 = 526,647,296
    # expert layers: q 1024*2048, k,v 1024*256, o 2048*1024, 3*1024*4096, norms 2048 = 17,303,552 x 18 + 1,024
    #   = 311,464,960; projections: action in 33,792, out 32,800, state 33,792, action-time MLP 3,147,776
    vlm = 412_442_352 + 2_361_344 + 1_981_884_416 + 526_647_296
    expected = vlm + 311_464_960 + 33_792 + 32_800 + 33_792 + 3_147_776
    assert ms.pi0_arch().total_params() == expected == 3_238_048_528
    profile = model_profile(OpenPIModelConfig())  # train_expert_only: expert + projections
    assert profile.trainable_params == 311_464_960 + 33_792 + 32_800 + 33_792 + 3_147_776 == 314_713_120


def test_counts_match_transformers_modules_on_meta():
    accelerate = pytest.importorskip("accelerate")
    transformers = pytest.importorskip("transformers")
    with accelerate.init_empty_weights():
        llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
            vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
            num_attention_heads=32, num_key_value_heads=32))
        siglip = transformers.SiglipVisionModel(transformers.SiglipVisionConfig(
            hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, image_size=224,
            patch_size=14, vision_use_head=False))
    assert sum(p.numel() for p in llama.parameters()) == ms.llama2_7b_stack().params() + 2 * 32064 * 4096
    assert sum(p.numel() for p in siglip.parameters()) == ms.siglip_so400m().params()


@pytest.mark.parametrize("cfg", [
    OpenVLAModelConfig(size="tiny"),
    OpenVLAModelConfig(size="small", add_value_head=True),
    OpenPIModelConfig(size="tiny", is_lora=True, lora_rank=4),
    OpenPIModelConfig(size="tiny", pi05=True, add_value_head=True),
], ids=["openvla-tiny", "openvla-small-value", "pi0-tiny-lora", "pi05-tiny-value"])
def test_counts_match_the_models_package(cfg):
    from rlvla_cli.models.registry import count_parameters

    counts = count_parameters(cfg)
    profile = model_profile(cfg)
    assert (profile.total_params, profile.trainable_params) == (counts["total"], counts["trainable"])


# ------------------------------------------------------------------------------------------------ case 1: 7B LoRA
def _openvla_lora() -> OpenVLAModelConfig:
    return OpenVLAModelConfig(is_lora=True, lora_rank=32, add_value_head=False)


def test_openvla_7b_lora_trainable_by_hand():
    # LoRA r=32 adds r*(d_in+d_out) per linear:
    # Llama layer: q,k,v,o 4*32*8192 = 1,048,576; gate,up 2*32*15104 = 966,656; down 483,328 -> 2,498,560 x 32
    #   = 79,953,920
    # DINOv2 layer (23 built): qkv 32*4096 + proj 32*2048 + fc1 32*5120 + fc2 32*5120 = 524,288 x 23 = 12,058,624
    # SigLIP layer (26 built): 32*4608 + 32*2304 + 32*5456 + 32*5456 = 570,368 x 26 = 14,829,568
    # projector: 32*(2176+8704) + 32*(8704+4096) + 32*(4096+4096) = 1,019,904
    lora = 79_953_920 + 12_058_624 + 14_829_568 + 1_019_904
    profile = model_profile(_openvla_lora())
    assert profile.trainable_params == lora == 107_862_016
    assert profile.total_params == 7_498_156_704 + lora


def test_openvla_7b_lora_training_state_by_hand():
    profile = model_profile(_openvla_lora())
    state, acts = actor_process_memory(profile, MemorySettings(micro_batch_size=1, zero_stage=2), dp_size=1)
    # bf16 weights 2 B x 7,606,018,720 = 15,212,037,440; bf16 grads 2 B x 107,862,016 = 215,724,032;
    # Adam fp32 master+m+v 12 B x 107,862,016 = 1,294,344,192 -> 16,722,105,664 B = 15.57 GiB
    assert state == {"weights": 15_212_037_440, "grads": 215_724_032, "optimizer": 1_294_344_192}
    # activations, micro batch 1, bf16, no checkpointing. LM sequence = BOS 1 + 256 patches + 20 prompt + 7 actions
    # = 284 tokens. Per token per layer (memory.layer_activation_elements_per_token):
    #   Llama: norms 2*(3+1)*4096 + attention 3*4096 + 2*4096 + SwiGLU 4*11008 = 97,280 el. = 194,560 B,
    #   final norm 3*4096 = 12,288 el. -> (32 x 97,280 + 12,288) x 284 x 2 B = 1,775,140,864
    #   DINOv2 (261 tokens: 256 patches + cls + 4 registers; 23 built layers, no final norm): norms 2*2*1024,
    #   attention 5*1024, MLP 2*4096, LayerScale 2*1024 = 19,456 el. = 38,912 B -> 23 x 38,912 x 261 = 233,588,736
    #   SigLIP (256 tokens, 26 layers): 4*1152 + 5*1152 + 2*4304 = 18,976 el. = 37,952 B -> 252,608,512
    # logits: 284 x 32064 x 2 (bf16) + 7 x 32064 x 8 (fp32 log-softmax + grad) = 20,007,936
    # x 1.45: the measured under-count of LoRA stacks without checkpointing (profiles.OPENVLA_LORA_ACTIVATION_FACTOR)
    assert acts == {"activations": int((1_775_140_864 + 233_588_736 + 252_608_512) * 1.45), "logits": 20_007_936}


# ------------------------------------------------------------------------------------- case 2: 7B full fine-tune
def test_openvla_7b_full_finetune_zero_stages_by_hand():
    p = 7_498_156_704
    profile = model_profile(OpenVLAModelConfig())
    assert profile.trainable_params == profile.total_params == p
    one = mem.training_state_bytes(p, 0, mixed_precision=True, zero_stage=2, dp_size=1)
    assert one.total == 16 * p == 119_970_507_264  # 2 + 2 + 12 B per parameter = 111.7 GiB
    # ZeRO-2 over 8 ranks: weights 2P = 14,996,313,408; grads 2P/8 = 1,874,539,176; optimizer 12P/8 = 11,247,235,056
    z2 = mem.training_state_bytes(p, 0, mixed_precision=True, zero_stage=2, dp_size=8)
    assert (z2.params, z2.grads, z2.optimizer) == (14_996_313_408, 1_874_539_176, 11_247_235_056)
    # ZeRO-1 shards only the optimizer; ZeRO-3 everything: 16P/8 = 2 B per parameter
    z1 = mem.training_state_bytes(p, 0, mixed_precision=True, zero_stage=1, dp_size=8)
    assert (z1.params, z1.grads, z1.optimizer) == (2 * p, 2 * p, 11_247_235_056)
    z3 = mem.training_state_bytes(p, 0, mixed_precision=True, zero_stage=3, dp_size=8)
    assert z3.total == 2 * p
    # optimizer offload: only bf16 weights + grads stay: 4 B x P = 29,992,626,816
    off = mem.training_state_bytes(p, 0, mixed_precision=True, zero_stage=2, dp_size=1, offload_optimizer=True)
    assert off.total == 4 * p
    # pure fp32: weights 4 + grads 4 + Adam m, v 8 = 16 B as well, but no master copy
    fp32 = mem.training_state_bytes(p, 0, mixed_precision=False, zero_stage=0, dp_size=1)
    assert (fp32.params, fp32.grads, fp32.optimizer) == (4 * p, 4 * p, 8 * p)


# ------------------------------------------------------------------------------------------- case 3: pi0 full
def test_pi0_full_finetune_by_hand():
    cfg = OpenPIModelConfig(train_expert_only=False)
    profile = model_profile(cfg)
    p = 3_238_048_528
    assert profile.trainable_params == p
    state, acts = actor_process_memory(profile, MemorySettings(micro_batch_size=1, zero_stage=2), dp_size=1)
    assert sum(state.values()) == 16 * p == 51_808_776_448  # 48.25 GiB on one GPU
    # prefix = 2 images x 256 + 48 text = 560 tokens through SigLIP (512) and Gemma; expert: 10 actions + state = 11
    # Gemma 2B per token per layer: norms 2*(4+1)*2048 + attention 3*2048 + 2*256 + GeGLU 4*16384 = 92,672 el.,
    #   final norm 4*2048 = 8,192 -> (18 x 92,672 + 8,192) x 560 x 2 B = 1,877,442,560
    # SigLIP: 4*1152 + 5*1152 + 2*4304 = 18,976 el., final LayerNorm 1152 -> (27 x 18,976 + 1,152) x 512 x 2
    #   = 525,828,096
    # expert: 2*5*1024 + 3*2048 + 2*256 + 4*4096 = 33,280 el., final norm 4,096 -> (18 x 33,280 + 4,096) x 11 x 2
    #   = 13,268,992 (one pass: flow_sde scores one denoising step)
    # the pass's attention keeps cat(prefix, expert) K/V: 2 x 18 layers x 571 tokens x 256 (1 KV head) x 2 B
    #   = 10,524,672
    assert acts == {"activations": 1_877_442_560 + 525_828_096 + 13_268_992 + 10_524_672, "logits": 0}


def test_pi0_expert_only_keeps_prefix_kv_and_scores_every_step_with_joint_logprob():
    cfg = OpenPIModelConfig(noise_method="flow_noise", noise_logvar_range=(0.08, 0.16))  # joint_logprob -> True
    profile = model_profile(cfg)
    _, acts = actor_process_memory(profile, MemorySettings(micro_batch_size=2), dp_size=1)
    # expert: (18 x 33,280 + 4,096) el. x 11 tokens x 2 B x 4 denoising passes x 2 samples = 106,151,936
    # frozen prefix K/V: 2 x 18 layers x 560 tokens x 256 (1 KV head) x 2 B = 10,321,920 per sample x 2
    # each of the 4 passes keeps cat(prefix, expert) K/V: 2 x 18 x 4 x 571 x 256 x 2 B = 42,098,688 per sample x 2
    assert acts["activations"] == 106_151_936 + 2 * 10_321_920 + 2 * 42_098_688


# ------------------------------------------------------------------------------------------ smaller pieces
def test_gradient_checkpointing_formula():
    llama = ms.llama2_7b_stack()
    # kept: each layer's input 32 x 4096 el. per token + one recomputed layer 97,280 + final norm 12,288
    # = 240,640 el. x 284 tokens x 2 B
    assert mem.stack_activation_bytes(llama, 284, 1, checkpointing=True) == 240_640 * 284 * 2 == 136_683_520


def test_rollout_memory_openvla_by_hand():
    profile = model_profile(OpenVLAModelConfig())
    weights, runtime = rollout_process_memory(profile, MemorySettings(), batch=8)
    assert weights == {"weights": 2 * 7_498_156_704}
    # KV cache: 2 (k, v) x 32 layers x 284 tokens x 8 obs x 4096 x 2 B = 1,191,182,336
    # largest transient layer: Llama 97,280 el. x 284 x 8 x 2 B = 442,040,320;
    # sampling logits 8 x 7 x 32064 x 4 = 7,182,336
    assert runtime == {"kv_cache": 1_191_182_336, "activations": 442_040_320 + 7_182_336}


def test_rollout_oft_decodes_in_parallel_without_kv_cache():
    profile = model_profile(OpenVLAOFTModelConfig(num_action_chunks=8))
    _, runtime = rollout_process_memory(profile, MemorySettings(), batch=8)
    assert runtime["kv_cache"] == 0  # one parallel pass over 1 + 256 + 20 + 56 = 333 tokens
    assert runtime["activations"] == 97_280 * 333 * 8 * 2 + 8 * 56 * 32064 * 4


def test_simulator_memory():
    mib = 1024**2
    assert mem.simulator_bytes("builtin", 64) == 0
    # ManiSkill, 8 envs, 640x480 GPU rendering and physx_cuda:
    # 384 MiB + 8 x 16 MiB + 8 x 307,200 px x 16 B + 1 GiB + 8 x 4 MiB
    expected = 384 * mib + 128 * mib + 8 * 307_200 * 16 + 1024 * mib + 32 * mib
    assert mem.simulator_bytes("maniskill", 8, image_pixels=307_200, gpu_render=True, gpu_physics=True) == expected
    assert mem.simulator_bytes("maniskill", 8, gpu_render=False) == 0
    # LIBERO with EGL: 96 MiB per env + 2 cameras of 256x256 x 16 B
    assert mem.simulator_bytes("libero", 4, image_pixels=65_536, cameras=2) == 4 * 96 * mib + 4 * 65_536 * 2 * 16
    assert mem.simulator_bytes("libero", 4, gpu_render=False) == 0


@pytest.mark.parametrize("text,expected", [
    ("80GiB", 80 * GIB), ("24GB", 24 * 10**9), ("81920MiB", 80 * GIB), ("1.5TiB", int(1.5 * 1024**4)),
    ("24g", 24 * GIB), ("1000", 1000), (" 40 GiB ", 40 * GIB),
])
def test_parse_memory_size(text, expected):
    assert mem.parse_memory_size(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "80 apples", "-1GiB", "0GiB", "1e3GiB"])
def test_parse_memory_size_rejects(text):
    with pytest.raises(ValueError):
        mem.parse_memory_size(text)


def test_lora_on_fused_and_separate_qkv():
    # fused qkv (timm): r*(h + 3h); separate q, k, v: 3 r (h + h); same weights
    fused = ms.dinov2_vit_large()
    separate = ms.TransformerStack("x", 1, 1024, 4096, 16, 16, 64, gated_mlp=False, bias=True, layer_norm=True,
                                   extra_per_layer=2048)
    assert fused.layer_params() == separate.layer_params()
    assert fused.lora_params(1) // 24 == 4096 + 2048 + 5120 + 5120
    assert separate.lora_params(1) == 3 * 2048 + 2048 + 5120 + 5120
