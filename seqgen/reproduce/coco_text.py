"""`coco-text`: the COCO-captions benchmark of the text-GAN literature (Texygen, Zhu et al. 2018; RelGAN,
Nie et al. 2019). An unconditional language model is trained on 10,000 image captions (image_coco.txt)
and measured on 10,000 others (test_coco.txt): BLEU-2..5 of 10,000 samples, each against the whole test
set (Texygen's definition), Self-BLEU-2..5 among the samples, and NLL_gen, the model's NLL of the
training file per position of sentences padded to 37. The generator is Texygen's MLE baseline, an LSTM
with embedding 32 and hidden 32."""

from __future__ import annotations

from pathlib import Path

from seqgen.experiments.recipes import merge
from seqgen.reproduce.benchmark import Benchmark, Column, Frontier, Size
from seqgen.reproduce.rows import language_model_rows

ALPHAS = (0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0)
SEQ_LEN = 37
"""The benchmarks' sequence length: the longest training caption in words as they tokenise them. NLL_gen
is per position of sentences written out to this length, and samples have at most this many words."""
TRAIN_FILE = "coco_captions/image_coco.txt"
TEST_FILE = "coco_captions/test_coco.txt"
TRAINING_CAPTIONS = "the training captions, scored as samples"
"""The anchor: what the data itself scores on the BLEU and Self-BLEU columns with this tokenisation."""

_RECIPE = {
    "task": "lm", "seed": 0,
    # a tenth of the training file is held out for the validation losses (never the test file); the
    # exported model is the last one either way
    "data": {"source": "text", "validation_fraction": 0.1, "max_length": 40, "batch_size": 64},
    # lowercased and split as nltk.word_tokenize splits, as the benchmarks did
    "tokenizer": {"kind": "word", "lowercase": True, "split_punctuation": True, "min_frequency": 1,
                  "vocab_size": 10_000},
    "model": {"family": "rnn", "cell": "lstm", "embedding_dim": 32, "hidden_dim": 32, "tie_embeddings": False},
    # Texygen's MLE pre-training: Adam at 0.01, gradients clipped at 5, 80 epochs of 156 batches of 64
    # (12,480 steps), the last model kept (no selection, no early stopping)
    "train": {"max_steps": 12_480, "lr": 0.01, "max_grad_norm": 5.0, "lr_schedule": "constant",
              "eval_every": 1_560, "save_every": 1_560, "export": "last", "num_samples": 0, "tensorboard": False},
    "eval": {"max_batches": 20},
    "decode": {"strategy": "sample", "max_new_tokens": SEQ_LEN},
}
_ROWS = {"train": {"lr": 1e-4, "max_grad_norm": 5.0, "lr_schedule": "constant", "export": "last"}}


