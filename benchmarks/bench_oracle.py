"""Throughput of the oracle evaluator: NLL_oracle and NLL_test, in sentences per second.

    python benchmarks/bench_oracle.py --threads 1            # 10,000 sentences each, SeqGAN sizes
    python benchmarks/bench_oracle.py --quick                 # 500 sentences, a smoke run

The oracle is the SeqGAN oracle LSTM from ../shared/data/seqgan_oracle (vocabulary 5000, hidden 32, T = 20;
a random oracle of the same shape when the file is absent) and the generator a seqgen LSTM of the SeqGAN
generator's size (embedding 32, hidden 32, vocabulary 5000 + 4 special tokens, untrained: throughput
does not depend on the weights). Each figure is the best of --reps runs over N sentences:

- NLL_oracle = sampling N fixed-length sequences from the generator on its cache
  (`sample_fixed_length`) + the oracle's exact log P of them (`OracleLSTM.log_prob`);
- NLL_test = drawing N oracle sequences (`OracleLSTM.sample`) + the generator's log Q of them by
  teacher forcing (`sequence_log_probs`).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from common import add_device_args, machine, print_table, setup, timed, write_json

from seqgen.data.batch import Vocab
from seqgen.data.synthetic.oracle import OracleLSTM
from seqgen.metrics.oracle import sample_fixed_length, sequence_log_probs
from seqgen.models import build_generator
from seqgen.models.configs import RNNConfig

WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seqgan_oracle" / "oracle_lstm.npz"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device_args(parser)
    parser.add_argument("--sentences", type=int, default=None, help="N (default 10,000; quick 500)")
    parser.add_argument("--reps", type=int, default=3, help="timed runs of each measure (best reported)")
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="the SeqGAN oracle's .npz")
    args = parser.parse_args()
    args.sentences = args.sentences or (500 if args.quick else 10_000)
    return args


def main() -> None:
    args = parse_args()
    device = setup(args)
    if args.weights.exists():
        oracle, source = OracleLSTM.load(args.weights), str(args.weights)
    else:
        oracle, source = OracleLSTM.random(5000, 32, 20, seed=0), "random oracle (weights file absent)"
    oracle = oracle.to(device)
    V, T, n = oracle.vocab_size, oracle.length, args.sentences
    vocab = Vocab(size=V + 4, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    model = build_generator(RNNConfig(embedding_dim=32, hidden_dim=32), vocab, "lm").to(device)
    model.eval()

    parts: dict[str, list[float]] = {k: [] for k in ("model sampling", "oracle scoring", "oracle sampling",
                                                      "model scoring")}
    for rep in range(args.reps):
        x = sample_fixed_length(model, V, T, n, seed=rep)  # untimed copies of what each scorer reads
        y = oracle.sample(n, seed=rep)
        for name, fn in (("model sampling", functools.partial(sample_fixed_length, model, V, T, n, seed=rep)),
                         ("oracle scoring", functools.partial(oracle.log_prob, x)),
                         ("oracle sampling", functools.partial(oracle.sample, n, seed=rep)),
                         ("model scoring", functools.partial(sequence_log_probs, model, y, V))):
            parts[name].append(timed(fn, device))
    best = {k: min(v) for k, v in parts.items()}
    nll_oracle = best["model sampling"] + best["oracle scoring"]
    nll_test = best["oracle sampling"] + best["model scoring"]
    rows = [[name, f"{seconds:.2f} s", f"{n / seconds:,.0f}"] for name, seconds in
            [("NLL_oracle (total)", nll_oracle), ("  model sampling", best["model sampling"]),
             ("  oracle scoring", best["oracle scoring"]), ("NLL_test (total)", nll_test),
             ("  oracle sampling", best["oracle sampling"]), ("  model scoring", best["model scoring"])]]
    print(f"oracle: {source}; N = {n:,} sentences of T = {T}; best of {args.reps}")
    print_table("Oracle evaluator throughput", ["measure", "time", "sentences/s"], rows)
    write_json(args.json, {"machine": machine(device), "oracle": source, "sentences": n, "length": T,
                           "seconds": best, "nll_oracle_sentences_per_second": n / nll_oracle,
                           "nll_test_sentences_per_second": n / nll_test})


if __name__ == "__main__":
    main()
