"""Evaluation of a generator on a split: likelihood, decoded outputs and sample quality.

- Likelihood (always): per-token NLL, perplexity, bits per token, per-sequence NLL of the split; for
  conditional tasks also the NLL given another example's context, and what the right one gains.
- Decoded outputs (translation and captioning by default): sacrebleu BLEU/chrF/TER against every
  reference, with the signatures.
- Sample quality (`quality`): by data source, exact divergences from the toy distribution; NLL_oracle
  and NLL_test against the oracle; for text, Texygen BLEU-n against the whole split, Self-BLEU-n and
  diversity of ancestral samples; CIDEr-D (captioning) and diversity of the decoded outputs.
- A classifier two-sample test (`two_sample`): see `seqgen.metrics.two_sample`.

Every piece of work is split across processes without padding or repeats (batch i, or sample chunk i,
goes to process i mod N; each sample chunk has its own seed) and the per-example results are gathered
with `gather_for_metrics` and put back in split order, so every number is the same whatever the
number of processes.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field, replace

import torch
from accelerate import Accelerator

from seqgen.config import DecodeConfig, RunConfig
from seqgen.data import Split, TaskData, decode
from seqgen.data.batch import Batch, Vocab
from seqgen.data.sources import split_origin, split_seed
from seqgen.data.synthetic.oracle import OracleLSTM
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError
from seqgen.metrics.bleu import ReferenceIndex, bleu_scores, self_bleu_scores
from seqgen.metrics.cider import cider_d
from seqgen.metrics.diversity import diversity_scores
from seqgen.metrics.exact import toy_metrics
from seqgen.metrics.likelihood import nll_metrics, sequence_nll
from seqgen.metrics.oracle import sample_fixed_length, sequence_log_probs
from seqgen.metrics.translation import corpus_scores
from seqgen.metrics.two_sample import two_sample_test
from seqgen.models.base import Generator
from seqgen.progress import progress
from seqgen.sampling import generate

logger = logging.getLogger(__name__)

SAMPLE_CHUNK = 512
"""Sequences sampled together; each chunk has its own seed, so samples do not depend on the sharding."""


@dataclass
class EvalResult:
    """Metrics (`eval/...` keys), what they scored, sacrebleu signatures, and a few decoded examples."""

    metrics: dict[str, float]
    signatures: dict[str, str] = field(default_factory=dict)
    examples: list[tuple[str, str]] = field(default_factory=list)  # (hypothesis, first reference)
    scored: dict[str, object] = field(default_factory=dict)
    """What the metrics were computed on, so that a number can be traced: `split`, `data` (where the
    split's examples come from), `num_sequences` and `num_tokens` scored for likelihood, and where
    anything was generated, `num_decoded` with `decoding` (the decode settings) and `samples` /
    `oracle_samples` (how many sequences were sampled, and how)."""
    checkpoint: dict[str, object] = field(default_factory=dict)
    """The model measured, when known: `path` of its folder and the training `step` it records."""


@torch.no_grad()
def evaluate(model: Generator, data: TaskData, split: str, cfg: RunConfig, accelerator: Accelerator,
             *, bleu: bool | None = None, quality: bool | None = None, two_sample: bool | None = None,
             max_batches: int | None = None, prefix: str = "eval/", seed: int = 0) -> EvalResult:
    """Evaluate `model` on `data.splits[split]` (see the module docstring for what is measured).

    Args:
        model: the (unwrapped) generator; it is put in eval mode and restored afterwards.
        data: the task's data.
        split: split name.
        cfg: the run's config (batching, decoding, `eval` section, synthetic source).
        accelerator: for the device and for gathering across processes.
        bleu: decode and score with sacrebleu; None decides by task (translation and captioning).
        quality: sample-quality metrics; None follows `cfg.eval.quality`.
        two_sample: the classifier two-sample test; None follows `cfg.eval.two_sample_test`.
        max_batches: score only the first batches of the split (None: all).
        prefix: metric-key namespace.
        seed: seeds every sample drawn.
    """
    quality = cfg.eval.quality if quality is None else quality
    two_sample = cfg.eval.two_sample_test if two_sample is None else two_sample
    conditional = data.task in ("translation", "captioning")
    was_training = model.training
    model.eval()
    run = _Sharded(accelerator, desc=split)
    part = data.splits[split]
    metrics, scored = _likelihood(model, part, cfg, run, max_batches)
    scored = {"split": split, "data": split_origin(cfg.data, split), **scored}
    result = EvalResult({}, scored=scored)
    score_outputs = conditional if bleu is None else bleu
    if score_outputs and not conditional:
        raise UserError("BLEU of decoded outputs needs a translation or captioning task")
    if score_outputs or conditional and (quality or two_sample):
        rows = _decode_split(model, part, data, cfg, run, max_batches, seed)
        hypotheses, references = [r[1] for r in rows], [r[2] for r in rows]
        scored.update(num_decoded=len(rows), decoding=dataclasses.asdict(cfg.decode))
        if score_outputs:
            scores, result.signatures = corpus_scores(hypotheses, references, prefix="", ter=True)
            metrics.update(scores)
        if quality:
            metrics.update(_output_quality(data.task, hypotheses, references))
        if two_sample:
            # Both sides re-tokenised from text: the first reference of each context vs its output.
            ids = [data.tokenizer([refs[0] for refs in references], add_special_tokens=False)["input_ids"],
                   data.tokenizer(hypotheses, add_special_tokens=False)["input_ids"]]
            metrics.update(two_sample_test(*ids, data.vocab.size, seed=seed))
        result.examples = [(h, r[0]) for h, r in zip(hypotheses, references)]
    if data.task == "lm" and (quality or two_sample):
        metrics.update(_sample_quality(model, part, data, cfg, run, seed, quality, two_sample, scored))
    result.metrics = {f"{prefix}{k}": v for k, v in metrics.items()}
    model.train(was_training)
    return result


# ---------------------------------------------------------------------------------------------------


class _Sharded:
    """Runs indexed pieces of work (batches, sample chunks) on their process, shows progress on the
    main one, and gathers the per-piece results back into piece order on every process."""

    def __init__(self, accelerator: Accelerator, desc: str) -> None:
        self.accelerator = accelerator
        self.desc = desc
        self.show = accelerator.is_local_main_process

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def mine(self, items, what: str, total: int | None = None):
        """(i, item) for this process's items i ≡ rank (mod N), with a progress bar."""
        n, rank = self.accelerator.num_processes, self.accelerator.process_index
        mine = ((i, item) for i, item in enumerate(items) if i % n == rank)
        return progress(mine, desc=f"{self.desc} {what}", leave=False, show=self.show,
                        total=None if total is None else len(range(rank, total, n)))

    def gather(self, results: list[tuple[int, object]]) -> list[object]:
        """Every process's (index, result) pairs, sorted by index, without the indices."""
        everything = self.accelerator.gather_for_metrics(results, use_gather_object=True)
        return [r for _, r in sorted(everything, key=lambda pair: pair[0])]


def _batches(part: Split, cfg: RunConfig, max_batches: int | None):
    for i, batch in enumerate(part.loader(cfg.data, shuffle=False, seed=cfg.seed)):
        if max_batches is not None and i >= max_batches:
            return
        yield batch


def _likelihood(model: Generator, part: Split, cfg: RunConfig, run: _Sharded,
                max_batches: int | None) -> tuple[dict[str, float], dict[str, int]]:
    """Per-token and per-sequence NLL of the split, from each sequence's summed NLL and length; and
    how many sequences and tokens were scored (fewer than the split's under `max_batches`).

    For a conditional task also `nll_other_context`, each target's per-token NLL given the context of
    the example half a batch away (batches of one are left out), and `context_gain`, how many nats per
    token its own context is worth over that one: near 0, the model has not learnt to read its
    contexts and is a language model of the targets."""
    results = []
    for i, batch in run.mine(_batches(part, cfg, max_batches), "nll"):
        batch = batch.to(run.device)
        nll = sequence_nll(model, batch).double().cpu()  # (B,)
        tokens = batch.target_mask.sum(1).cpu()  # (B,)
        other = torch.full_like(nll, float("nan"))  # (B,): NaN where no other context was scored
        if batch.context is not None and len(batch) > 1:
            # half a batch away rather than the next row: captions of one image sit side by side
            shifted = torch.roll(torch.arange(len(batch), device=run.device), len(batch) // 2)
            other = sequence_nll(model, replace(batch, context=batch.context.select(shifted))).double().cpu()
        results.append((i, (nll, tokens, other)))
    pieces = run.gather(results)
    empty = [torch.zeros(0, dtype=dtype) for dtype in (torch.float64, torch.long, torch.float64)]
    nll, tokens, other = (torch.cat([none, *(p[k] for p in pieces)]) for k, none in enumerate(empty))
    metrics = nll_metrics(nll, tokens)
    paired = ~other.isnan()
    if paired.any():
        count = int(tokens[paired].sum())
        metrics["nll_other_context"] = float(other[paired].sum()) / count
        metrics["context_gain"] = float((other[paired] - nll[paired]).sum()) / count
    return metrics, {"num_sequences": len(nll), "num_tokens": int(tokens.sum())}


def _decode_split(model: Generator, part: Split, data: TaskData, cfg: RunConfig, run: _Sharded,
                  max_batches: int | None, seed: int) -> list[tuple[int, str, list[str]]]:
    """(index, hypothesis, references) for each context of the split, decoded with `cfg.decode`."""
    results = []
    for i, batch in run.mine(_batches(part.unique_contexts(), cfg, max_batches), "decode"):
        batch = batch.to(run.device)
        rng = torch.Generator(run.device).manual_seed(_chunk_seed(seed, i))
        outputs = generate(model, cfg.decode, context=batch.context, rng=rng)
        results.append((i, [(int(j), decode(data.tokenizer, ids.tolist()), refs)
                            for j, ids, refs in zip(batch.index, outputs, batch.references)]))
    return sorted(row for rows in run.gather(results) for row in rows)


def _output_quality(task: str, hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """Diversity of decoded outputs and, for captioning, their CIDEr-D."""
    scores = {f"outputs_{k}": v for k, v in diversity_scores([h.split() for h in hypotheses]).items()}
    if task == "captioning":
        scores["cider_d"] = cider_d(hypotheses, references)[0]
    return scores


def _sample_quality(model: Generator, part: Split, data: TaskData, cfg: RunConfig, run: _Sharded,
                    seed: int, quality: bool, two_sample: bool, scored: dict[str, object]) -> dict[str, float]:
    """Sample-quality metrics of a language model: exact divergences from an enumerable toy P, oracle
    NLLs against an oracle LSTM, else BLEU, Self-BLEU and diversity of samples against the split.
    Records in `scored` how many sequences were sampled, and how."""
    p = data.distribution
    scores: dict[str, float] = {}
    if quality and isinstance(p, ToyDistribution):
        scores.update(toy_metrics(model, p))
    n = cfg.eval.num_samples or len(part)
    if quality and isinstance(p, OracleLSTM):
        scores.update(_oracle_quality(model, part, p, cfg, run, seed))
        scored["oracle_samples"] = {"num": n, "strategy": "sample", "temperature": 1.0, "length": p.length}
    if not (two_sample or quality and p is None):
        return scores
    samples = _sample_ids(model, n, cfg, run, seed)
    scored["samples"] = {"num": len(samples), **_SAMPLING, "max_new_tokens": cfg.decode.max_new_tokens}
    real = [list(ids) for ids in part.dataset["ids"][:]]
    if quality and p is None:
        texts = [decode(data.tokenizer, ids).split() for ids in samples]
        references = ReferenceIndex((decode(data.tokenizer, ids).split() for ids in real), max_n=5)
        scores.update(bleu_scores(texts, references))
        scores.update(self_bleu_scores(texts))
        scores.update({f"samples_{k}": v for k, v in diversity_scores(texts).items()})
    if two_sample:
        if len(samples) > len(real):
            logger.warning("the two-sample test uses %d generated and %d real sentences: the %s split has %d, "
                           "fewer than eval.num_samples=%d", len(real), len(real), part.name, len(real), n)
        scores.update(two_sample_test(real, samples, data.vocab.size, seed=seed))
    return scores


_SAMPLING = {"strategy": "sample", "temperature": 1.0, "top_k": 0, "top_p": 1.0}
"""How sample quality samples: ancestral, untempered, untruncated (whatever `decode` says)."""


def _sample_ids(model: Generator, n: int, cfg: RunConfig, run: _Sharded, seed: int) -> list[list[int]]:
    """`n` ancestral samples (temperature 1) as token ids without BOS, EOS or padding."""
    sample = DecodeConfig(**_SAMPLING, max_new_tokens=cfg.decode.max_new_tokens)
    chunks = [min(SAMPLE_CHUNK, n - start) for start in range(0, n, SAMPLE_CHUNK)]
    results = []
    for i, rows in run.mine(chunks, "samples", total=len(chunks)):
        rng = torch.Generator(run.device).manual_seed(_chunk_seed(seed, i))
        out = generate(model, sample, num_sequences=rows, rng=rng)
        results.append((i, [_content_ids(row.tolist(), model.vocab) for row in out]))
    return [ids for chunk in run.gather(results) for ids in chunk]


def _oracle_quality(model: Generator, part: Split, oracle: OracleLSTM, cfg: RunConfig, run: _Sharded,
                    seed: int) -> dict[str, float]:
    """NLL_oracle of the model's fixed-length samples and NLL_test of the split's oracle sequences
    (both per token, see `seqgen.metrics.oracle`)."""
    oracle = oracle.to(run.device)
    V, T = oracle.vocab_size, oracle.length
    n = cfg.eval.num_samples or len(part)
    chunks = [min(SAMPLE_CHUNK, n - start) for start in range(0, n, SAMPLE_CHUNK)]
    results = []
    for i, rows in run.mine(chunks, "oracle samples", total=len(chunks)):
        x = sample_fixed_length(model, V, T, rows, seed=_chunk_seed(seed, i))
        results.append((i, oracle.log_prob(x).cpu()))
    log_p = torch.cat(run.gather(results))
    # The split's sequences are the oracle's draws from the split's seed: score them, not new ones.
    test = oracle.sample(len(part), split_seed(cfg.seed, part.name))
    results = [(i, sequence_log_probs(model, rows, V).cpu())
               for i, rows in run.mine(test.split(SAMPLE_CHUNK), "nll_test", total=-(-len(test) // SAMPLE_CHUNK))]
    log_q = torch.cat(run.gather(results))
    return {"nll_oracle": float(-log_p.sum() / (len(log_p) * T)),
            "nll_test": float(-log_q.sum() / (len(log_q) * T))}


def _chunk_seed(seed: int, chunk: int) -> int:
    return seed * 1_000_003 + chunk


def _content_ids(ids: list[int], vocab: Vocab) -> list[int]:
    """A sequence's tokens without a leading BOS, cut at the first EOS, without padding."""
    if ids and ids[0] == vocab.bos_id:
        ids = ids[1:]
    if vocab.eos_id in ids:
        ids = ids[: ids.index(vocab.eos_id)]
    return [i for i in ids if i != vocab.pad_id]


@torch.no_grad()
def sample_texts(model: Generator, data: TaskData, cfg: RunConfig, n: int, device: torch.device,
                 seed: int = 0, split: str = "validation") -> list[str]:
    """A few decoded outputs to print: unconditional samples, or outputs for the first contexts of
    `split` as `source => output`."""
    was_training = model.training
    model.eval()
    rng = torch.Generator(device).manual_seed(seed)
    if data.task == "lm":
        texts = [decode(data.tokenizer, ids.tolist())
                 for ids in generate(model, cfg.decode, num_sequences=n, rng=rng)]
    else:
        part = data.splits[split].unique_contexts()
        few = dataclasses.replace(cfg.data, batch_size=n, max_tokens=None)
        batch = next(iter(part.loader(few, shuffle=False, seed=0))).to(device)
        outs = generate(model, cfg.decode, context=batch.context, rng=rng)
        texts = [f"{_describe(data, batch, i)} => {decode(data.tokenizer, ids.tolist())}"
                 for i, ids in enumerate(outs[:n])]
    model.train(was_training)
    return texts


def _describe(data: TaskData, batch: Batch, i: int) -> str:
    if data.task == "translation":
        return decode(data.tokenizer, batch.context.source[i].tolist())
    return f"[image {int(batch.index[i])}]"