def _size(train: dict, rows: int, samples: int, sweep_samples: int, alphas: tuple[float, ...], protocol: str,
          data: dict | None = None) -> Size:
    """A size: the baseline's `train` changes, the rows' steps, samples of the test measures and of each
    point of the sweeps, the sweeps' inverse temperatures, and `data` changes."""
    recipe = merge(_RECIPE, {"train": train}, {"data": data or {}})
    every = max(1, rows // 4)
    return Size(recipe=recipe, rows=merge(_ROWS, {"train": {"max_steps": rows, "eval_every": every,
                                                            "save_every": every}}),
                evaluation=("eval.quality=true", f"eval.num_samples={samples}", "eval.max_batches=null"),
                protocol=protocol, alphas=alphas, sweep_samples=sweep_samples)


SIZES = {
    "paper": _size({}, 2_000, 10_000, 10_000, ALPHAS,
                   "Texygen's MLE protocol: 12,480 steps of 64 (80 epochs of its 156 batches; here about 89 "
                   "epochs of the 9,000 captions left after holding out a tenth of image_coco.txt for "
                   "validation; RelGAN pre-trains 150 epochs), the last model kept; then each method 2,000 "
                   "steps from that model, as RelGAN's 2,000 adversarial steps; 10,000 samples per measure and "
                   "per point of the sweeps."),
    "cpu": _size({}, 400, 10_000, 2_000, (0.67, 0.8, 1.0, 1.25, 1.5, 2.0),
                 "Teacher forcing as the paper size (Texygen's 12,480 steps of 64, the last model kept); then "
                 "each method 400 steps from it instead of 2,000; 10,000 samples for the table, 2,000 per "
                 "point of the sweeps (6 temperatures instead of 8; Self-BLEU among 2,000 samples is lower than "
                 "among 10,000, which give each sample more references)."),
    "tiny": _size({"max_steps": 30, "eval_every": 15, "save_every": 15}, 6, 64, 32, ALPHAS,
                  "A few steps on the data folder's files (for tests, which write ~100 short captions as "
                  "coco_captions/image_coco.txt and test_coco.txt).", {"batch_size": 16}),
}


def _lines(path: str | Path) -> list[str]:
    """The non-blank lines of a text file, without their line ends."""
    return [line for line in Path(path).read_text(encoding="utf-8-sig").splitlines() if line.strip()]


def nll_gen_of(run_dir: str | Path, *texts: list[str]) -> list[float]:
    """NLL_gen (`seqgen.metrics.likelihood.nll_gen`, seq_len 37, the positions after EOS certain) of the
    run's exported model on each list of `texts`, every line tokenised by the run's tokenizer without
    special tokens."""
    from seqgen.data.tokenizer import load_tokenizer
    from seqgen.metrics.likelihood import nll_gen
    from seqgen.models import load_generator

    model_dir = Path(run_dir) / "model"
    model, _, _, _ = load_generator(model_dir)
    tokenizer, _ = load_tokenizer(model_dir)
    return [nll_gen(model, [tokenizer(line, add_special_tokens=False)["input_ids"] for line in lines], SEQ_LEN)
            for lines in texts]


def nll_gen_measures(run_dir: Path, size: Size) -> dict[str, float]:
    """NLL_gen of the row's model on the captions it trained on (`nll_gen`: the training file less the
    tenth held out for validation, the benchmarks' case, since they hold out nothing) and on the whole
    training file (`nll_gen_whole_file`, the held-out tenth included)."""
    from seqgen.data.sources import load_raw
    from seqgen.inference import run_config

    cfg, _ = run_config(run_dir)
    trained = [line for line in load_raw(cfg, ("train",))["train"].rows["text"] if line.strip()]
    whole, own = nll_gen_of(run_dir, _lines(cfg.data.train), trained)
    return {"nll_gen": own, "nll_gen_whole_file": whole}


def training_captions(cfg) -> dict[str, dict[str, float]]:
    """BLEU-2..5 of the training file's captions against the test file, and their Self-BLEU-2..5, both
    split into words as the rows' tokenizer splits them: what real captions score on the table's
    quality and diversity columns (words outside a row's vocabulary are not mapped to <unk>)."""
    from seqgen.data.tokenizer import split_words
    from seqgen.metrics.bleu import bleu_scores, self_bleu_scores

    tc = cfg.tokenizer
    train, test = ([split_words(line, tc.lowercase, tc.split_punctuation) for line in _lines(path)]
                   for path in (cfg.data.train, cfg.data.test))
    return {TRAINING_CAPTIONS: {**bleu_scores(train, test), **self_bleu_scores(train)}}


_BLEU = tuple(Column(f"bleu{n}_texygen", f"BLEU-{n}", higher_is_better=True) for n in (2, 3, 4, 5))
_SELF_BLEU = tuple(Column(f"self_bleu{n}", f"Self-BLEU-{n}", higher_is_better=False) for n in (2, 3, 4, 5))


def _published(bleu: tuple[float, float, float, float], nll: float) -> dict[str, float]:
    return {**{c.key: b for c, b in zip(_BLEU, bleu)}, "nll_gen": nll}


BENCHMARK = Benchmark(
    name="coco-text",
    title="Texygen's COCO captions",
    source="Texygen (Zhu et al., SIGIR 2018) and RelGAN (Nie et al., ICLR 2019, Table 2): an LSTM language "
           "model (embedding 32, hidden 32) on the 10,000 captions of image_coco.txt; BLEU-n is the mean "
           "NLTK sentence BLEU-n (method1 smoothing) of 10,000 samples, each against all 10,000 captions of "
           "test_coco.txt; NLL_gen is the model's NLL of the training file, per position of sentences padded "
           "to 37, natural log.",
    sizes=SIZES,
    rows=language_model_rows(teacher=False, published={"teacher_forcing": "MLE"}),
    columns=(*_BLEU, Column("nll_gen", "NLL_gen", higher_is_better=False),
             Column("nll_gen_whole_file", "NLL_gen, held-out tenth included", higher_is_better=False),
             *_SELF_BLEU),
    published={"MLE": _published((0.731, 0.497, 0.305, 0.189), 0.718),
               "SeqGAN": _published((0.745, 0.498, 0.294, 0.180), 1.082),
               "LeakGAN": _published((0.746, 0.528, 0.355, 0.230), 0.679),
               "RelGAN(100)": _published((0.849, 0.687, 0.502, 0.331), 0.756),
               "RelGAN(1000)": _published((0.814, 0.634, 0.455, 0.303), 0.655),
               TRAINING_CAPTIONS: {}},
    frontier=Frontier("bleu5_texygen", "self_bleu5", -1, 1,
                      ("−BLEU-5 against the test captions (quality cost: lower is better)",
                       "Self-BLEU-5 among the samples (diversity cost: lower is better)")),
    data={"data.train": TRAIN_FILE, "data.test": TEST_FILE},
    extra=nll_gen_measures,
    anchors=training_captions,
    notes=(
        ("Tokenisation: the benchmarks lowercase and split with nltk.word_tokenize (4,659 words in "
         "image_coco.txt, longest caption 37). The rows' word tokenizer lowercases and splits punctuation "
         "off words as it does (`tokenizer.split_punctuation`): 4,655 words, longest caption 37, the same "
         "words on 99.5% of the captions (it differs on repeated periods and a few abbreviations). BLEU is "
         "counted in these words; the row 'the training captions, scored as samples' is what real captions "
         "score with them."),
        ("NLL_gen (`seqgen.metrics.likelihood.nll_gen`, seq_len 37): the model's NLL of each caption "
         "followed by EOS, divided by 37 per caption; the positions after EOS, padding in the benchmarks, "
         "cost nothing. The benchmarks score their whole training file, all of which they trained on; here "
         "a tenth is held out for validation, so NLL_gen scores the 9,000 captions trained on, and the "
         "next column the whole file, whose held-out captions include words outside the model's "
         "vocabulary (scored as <unk>, up to 46 nats each)."),
        ("seqgen's rows are its own methods on Texygen's generator; RelGAN, LeakGAN and SeqGAN are other "
         "generators or critics and are listed as published context. Self-BLEU is unpublished for this "
         "table; higher Self-BLEU means less diverse samples."),
        ("The published MLE row kept the model after 80 epochs (Texygen); so does every size here "
         "(train.export: last, no early stopping)."),
    ),
)
