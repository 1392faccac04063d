"""`shapes-captioning`: the image-captioning table of scheduled sampling (Bengio et al., NeurIPS 2015,
Table 1, on MS-COCO), rerun offline on seqgen's procedurally drawn shapes: an LSTM with attention over a
small CNN's feature map (recipes/captioning/shapes_lstm.yaml), its captions decoded by beam search and
scored by BLEU-4 and CIDEr-D against every phrasing of each test image. As in the paper each row is
trained from scratch with the baseline's budget: teacher forcing, always sampling (every input after BOS
the model's own sample), scheduled sampling (inverse sigmoid decay of ε over the steps) and uniform
scheduled sampling (the same schedule, the replaced inputs drawn uniformly from the vocabulary)."""

from __future__ import annotations

from seqgen.experiments.recipes import merge
from seqgen.reproduce.benchmark import Benchmark, Column, Row, Size
from seqgen.reproduce.rows import inverse_sigmoid_k

_RECIPE = {
    "task": "captioning", "seed": 0,
    "data": {"source": "shapes", "image_size": 64, "batch_size": 64,
             "synthetic": {"num_train": 10_000, "num_validation": 500, "num_test": 500}},
    "tokenizer": {"kind": "fixed"},
    "model": {"family": "rnn", "cell": "lstm", "embedding_dim": 64, "hidden_dim": 256, "image_encoder": "cnn"},
    # the shipped recipe: Adam at 0.002 for 5,000 steps of 64 images, the model of the best validation BLEU
    "train": {"max_steps": 5_000, "lr": 0.002, "eval_every": 500, "save_every": 500,
              "best_metric": "eval/sacrebleu_bleu", "best_mode": "max", "num_samples": 0, "tensorboard": False},
    "decode": {"strategy": "beam", "beam_size": 3, "max_new_tokens": 20},
}


def _size(changes: dict, protocol: str) -> Size:
    """A size: its changes of the shipped recipe. Every row trains from scratch with the baseline's
    recipe, so the rows' own budget (`Size.rows`) is empty."""
    return Size(recipe=merge(_RECIPE, changes), rows={}, evaluation=(), protocol=protocol, uses_data=False)


SIZES = {
    "paper": _size({}, "The shipped recipe (recipes/captioning/shapes_lstm.yaml): each row from scratch, 5,000 "
                       "steps of 64 images (10,000 training images, 64 pixels), the model of the best validation "
                       "BLEU of 10; beam search (3) on the 500 test images. Bengio et al.'s protocol is "
                       "MS-COCO-scale: this is its shape, not its scale."),
    "cpu": _size({"train": {"max_steps": 2_000, "eval_every": 500, "save_every": 500}},
                 "Each row from scratch, 2,000 steps of 64 images instead of the shipped 5,000 (about 13 epochs "
                 "of the 10,000 training images), the model of the best validation BLEU of 4; beam search (3) "
                 "on the 500 test images."),
    "tiny": _size({"data": {"image_size": 32, "batch_size": 32,
                            "synthetic": {"num_train": 256, "num_validation": 32, "num_test": 32}},
                   "model": {"embedding_dim": 32, "hidden_dim": 32},
                   "train": {"max_steps": 30, "lr": 0.01, "eval_every": 15, "save_every": 15},
                   "decode": {"strategy": "greedy", "max_new_tokens": 16}},
                  "256 images of 32 pixels, a small LSTM, 30 steps per row, greedy decoding (for tests)."),
}


def schedule(size: Size, replacement: str = "model") -> dict:
    """Scheduled sampling from scratch: ε decays by Bengio et al.'s inverse sigmoid over the baseline's
    steps, passing 0.5 half way; `replacement` says where a replaced input comes from."""
    steps = size.recipe["train"]["max_steps"]
    return {"objective": {"name": "scheduled_sampling", "schedule": "inverse_sigmoid", "k": inverse_sigmoid_k(steps),
                          "mode": "sequential", "feed": "sample", "replacement": replacement}}


def uniform_schedule(size: Size) -> dict:
    """Uniform scheduled sampling: `schedule`'s ε, the replaced inputs drawn uniformly from the vocabulary."""
    return schedule(size, "uniform")


ROWS = (
    Row("teacher_forcing", "teacher forcing (baseline)", published="Baseline"),
    Row("always_sampling", "always sampling (ε = 0)",
        {"objective": {"name": "scheduled_sampling", "schedule": "constant", "epsilon": 0.0, "mode": "sequential",
                       "feed": "sample"}},
        from_baseline=False, published="Always sampling"),
    Row("scheduled_sampling", "scheduled sampling, inverse sigmoid", schedule, from_baseline=False,
        published="Scheduled sampling"),
    Row("uniform_scheduled_sampling", "uniform scheduled sampling, inverse sigmoid", uniform_schedule,
        from_baseline=False, published="Uniform scheduled sampling"),
)

BENCHMARK = Benchmark(
    name="shapes-captioning",
    title="Scheduled sampling's captioning table, on the shapes set",
    source="Bengio et al., \"Scheduled Sampling for Sequence Prediction with Recurrent Neural Networks\" "
           "(NeurIPS 2015), Table 1: MS-COCO image captioning, BLEU-4 / METEOR / CIDEr of the test captions.",
    sizes=SIZES,
    rows=ROWS,
    columns=(Column("sacrebleu_bleu", "BLEU-4", higher_is_better=True, digits=1),
             Column("cider_d", "CIDEr-D", higher_is_better=True, digits=3)),
    # CIDEr as seqgen's cider_d reports it (the COCO evaluation's score; the paper's 89.5 is 0.895 ×100)
    published={"Baseline": {"sacrebleu_bleu": 28.8, "cider_d": 0.895},
               "Always sampling": {"sacrebleu_bleu": 11.2, "cider_d": 0.497},
               "Scheduled sampling": {"sacrebleu_bleu": 30.6, "cider_d": 0.921},
               "Uniform scheduled sampling": {"sacrebleu_bleu": 29.2, "cider_d": 0.909}},
    notes=(("The published numbers are MS-COCO's; the shapes set is another, far easier dataset, so only the "
            "ORDERING of the rows is compared, not the numbers: always sampling clearly worst, scheduled "
            "sampling at least as good as the baseline. The differences shown are not reproduction gaps."),
           ("BLEU-4 is sacrebleu's corpus BLEU (0–100) against every phrasing of each image, not the COCO "
            "evaluation's; CIDEr-D is the COCO evaluation's (seqgen.metrics.cider_d), shown on its own scale, "
            "where the paper multiplies by 100 (89.5 is 0.895 here)."),
           ("The paper's METEOR (baseline 24.2, always sampling 15.7, scheduled sampling 24.3, uniform 24.2) "
            "is not computed by seqgen."),
           ("Always sampling is scheduled sampling with a constant ε = 0: every input after BOS is the model's "
            "own sample, from the first step. The scheduled rows decay ε = k / (k + exp(i / k)) over the "
            "baseline's steps i, with k chosen so that ε = 0.5 half way.")),
)
