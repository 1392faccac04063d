"""`seqgen demo`: the main job on an embedded default, in a few minutes on a CPU.

Trains an LSTM language model by teacher forcing on samples of an embedded random oracle LSTM,
evaluates its held-out likelihood, and prints samples. Everything it needs ships with the package.
"""

from __future__ import annotations

from pathlib import Path

from seqgen.config import RunConfig, from_dict

DEMO_RECIPE = {
    "task": "lm",
    "seed": 0,
    "data": {"source": "oracle", "batch_size": 64,
             "synthetic": {"num_train": 5000, "num_validation": 500, "num_test": 500, "vocab_size": 100,
                           "length": 12, "hidden_dim": 32, "seed": 7}},
    "tokenizer": {"kind": "fixed"},
    "model": {"family": "rnn", "cell": "lstm", "embedding_dim": 64, "hidden_dim": 128},
    "train": {"max_steps": 400, "lr": 0.005, "log_every": 20, "eval_every": 100, "save_every": 100,
              "num_samples": 3},
    "decode": {"strategy": "sample", "max_new_tokens": 16},
}


def demo(out: str | Path = "runs/demo") -> dict[str, float]:
    """Train and evaluate the embedded recipe into `out`; returns the test metrics."""
    from accelerate import Accelerator

    from seqgen.inference import evaluate_model
    from seqgen.recipes import check_recipe
    from seqgen.train import train

    cfg = from_dict(RunConfig, {**DEMO_RECIPE, "output_dir": str(out)})
    check_recipe(cfg)
    print(f"seqgen demo: teacher forcing of an LSTM on samples of an embedded oracle LSTM -> {out}")
    train(cfg, overwrite=True)
    result, _ = evaluate_model(out, split="test", accelerator=Accelerator())
    result.metrics["oracle/nll_per_sequence"] = _oracle_nll(cfg)
    print("\ntest split (the oracle's own NLL of the same sequences is the floor a model can reach):")
    for key, value in result.metrics.items():
        print(f"  {key:<24} {value:.4f}")
    print(f"\nrun folder: {out} (model/, checkpoints/, logs/metrics.jsonl)")
    return result.metrics


def _oracle_nll(cfg: RunConfig) -> float:
    """Mean -log P(x) of the test sequences under the oracle that generated them (nats/sequence)."""
    import torch

    from seqgen.data.sources import split_seed
    from seqgen.data.synthetic import OracleLSTM

    oracle = OracleLSTM.from_config(cfg.data.synthetic)
    texts = oracle.sample_texts(cfg.data.synthetic.num_test, seed=split_seed(cfg.seed, "test"))
    tokens = torch.tensor([[int(w) for w in t.split()] for t in texts])
    return -oracle.log_prob(tokens).mean().item()
