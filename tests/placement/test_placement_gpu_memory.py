"""On a GPU: the memory model's activation, KV-cache and CUDA-context numbers against what torch measures.

Real transformers layers at full width (Llama-2-7B: 4096 / 11008; Gemma 2B: 2048 / 16384, 1 KV head) but a
few layers only, bf16, SDPA attention. Run on the device: ``pytest -m gpu tests/placement``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from rlvla_cli.placement import memory as mem
from rlvla_cli.placement import model_sizes as ms

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

LAYERS = 4


def _decoder(kind: str):
    import gc

    import transformers

    gc.collect()  # free the previous test's model before measuring this one
    torch.cuda.empty_cache()

    if kind == "llama":
        cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=4096, intermediate_size=11008,
                                       num_hidden_layers=LAYERS, num_attention_heads=32, num_key_value_heads=32)
        stack = ms.llama_stack(layers=LAYERS)
        model = transformers.LlamaModel(cfg)
    else:
        cfg = transformers.GemmaConfig(vocab_size=256, hidden_size=2048, intermediate_size=16384,
                                       num_hidden_layers=LAYERS, num_attention_heads=8, num_key_value_heads=1,
                                       head_dim=256)
        stack = ms.gemma_stack(2048, 16384, LAYERS, 8, 1, 256)
        model = transformers.GemmaModel(cfg)
    cfg._attn_implementation = "sdpa"
    return model.to("cuda", torch.bfloat16).train(), stack


def _retained_after_forward(model, tokens: int, batch: int, checkpointing: bool) -> int:
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    x = torch.randn(batch, tokens, model.config.hidden_size, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    out = model(inputs_embeds=x, use_cache=False).last_hidden_state
    torch.cuda.synchronize()
    retained = torch.cuda.memory_allocated() - before - out.numel() * out.element_size()
    del out
    return retained


@pytest.mark.parametrize("kind", ["llama", "gemma"])
@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "checkpointed"])
def test_saved_activations_match_the_formula(kind, checkpointing):
    model, stack = _decoder(kind)
    tokens, batch = 284, 4
    measured = _retained_after_forward(model, tokens, batch, checkpointing)
    predicted = mem.stack_activation_bytes(stack, tokens, batch, checkpointing=checkpointing)
    if checkpointing:  # after the forward only the layer inputs are kept; one layer is recomputed in backward
        predicted -= mem.layer_activation_elements_per_token(stack) * tokens * batch * 2
    del model
    print(f"{kind} {'ckpt' if checkpointing else 'plain'}: measured {measured:,} predicted {predicted:,} "
          f"ratio {measured / predicted:.3f}")
    assert 0.8 < measured / predicted < 1.25


def test_lora_adds_no_activations_beyond_the_formula():
    """peft LoRA (r=32, every linear, no dropout) on the Llama layers: the frozen base still keeps the same
    tensors for backward (gradients flow through it to the adapters); the adapters' r-wide outputs are tiny."""
    peft = pytest.importorskip("peft")
    model, stack = _decoder("llama")
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    # DeepSpeed's bf16 engine casts the whole module, adapters included, to bf16; peft alone would upcast
    # the adapters to fp32 and keep fp32 copies of every adapted input (+37 % measured on an H200)
    config = peft.LoraConfig(r=32, lora_alpha=32, target_modules=targets)
    model = peft.get_peft_model(model, config, autocast_adapter_dtype=False)
    measured = _retained_after_forward(model, 284, 4, checkpointing=False)
    predicted = mem.stack_activation_bytes(stack, 284, 4, checkpointing=False)
    print(f"llama lora: measured {measured:,} predicted {predicted:,} ratio {measured / predicted:.3f}")
    assert 0.8 < measured / predicted < 1.25


def test_vit_block_activations_match_the_formula():
    """The OpenVLA towers' blocks as ``models/vision.py`` builds them (DINOv2-L dims, LayerScale)."""
    from rlvla_cli.models.presets import ViTDims
    from rlvla_cli.models.vision import Block

    dims = ViTDims(1024, LAYERS, 16, 4096, layer_scale=True)
    blocks = torch.nn.Sequential(*(Block(dims) for _ in range(LAYERS))).to("cuda", torch.bfloat16)
    x = torch.randn(4, 261, 1024, device="cuda", dtype=torch.bfloat16)
    before = torch.cuda.memory_allocated()
    out = blocks(x)
    measured = torch.cuda.memory_allocated() - before - out.numel() * 2
    stack = ms.truncated_tower(ms.vit_stack("dino", 1024, LAYERS + 1, 16, 4096, 14, 224, layer_scale=True))
    predicted = mem.stack_activation_bytes(stack, 261, 4, checkpointing=False)
    print(f"vit plain: measured {measured:,} predicted {predicted:,} ratio {measured / predicted:.3f}")
    assert 0.8 < measured / predicted < 1.25


def test_kv_cache_matches_the_formula():
    model, stack = _decoder("llama")
    model.eval()
    x = torch.randn(8, 284, 4096, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        before = torch.cuda.memory_allocated()
        out = model(inputs_embeds=x, use_cache=True)
        kv = torch.cuda.memory_allocated() - before - out.last_hidden_state.numel() * 2
    assert abs(kv - mem.kv_cache_bytes(stack, 284, 8)) / mem.kv_cache_bytes(stack, 284, 8) < 0.05


def test_cuda_context_is_about_half_a_gib():
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    baseline = total - free  # this process's context + anything else on the GPU
    code = (
        "import torch\n"
        "a = torch.randn(1024, 1024, device='cuda', dtype=torch.bfloat16); (a @ a).sum().item()\n"
        "free, total = torch.cuda.mem_get_info()\n"
        "print(total - free - torch.cuda.memory_reserved())\n"
    )
    used = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    context = used - baseline
    print(f"CUDA context + cuBLAS workspace of a fresh process: {context / 2**20:.0f} MiB")
    assert 0.5 * mem.CUDA_CONTEXT_BYTES < context < 2 * mem.CUDA_CONTEXT_BYTES
