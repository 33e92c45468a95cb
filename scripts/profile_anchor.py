"""The plain transformers + peft anchor rlvla's OpenVLA-OFT step is compared against (issue 18).

A Llama-2-7B-shaped ``transformers.LlamaForCausalLM`` (OpenVLA's language model: 32 layers, 4096 wide, 11008 MLP,
32064-token vocabulary) in bf16 with a peft LoRA (r 32, alpha 32) on every linear layer, ``--tokens`` tokens per
sample (336: OFT's quickstart sequence, 1 + 256 patches + prompt + 56 action slots + stop), the loss on the last
56 positions (OFT's action slots), torch AdamW on the adapters. It has no vision towers and no value head: what
rlvla adds on top of it is theirs to account for. Nothing here is rlvla code: it is the yardstick.

Timed (CUDA events around whole calls, after a warm-up): a no-grad forward at ``batch`` (the rollout's shape) and a
LoRA update of ``samples`` samples in micro-batches of ``micro`` with one AdamW step every ``global_batch`` samples
(the quickstart: 80 samples, micro 8, global 40). FLOPs are counted with ``torch.utils.flop_counter`` (SDPA as math
so attention is counted); the physical limit is FLOPs / ``LIMIT_FLOPS`` (790 TFLOP/s: what a large bf16 matmul
reaches on an H100 / H200, /work/shared/device/README.md).

    python scripts/profile_anchor.py --out anchor.json                 # GPU machine
    python scripts/profile_anchor.py --tiny --device cpu --out /tmp/a.json   # CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

LIMIT_FLOPS = 790e12  # bf16 dense matmul FLOP/s measured on H100/H200 (the "physical limit" of the issue)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class AnchorShape:
    hidden: int = 4096
    intermediate: int = 11008
    layers: int = 32
    heads: int = 32
    vocab: int = 32064
    tokens: int = 336
    loss_positions: int = 56
    rank: int = 32

    @classmethod
    def tiny(cls) -> AnchorShape:
        return cls(hidden=64, intermediate=128, layers=2, heads=4, vocab=512, tokens=48, loss_positions=8, rank=4)


def build_anchor(shape: AnchorShape, device: str, dtype: torch.dtype):
    """LlamaForCausalLM (random weights, SDPA attention) + peft LoRA on every linear layer of the decoder."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                         num_hidden_layers=shape.layers, num_attention_heads=shape.heads, tie_word_embeddings=False)
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    lora = LoraConfig(r=shape.rank, lora_alpha=shape.rank, lora_dropout=0.0, target_modules=LORA_TARGETS)
    return get_peft_model(model, lora)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> float:
    """Mean seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def anchor_loss(model, ids: torch.Tensor, labels: torch.Tensor, shape: AnchorShape) -> torch.Tensor:
    """Cross-entropy on the last ``loss_positions`` positions (logits of those positions only)."""
    logits = model(input_ids=ids, logits_to_keep=shape.loss_positions + 1).logits[:, :-1]
    return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten())


def make_update(model, shape: AnchorShape, samples: int, micro: int, global_batch: int, device: str):
    """A closure running one pass over ``samples`` samples: micro-batches, AdamW step every ``global_batch``."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    ids = torch.randint(0, shape.vocab, (samples, shape.tokens), device=device)
    labels = torch.randint(0, shape.vocab, (samples, shape.loss_positions), device=device)
    accumulation = max(1, global_batch // micro)

    def update() -> None:
        model.train()
        for index, start in enumerate(range(0, samples, micro)):
            loss = anchor_loss(model, ids[start:start + micro], labels[start:start + micro], shape)
            (loss / accumulation).backward()
            if (index + 1) % accumulation == 0 or start + micro >= samples:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

    return update


def make_forward(model, shape: AnchorShape, batch: int, device: str):
    ids = torch.randint(0, shape.vocab, (batch, shape.tokens), device=device)

    @torch.no_grad()
    def forward() -> None:
        model.eval()
        model(input_ids=ids, logits_to_keep=shape.loss_positions + 1)

    return forward


def counted_flops(fn) -> int:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    return counter.get_total_flops()


def measure_anchor(device: str, shape: AnchorShape, batch: int = 8, samples: int = 80, micro: int = 8,
                   global_batch: int = 40, forwards: int = 10, repeats: int = 2, profile_dir: Path | None = None,
                   label: str = "anchor") -> dict:
    """Forward / update seconds, FLOPs and TFLOP/s of the anchor; the profile table of one update micro-batch
    pass is written to ``profile_dir / f"{label}_update.txt"`` when ``profile_dir`` is set."""
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    model = build_anchor(shape, device, dtype)
    forward = make_forward(model, shape, batch, device)
    update = make_update(model, shape, samples, micro, global_batch, device)
    forward_s = timed(forward, device, max(3, forwards))
    update_s = timed(update, device, repeats)
    forward_flops = counted_flops(forward)
    update_flops = counted_flops(update)
    out = {
        "shape": asdict(shape), "batch": batch, "samples": samples, "micro": micro, "global_batch": global_batch,
        "forward_s": forward_s, "forwards_per_rollout": forwards, "rollout_s": forward_s * forwards,
        "update_s": update_s, "forward_flops": forward_flops, "update_flops": update_flops,
        "forward_tflops": forward_flops / forward_s / 1e12, "update_tflops": update_flops / update_s / 1e12,
        "update_mfu_vs_limit": update_flops / update_s / LIMIT_FLOPS,
        "limit_rollout_s": forward_flops * forwards / LIMIT_FLOPS, "limit_update_s": update_flops / LIMIT_FLOPS,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None,
    }
    if profile_dir is not None:
        from profile_step import profiled, write_table  # noqa: PLC0415 - sibling script

        _, prof = profiled(update, device)
        out["profile"] = write_table(prof, profile_dir / f"{label}_update.txt", device, f"{label}: one update")
    del model, forward, update
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="Toy shape (CPU smoke test).")
    parser.add_argument("--micro", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("anchor.json"))
    args = parser.parse_args(argv)
    shape = AnchorShape.tiny() if args.tiny else AnchorShape()
    result = measure_anchor(args.device, shape, micro=args.micro)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "shape"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
