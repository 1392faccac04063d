"""`seqgan-oracle`: SeqGAN's synthetic benchmark (Yu et al. 2017, and the tables of Texygen and RelGAN
that rerun it). The data are 10,000 sequences of 20 tokens drawn from an LSTM with random weights over
5,000 tokens (the oracle, SeqGAN's own weights); the generator is an LSTM of the same shape (embedding
32, hidden 32). Quality is NLL_oracle, the oracle's per-token NLL of 10,000 generated sequences;
coverage is NLL_test, the model's per-token NLL of held-out oracle sequences."""

from __future__ import annotations

from seqgen.experiments.recipes import merge
from seqgen.reproduce.benchmark import Benchmark, Column, Frontier, Size
from seqgen.reproduce.rows import language_model_rows

ALPHAS = (0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0)

_RECIPE = {
    "task": "lm", "seed": 0,
    "data": {"source": "oracle", "batch_size": 64,
             "synthetic": {"num_train": 10_000, "num_validation": 1_000, "num_test": 10_000, "vocab_size": 5_000,
                           "length": 20}},
    "tokenizer": {"kind": "fixed"},
    "model": {"family": "rnn", "cell": "lstm", "embedding_dim": 32, "hidden_dim": 32, "tie_embeddings": False},
    # SeqGAN's pre-training: Adam at 0.01, gradients clipped at 5, 120 epochs of 157 batches, the last
    # model kept (no selection)
    "train": {"max_steps": 18_840, "lr": 0.01, "max_grad_norm": 5.0, "eval_every": 1_570, "save_every": 1_570,
              "export": "last", "num_samples": 0, "tensorboard": False},
    "eval": {"max_batches": 20},
    "decode": {"strategy": "sample", "max_new_tokens": 20},
}
_ROWS = {"train": {"lr": 1e-4, "max_grad_norm": 5.0, "lr_schedule": "constant", "export": "last"}}


def _size(train: dict, rows: int, samples: int, protocol: str, data: dict | None = None) -> Size:
    """A size: the baseline's `train` changes, the rows' steps, samples per measure, and `data` changes
    (a tiny size draws from a random oracle instead of SeqGAN's)."""
    recipe = merge(_RECIPE, {"train": train}, {"data": data or {}})
    every = max(1, rows // 4)
    return Size(recipe=recipe, rows=merge(_ROWS, {"train": {"max_steps": rows, "eval_every": every,
                                                            "save_every": every}}),
                evaluation=("eval.quality=true", f"eval.num_samples={samples}"), protocol=protocol,
                alphas=ALPHAS, sweep_samples=samples, uses_data=data is None)


SIZES = {
    "paper": _size({}, 2_000, 10_000,
                   "SeqGAN's protocol: 120 epochs of maximum likelihood (18,840 steps of 64), then each method "
                   "2,000 steps from that model; 10,000 samples per measure."),
    "cpu": _size({"max_steps": 6_000, "eval_every": 1_000, "save_every": 1_000}, 500, 10_000,
                 "About 38 epochs of maximum likelihood (6,000 steps of 64) instead of 120, then each method "
                 "500 steps; 10,000 samples per measure."),
    "tiny": _size({"max_steps": 30, "eval_every": 15, "save_every": 15}, 6, 64,
                  "A random oracle of 50 tokens and length 8, a few steps (for tests).",
                  {"synthetic": {"num_train": 256, "num_validation": 32, "num_test": 64, "vocab_size": 50,
                                 "length": 8}, "batch_size": 32}),
}


def own_samples(cfg) -> dict[str, dict[str, float]]:
    """NLL_oracle of the oracle's own samples (as many as the test split, from its seed): the floor any
    generator's NLL_oracle is read against (SeqGAN's 5.750)."""
    from seqgen.data.sources import split_seed
    from seqgen.data.synthetic import OracleLSTM

    syn = cfg.data.synthetic
    oracle = OracleLSTM.from_config(syn)
    return {"the oracle's own samples": {"nll_oracle": oracle.nll_per_token(oracle.sample(syn.num_test,
                                                                                         split_seed(cfg.seed, "test")))}}


BENCHMARK = Benchmark(
    name="seqgan-oracle",
    title="SeqGAN's oracle LSTM",
    source="SeqGAN (Yu et al., AAAI 2017), its synthetic-data table as rerun by Texygen (Zhu et al., SIGIR "
           "2018) and RelGAN (Nie et al., ICLR 2019): NLL_oracle of 10,000 samples, per token, natural log.",
    sizes=SIZES,
    rows=language_model_rows(teacher=True,
                             published={"teacher_forcing": "MLE", "scheduled_sampling": "SS",
                                        "adversarial_pi0.5": "SeqGAN"}),
    columns=(Column("nll_oracle", "NLL_oracle", higher_is_better=False),
             Column("nll_test", "NLL_test", higher_is_better=False)),
    published={"MLE": {"nll_oracle": 9.038}, "SS": {"nll_oracle": 8.985}, "SeqGAN": {"nll_oracle": 8.736},
               "RankGAN": {"nll_oracle": 8.247}, "LeakGAN": {"nll_oracle": 7.038},
               "RelGAN": {"nll_oracle": 6.680}, "the oracle's own samples": {"nll_oracle": 5.750}},
    frontier=Frontier("nll_oracle", "nll_test", 1, 1,
                      ("NLL_oracle, nats per token (quality: lower is better)",
                       "NLL_test, nats per token (coverage: lower is better)")),
    data={"data.synthetic.weights": "seqgan_oracle/oracle_lstm.npz"},
    anchors=own_samples,
    notes=("NLL_test is seqgen's addition (Caccia et al.'s coverage axis); the papers report NLL_oracle only.",),
)

