"""Incremental sampling throughput: `seqgen.sampling.generate` against transformers' `model.generate`.

    python benchmarks/bench_sampling.py               # GPT-2 6x512, vocabulary 5004, batch 8, 64 tokens, CPU
    python benchmarks/bench_sampling.py --quick       # a tiny model: a smoke run
    python benchmarks/bench_sampling.py --device cuda --mixed-precision bf16 --batch-size 64

Both sides decode with the same model: seqgen's GPT-2 adapter (seqgen/models/hf.py) and, for
transformers, the `GPT2LMHeadModel` inside it, in eval mode. Both draw ancestral samples from the full
softmax (temperature 1, no top-k, no top-p) on the key/value cache, starting from a BOS column, and
may produce at most N tokens per row, the EOS included: seqgen with `max_new_tokens = N - 1` (which
does not count the EOS), transformers with `max_new_tokens = N`. Each side then runs N forward steps
of one position: a row that emits EOS keeps being computed (and padded) until all rows have, which an
untrained model over 5004 tokens practically never does; the output widths are checked against that.
Throughput is batch x N sampled tokens per second. Each repetition runs transformers, then seqgen,
after one untimed call of each.
"""

from __future__ import annotations

import argparse

import torch
from common import (
    add_device_args,
    autocast,
    fill_sizes,
    machine,
    paired_ratio,
    print_table,
    quiet_transformers,
    rate,
    setup,
    spread,
    timed,
    write_json,
)

from seqgen.config import DecodeConfig
from seqgen.data.batch import Vocab
from seqgen.models.configs import TransformerConfig
from seqgen.models.hf import build_transformer
from seqgen.sampling import generate

TARGET = 1.0
SIZES = {
    "full": {"batch_size": 8, "new_tokens": 64, "reps": 10, "layers": 6, "width": 512, "heads": 8,
             "vocab": 5000},
    "quick": {"batch_size": 2, "new_tokens": 8, "reps": 2, "layers": 2, "width": 64, "heads": 2,
              "vocab": 500},
}
SPECIALS = 4  # PAD, BOS, EOS, UNK come before a fixed vocabulary's symbols (seqgen/data/tokenizer.py)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device_args(parser)
    parser.add_argument("--batch-size", type=int, help="sequences sampled at once (default 8; quick 2)")
    parser.add_argument("--new-tokens", type=int, help="N: decoding steps, EOS included (default 64)")
    parser.add_argument("--reps", type=int, help="timed calls of each (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fill_sizes(args, SIZES)
    return args


def main() -> None:
    args = parse_args()
    device = setup(args)
    torch.manual_seed(args.seed)
    vocab = Vocab(size=args.vocab + SPECIALS, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    cfg = TransformerConfig(arch="gpt2", num_hidden_layers=args.layers,
                      hidden_size=args.width, num_attention_heads=args.heads,
                      max_positions=args.new_tokens + 1)
    generator = build_transformer(vocab, cfg, "lm").to(device).eval()
    hf_model = generator.model
    n, batch = args.new_tokens, args.batch_size
    decode = DecodeConfig(strategy="sample", temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=n - 1)
    bos = torch.full((batch, 1), vocab.bos_id, dtype=torch.long, device=device)
    rng = torch.Generator(device=device).manual_seed(args.seed)

    def ours() -> None:
        with autocast(device, args.mixed_precision):
            out = generate(generator, decode, num_sequences=batch, rng=rng)
        # Narrower than N - 1 only if every row stopped early, i.e. fewer than N steps were run.
        assert out.shape[1] >= n - 1, f"seqgen stopped after {out.shape[1]} tokens"

    def theirs() -> None:
        with torch.no_grad(), autocast(device, args.mixed_precision):
            out = hf_model.generate(input_ids=bos, attention_mask=torch.ones_like(bos), do_sample=True,
                                    max_new_tokens=n, temperature=1.0, top_k=0, top_p=1.0, num_beams=1,
                                    use_cache=True, pad_token_id=vocab.pad_id, eos_token_id=vocab.eos_id)
        assert out.shape[1] == n + 1, f"transformers stopped after {out.shape[1] - 1} tokens"

    with quiet_transformers():
        theirs(), ours()  # warm-up: first-call allocations and lazy initialisation
        hf_seconds, our_seconds = [], []
        for _ in range(args.reps):
            hf_seconds.append(timed(theirs, device))
            our_seconds.append(timed(ours, device))

    tokens = batch * n
    hf_rate = rate([tokens] * len(hf_seconds), hf_seconds)
    our_rate = rate([tokens] * len(our_seconds), our_seconds)
    results = {"machine": machine(device), "args": {k: str(v) for k, v in vars(args).items()},
               "transformers_tokens_per_second": hf_rate, "seqgen_tokens_per_second": our_rate,
               "ratio": our_rate / hf_rate, "target": TARGET,
               "paired_ratio": paired_ratio([1 / s for s in our_seconds], [1 / s for s in hf_seconds]),
               "transformers_reps": [tokens / s for s in hf_seconds],
               "seqgen_reps": [tokens / s for s in our_seconds]}
    print_table(f"Ancestral sampling, batch {batch} x {n} tokens, {args.reps} reps; {machine(device)}",
                ["model", "transformers tok/s", "seqgen tok/s", "ratio", "paired ratio", "target",
                 "transformers reps", "seqgen reps"],
                [[f"gpt2 {args.layers}x{args.width}", f"{hf_rate:,.0f}", f"{our_rate:,.0f}",
                  f"{our_rate / hf_rate:.3f}", f"{results['paired_ratio']:.3f}", f">= {TARGET}",
                  spread(results["transformers_reps"]), spread(results["seqgen_reps"])]])
    write_json(args.json, results)


if __name__ == "__main__":
    main()
