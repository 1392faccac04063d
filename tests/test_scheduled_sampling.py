"""Scheduled sampling: ε = 1 is teacher forcing, ε = 0 feeds the model's own prefix (always sampling),
the cached and uncached sequential paths agree, parallel mode is the two-pass scheme, no gradient
reaches a model token, uniform replacement feeds uniform ordinary tokens, and training logs and resumes
the ε schedule."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from seqgen.config import load_config
from seqgen.data.batch import Batch, Context, Vocab
from seqgen.errors import UserError
from seqgen.functional import token_nll
from seqgen.models.configs import RNNConfig, TransformerConfig
from seqgen.models.hf import build_transformer
from seqgen.models.rnn import RNNGenerator
from seqgen.objectives import ScheduledSampling, ScheduledSamplingConfig, TeacherForcing
from seqgen.randomness import RowNoise
from seqgen.sampling import categorical
from seqgen.schedules import epsilon
from seqgen.tracking import read_log
from seqgen.train import train

ROOT = Path(__file__).resolve().parents[1]
VOCAB = Vocab(size=12, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
IMAGE = 16
LENGTHS = [5, 2, 3, 1]  # words per sentence: rows of different length, so padding is exercised

# name -> (task, family, model config keys); dropout 0 so that repeated runs compute the same thing.
MODELS = {
    "lm_rnn": ("lm", "rnn", {}),
    "lm_transformer": ("lm", "transformer", {}),
    "translation_rnn": ("translation", "rnn", {}),
    "translation_bart": ("translation", "transformer", {"arch": "bart"}),
    "captioning_rnn": ("captioning", "rnn", {}),
    "captioning_vit": ("captioning", "transformer", {"vision_arch": "vit"}),
}


def make_model(name: str):
    task, family, keys = MODELS[name]
    torch.manual_seed(0)
    if family == "rnn":
        cfg = RNNConfig(cell="lstm", embedding_dim=8, hidden_dim=8, dropout=0.0, **keys)
        return RNNGenerator(VOCAB, cfg, task), task
    cfg = TransformerConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, max_positions=16,
                            patch_size=8, dropout=0.0, **keys)
    return build_transformer(VOCAB, cfg, task, image_size=IMAGE), task


def make_batch(task: str, lengths=LENGTHS, seed: int = 1) -> Batch:
    """`BOS w.. EOS PAD..` rows with the given numbers of words, and their contexts."""
    g = torch.Generator().manual_seed(seed)
    B, L = len(lengths), max(lengths) + 2
    tokens = torch.full((B, L), VOCAB.pad_id)
    for i, n in enumerate(lengths):
        tokens[i, 0] = VOCAB.bos_id
        tokens[i, 1:n + 1] = torch.randint(4, VOCAB.size, (n,), generator=g)
        tokens[i, n + 1] = VOCAB.eos_id
    context = None
    if task == "translation":
        source = torch.randint(4, VOCAB.size, (B, 4), generator=g)
        mask = torch.ones(B, 4, dtype=torch.bool)
        mask[1, 2:] = False
        context = Context(source=source.masked_fill(~mask, VOCAB.pad_id), source_mask=mask)
    elif task == "captioning":
        context = Context(pixels=torch.randn(B, 3, IMAGE, IMAGE, generator=g))
    return Batch(tokens=tokens, mask=tokens != VOCAB.pad_id, context=context)


def ss(**keys) -> ScheduledSamplingConfig:
    return ScheduledSamplingConfig(**keys)


def loss_and_grads(objective, batch: Batch, seed: int = 0, step: int = 0, noise=None):
    """The objective's loss, metrics and the gradient of every parameter (zeros where none); its draws
    from `noise`, or (None) from torch's default generator seeded with `seed`."""
    objective.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss, metrics = objective(batch, step, noise)
    loss.backward()
    grads = {n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
             for n, p in objective.generator.named_parameters()}
    return loss.detach(), metrics, grads


def assert_same(a, b, atol=1e-5):
    torch.testing.assert_close(a[0], b[0], atol=atol, rtol=1e-5)
    for name in a[2]:
        torch.testing.assert_close(a[2][name], b[2][name], atol=atol, rtol=1e-4, msg=f"gradient of {name}")


def record(model, method: str) -> list[torch.Tensor]:
    """Patch `model.<method>` (step or forward) on the instance to record the inputs it receives."""
    seen, real = [], getattr(model, method)

    def recording(inputs, *args, **kwargs):
        seen.append(inputs.detach().clone())
        return real(inputs, *args, **kwargs)

    setattr(model, method, recording)
    return seen


def peaked(model, token: int):
    """Patch `model` (its step and forward, on the instance) to put all its mass on `token`."""
    for method in ("step", "forward"):
        real = getattr(model, method)

        def shifted(*args, real=real, **kwargs):
            out = real(*args, **kwargs)
            logits, rest = (out[0], out[1:]) if isinstance(out, tuple) else (out, None)
            logits = logits + 1000.0 * F.one_hot(torch.tensor(token), logits.shape[-1])
            return logits if rest is None else (logits, *rest)

        setattr(model, method, shifted)
    return model


def greedy_inputs(model, batch: Batch) -> torch.Tensor:
    """(B, T) the model's own greedy prefix from BOS, with the gold input where the target is padding."""
    inputs = batch.inputs
    with torch.no_grad():
        memory = model.encode(batch.context)
        state, x, fed = None, inputs[:, 0], [inputs[:, 0]]
        for _ in range(inputs.shape[1] - 1):
            logits, state = model.step(x, memory, state)
            x = logits.argmax(-1)
            fed.append(x)
    return torch.where(batch.target_mask, torch.stack(fed, 1), inputs)


# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, feed, replacement", [("sequential", "sample", "model"), ("parallel", "softmax", "model"),
                                                     ("sequential", "sample", "uniform"),
                                                     ("parallel", "sample", "uniform")])
@pytest.mark.parametrize("name", list(MODELS))
def test_epsilon_one_is_teacher_forcing(name, mode, feed, replacement):
    model, task = make_model(name)
    batch = make_batch(task)
    tf = loss_and_grads(TeacherForcing(model), batch)
    got = loss_and_grads(ScheduledSampling(model, ss(epsilon=1.0, mode=mode, feed=feed, replacement=replacement)),
                         batch)
    assert_same(got, tf)
    assert got[1]["model_input_fraction"].item() == 0.0 and got[1]["epsilon"].item() == 1.0


@pytest.mark.parametrize("name, keys, forward_calls", [
    # Sequential with the cache: T - 1 incremental steps make the inputs, one forward pass takes the loss.
    ("lm_rnn", {"mode": "sequential"}, 1),
    ("lm_transformer", {"mode": "sequential"}, 1),
    ("translation_bart", {"mode": "sequential"}, 1),
    # Without it: every prefix is re-run, then the loss pass.
    ("lm_transformer", {"mode": "sequential", "use_cache": False}, max(LENGTHS) + 1),
    # N = T - 1 passes (T = max(LENGTHS) + 1 inputs) reach the sequential inputs: pass n fixes position n.
    ("lm_rnn", {"mode": "parallel", "passes": max(LENGTHS)}, max(LENGTHS) + 1),
    ("translation_bart", {"mode": "parallel", "passes": max(LENGTHS)}, max(LENGTHS) + 1),
])
def test_epsilon_zero_feeds_the_models_own_greedy_prefix(name, keys, forward_calls):
    model, task = make_model(name)
    batch = make_batch(task)
    expected = greedy_inputs(model, batch)
    steps, forwards = record(model, "step"), record(model, "forward")
    _, metrics = ScheduledSampling(model, ss(epsilon=0.0, feed="argmax", **keys))(batch, 0)
    assert len(forwards) == forward_calls
    assert len(steps) == (batch.inputs.shape[1] - 1 if forward_calls == 1 else 0)
    fed = forwards[-1]  # the loss pass's inputs
    assert torch.equal(fed, expected)
    # Every real position after BOS was the model's; where the target is padding, the gold input stays.
    assert metrics["model_input_fraction"].item() == 1.0
    assert torch.equal(fed[~batch.target_mask], batch.inputs[~batch.target_mask])
    assert not torch.equal(fed, batch.inputs)


@pytest.mark.parametrize("name, keys", [("lm_rnn", {"mode": "sequential"}),
                                        ("captioning_rnn", {"mode": "sequential"}),
                                        ("lm_transformer", {"mode": "sequential", "use_cache": False}),
                                        ("translation_bart", {"mode": "parallel", "passes": 1})])
def test_always_sampling_feeds_a_model_sample_at_every_position_after_bos(name, keys):
    """Bengio et al.'s "always sampling" row, as a recipe writes it (a constant ε = 0, sampled feed):
    every real input after BOS is the model's own sample. The model puts all its mass on one token, so
    the fed inputs are known."""
    cfg = load_config(None, ["objective.name=scheduled_sampling", "objective.schedule=constant",
                             "objective.epsilon=0", "objective.feed=sample"]
                      + [f"objective.{k}={v}" for k, v in keys.items()]).objective
    model, task = make_model(name)
    batch = make_batch(task, lengths=[6, 4, 6, 2, 5, 6])
    seen = record(peaked(model, 7), "forward")
    _, metrics = ScheduledSampling(model, cfg)(batch, 10_000, RowNoise("k", None, len(batch)))
    fed, mixable = seen[-1], batch.target_mask.clone()
    mixable[:, 0] = False
    assert metrics["epsilon"].item() == 0.0 and metrics["model_input_fraction"].item() == 1.0
    assert (fed[mixable] == 7).all() and torch.equal(fed[~mixable], batch.inputs[~mixable])


@pytest.mark.parametrize("name", ["lm_transformer", "translation_bart", "captioning_vit"])
def test_cached_steps_equal_prefix_reruns(name):
    model, task = make_model(name)
    batch = make_batch(task, lengths=[6, 4, 6, 2, 5, 6])
    keys = {"mode": "sequential", "feed": "sample", "epsilon": 0.5}
    cached = loss_and_grads(ScheduledSampling(model, ss(**keys)), batch, seed=3)
    rerun = loss_and_grads(ScheduledSampling(model, ss(use_cache=False, **keys)), batch, seed=3)
    assert_same(cached, rerun)
    assert cached[1]["model_input_fraction"].item() > 0.2
    # Another seed draws other inputs: the equality above is not that of two teacher-forced passes.
    assert not torch.isclose(loss_and_grads(ScheduledSampling(model, ss(**keys)), batch, seed=4)[0], cached[0])


@pytest.mark.parametrize("feed, passes", [("sample", 1), ("argmax", 1), ("softmax", 1), ("gumbel", 1),
                                          ("sample", 3), ("gumbel", 2)])
def test_parallel_passes_follow_their_definition(feed, passes):
    """One pass is the two-pass scheme (Mihaylova & Martins); more passes reuse the same coins."""
    model, task = make_model("translation_rnn")
    batch = make_batch(task)
    eps, tau = 0.4, 0.5
    got = loss_and_grads(ScheduledSampling(model, ss(mode="parallel", passes=passes, epsilon=eps, feed=feed, tau=tau)), batch, seed=5)

    # Written out: coins for every (row, position), then passes without gradient, each replacing the
    # input at t + 1 by what its prediction at t makes where the coin says so, and the loss pass.
    model.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    inputs, mask = batch.inputs, batch.target_mask
    coin_gold = torch.rand(inputs.shape) < eps
    use_model = mask & ~coin_gold
    use_model[:, 0] = False
    memory = model.encode(batch.context)
    soft = feed in ("softmax", "gumbel")
    gold = F.one_hot(inputs, VOCAB.size).float() if soft else inputs
    mixed = gold
    for _ in range(passes):
        with torch.no_grad():
            logits = model(mixed, memory)[:, :-1]
        if feed == "sample":
            made = categorical(logits)
        elif feed == "argmax":
            made = logits.argmax(-1)
        elif feed == "softmax":
            made = logits.softmax(-1)
        else:  # the Gumbel-softmax sample softmax((o + g) / τ), g = -log(-log U)
            g = -torch.log(-torch.log(torch.rand(logits.shape).clamp(min=torch.finfo().tiny)))
            made = ((logits + g) / tau).softmax(-1)
        mixed = gold.clone()
        mixed[:, 1:] = torch.where(use_model[:, 1:, None] if soft else use_model[:, 1:], made, gold[:, 1:])
    loss = token_nll(model(mixed, memory), batch.targets, mask).sum() / mask.sum()
    loss.backward()
    want = (loss.detach(), None, {n: p.grad for n, p in model.named_parameters()})
    assert_same(got, want)
    assert got[1]["model_input_fraction"].item() > 0


def test_model_input_fraction_is_one_minus_epsilon_on_real_positions():
    model, task = make_model("lm_rnn")
    batch = make_batch(task, lengths=[15] * 32 + [3] * 32)  # the short rows' padding must not count
    objective = ScheduledSampling(model, ss(schedule="linear", k=1.0, c=0.1, mode="parallel", feed="argmax"))
    for step in (3, 7):
        torch.manual_seed(step)
        _, metrics = objective(batch, step)
        eps = epsilon(objective.cfg, step)
        assert metrics["epsilon"].item() == pytest.approx(1.0 - 0.1 * step)
        # 32 * 15 + 32 * 3 = 576 mixable positions: the standard deviation of the fraction is < 0.021.
        assert abs(metrics["model_input_fraction"].item() - (1 - eps)) < 0.07


@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled")
@pytest.mark.parametrize("name, mode, feed", [
    ("lm_rnn", "sequential", "sample"), ("lm_transformer", "sequential", "sample"),
    ("translation_rnn", "parallel", "sample"), ("lm_transformer", "parallel", "softmax"),
    ("translation_bart", "parallel", "gumbel"),
])
def test_no_gradient_reaches_the_model_tokens(name, mode, feed):
    """With ε = 0, the gradient is exactly that of the cross-entropy on the inputs that were fed, taken
    as constants: no gradient reaches the loss through the model tokens or probability vectors."""
    model, task = make_model(name)
    batch = make_batch(task)
    seen = record(model, "forward")
    with torch.autograd.detect_anomaly():
        got = loss_and_grads(ScheduledSampling(model, ss(epsilon=0.0, feed=feed, mode=mode)), batch, seed=2)
    fed = seen[-1]  # the loss pass's inputs
    assert fed.shape[-1] == VOCAB.size if feed in ("softmax", "gumbel") else not torch.equal(fed, batch.inputs)
    model.zero_grad(set_to_none=True)
    loss = token_nll(model(fed, model.encode(batch.context)), batch.targets, batch.target_mask).sum()
    loss = loss / batch.target_mask.sum()
    loss.backward()
    assert_same(got, (loss.detach(), None, {n: p.grad for n, p in model.named_parameters()}))


def chi_square(counts: torch.Tensor) -> float:
    expected = counts.sum() / len(counts)
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("name", ["lm_rnn", "captioning_vit"])
def test_uniform_replacement_feeds_uniform_ordinary_tokens_in_one_pass(name):
    """With `replacement: uniform` and ε = 0, every real input after BOS is uniform over the ids other
    than PAD, BOS and EOS (3 .. 11 here, UNK included), though the model puts all its mass on token 7;
    the inputs are made without a prediction (no step, one forward pass: the loss pass), and both modes
    feed the same draws."""
    model, task = make_model(name)
    batch = make_batch(task, lengths=[15] * 200 + [3] * 10)  # 200 · 15 + 10 · 3 = 3030 draws
    seen, steps = record(peaked(model, 7), "forward"), record(model, "step")
    fed = {}
    for mode in ("sequential", "parallel"):
        objective = ScheduledSampling(model, ss(epsilon=0.0, replacement="uniform", mode=mode, passes=3))
        _, metrics = objective(batch, 0, RowNoise("k", None, len(batch)))
        assert metrics["model_input_fraction"].item() == 1.0
        fed[mode] = seen[-1]
    assert len(seen) == 2 and not steps
    assert torch.equal(fed["sequential"], fed["parallel"])
    mixable = batch.target_mask.clone()
    mixable[:, 0] = False
    drawn = fed["sequential"][mixable]
    assert torch.equal(fed["sequential"][~mixable], batch.inputs[~mixable])
    assert drawn.min() >= 3 and drawn.max() < VOCAB.size  # never PAD (0), BOS (1) or EOS (2)
    counts = torch.bincount(drawn, minlength=VOCAB.size)[3:].double()
    # 8 degrees of freedom: P[χ² > 26.12] = 0.001 under uniformity. Feeding the model's sample (all 7s)
    # gives χ² = 8 · 3030.
    assert chi_square(counts) < 26.12, counts
    # A different noise draws other tokens.
    ScheduledSampling(model, ss(epsilon=0.0, replacement="uniform"))(batch, 0, RowNoise("other", None, len(batch)))
    assert not torch.equal(seen[-1], fed["sequential"])


def test_uniform_replacement_skips_the_special_ids_wherever_they_are():
    """The special ids need not be the first ones, and BOS may be EOS (GPT-2's tokenizer)."""
    vocab = Vocab(size=9, pad_id=8, bos_id=4, eos_id=4, unk_id=0)
    objective = ScheduledSampling(RNNGenerator(vocab, RNNConfig(embedding_dim=8, hidden_dim=8), "lm"),
                                  ss(replacement="uniform"))
    drawn = objective._uniform_tokens(torch.Size([700, 10]), torch.device("cpu"), torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn.flatten(), minlength=vocab.size).double()
    assert counts[4] == 0 and counts[8] == 0
    assert chi_square(counts[[0, 1, 2, 3, 5, 6, 7]]) < 22.46  # 6 degrees of freedom, p = 0.001


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_uniform_replacement_keeps_the_loss(mode):
    """The loss, label smoothing included, and its gradient are those of the cross-entropy of the gold
    targets on the inputs that were fed, taken as constants."""
    model, task = make_model("translation_bart")
    batch = make_batch(task, lengths=[6, 4, 6, 2, 5, 6])
    seen = record(model, "forward")
    got = loss_and_grads(ScheduledSampling(model, ss(epsilon=0.5, replacement="uniform", mode=mode,
                                                     label_smoothing=0.1)), batch, seed=2)
    fed = seen[-1]
    assert not torch.equal(fed, batch.inputs) and 0 < got[1]["model_input_fraction"].item() < 1
    model.zero_grad(set_to_none=True)
    logits = model(fed, model.encode(batch.context))
    loss = token_nll(logits, batch.targets, batch.target_mask, 0.1).sum() / batch.target_mask.sum()
    loss.backward()
    assert_same(got, (loss.detach(), None, {n: p.grad for n, p in model.named_parameters()}))
    nll = token_nll(logits.detach(), batch.targets, batch.target_mask).sum() / batch.target_mask.sum()
    torch.testing.assert_close(got[1]["nll"], nll)


@pytest.mark.parametrize("keys, message", [
    ({"mode": "sequential", "feed": "gumbel"}, "objective.feed=gumbel needs objective.mode=parallel"),
    ({"mode": "sequential", "feed": "softmax"}, "objective.feed=softmax needs objective.mode=parallel"),
    ({"mode": "parallel", "passes": 0}, "objective.passes must be >= 1, got 0"),
    ({"schedule": "exponential", "k": 2.0}, r"objective.k must be in \(0, 1\]"),
    ({"mode": "parallel", "feed": "gumbel", "tau": 0.0}, "objective.tau must be positive"),
    ({"label_smoothing": 1.0}, r"objective.label_smoothing must be in \[0, 1\)"),
    ({"replacement": "uniform", "feed": "argmax"},
     "objective.feed=argmax makes an input from the model's prediction, but objective.replacement=uniform"),
    ({"replacement": "uniform", "mode": "parallel", "feed": "softmax"}, "objective.feed=softmax makes an input"),
])
def test_inconsistent_settings_are_one_line_errors_when_the_config_is_made(keys, message):
    with pytest.raises(UserError, match=message) as info:
        ss(**keys)
    assert "\n" not in str(info.value)
    overrides = ["objective.name=scheduled_sampling"] + [f"objective.{k}={v}" for k, v in keys.items()]
    with pytest.raises(UserError, match=message):
        load_config(None, overrides)


@pytest.mark.parametrize("replacement", ["model", "uniform"])
def test_draws_come_from_the_noise_given_and_rows_draw_alike_in_any_process(replacement):
    """The coins and model (or uniform) tokens come from the RowNoise passed in: the same noise gives
    the same inputs whatever torch's global generator holds, and a process holding rows 1 and 3 of a
    global batch of 4 feeds them exactly what one process holding all 4 feeds them."""
    model, task = make_model("lm_rnn")
    batch = make_batch(task, lengths=[6, 4, 6, 5])
    objective = ScheduledSampling(model, ss(epsilon=0.3, feed="sample", replacement=replacement))
    seen = record(model, "forward")

    def fed(batch, noise, seed):
        torch.manual_seed(seed)
        objective(batch, 0, noise)
        return seen[-1]

    whole = fed(batch, RowNoise("k", None, 4), seed=0)
    assert not torch.equal(whole, batch.inputs)
    assert torch.equal(fed(batch, RowNoise("k", None, 4), seed=1), whole)
    assert not torch.equal(fed(batch, RowNoise("other", None, 4), seed=0), whole)
    rows = torch.tensor([1, 3])
    part = fed(batch.select(rows), RowNoise("k", rows, 4), seed=2)
    width = part.shape[1]
    assert torch.equal(part, whole[rows, :width])


# ---------------------------------------------------------------------------------------------------
# Through the training loop


def run_config(tmp_path: Path, name: str, max_steps: int, *overrides: str):
    words = ["the", "a", "dog", "cat", "runs", "sleeps", "in", "on", "park", "grass", "red", "big"]
    g = torch.Generator().manual_seed(0)
    lines = [" ".join(words[int(i)] for i in torch.randint(len(words), (int(n),), generator=g))
             for n in torch.randint(1, 8, (24,), generator=g)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    return load_config(None, [
        f"data.train={tmp_path / 'train.txt'}", "data.source=text", "data.batch_size=4",
        f"output_dir={tmp_path / name}", f"train.max_steps={max_steps}", "train.log_every=1",
        "train.eval_every=100", "train.save_every=100", "train.num_samples=0", "train.tensorboard=false",
        "model.embedding_dim=8", "model.hidden_dim=8", "model.dropout=0.2", "train.lr=0.01",
        "objective.name=scheduled_sampling", "objective.schedule=linear", "objective.k=1.0", "objective.c=0.1",
        *overrides])


@pytest.mark.parametrize("overrides", [(), ("objective.replacement=uniform",)])
def test_training_logs_the_schedule_and_resumes_it_exactly(tmp_path, overrides):
    whole, _ = train(run_config(tmp_path, "whole", 8, *overrides))
    train(run_config(tmp_path, "parts", 4, *overrides))
    resumed, _ = train(run_config(tmp_path, "parts", 8, *overrides), resume=True)
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=f"{name} differs after resuming")

    cfg = run_config(tmp_path, "whole", 8).objective
    for run in ("whole", "parts"):
        logs = [r for r in read_log(tmp_path / run / "logs" / "metrics.jsonl") if "train/epsilon" in r]
        # The metrics logged at step s are those of the step taken at s - 1.
        assert [r["step"] for r in logs] == list(range(1, 9))
        assert [r["train/epsilon"] for r in logs] == pytest.approx([epsilon(cfg, s - 1) for s in range(1, 9)])
        fractions = [r["train/model_input_fraction"] for r in logs]
        assert fractions[0] == 0.0 and all(0 <= f <= 1 for f in fractions) and max(fractions) > 0


@pytest.mark.slow
def test_debug_recipe_through_the_cli(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "seqgen", "train", "recipes/debug/lm_ss.yaml",
                           f"output_dir={out}", "train.max_steps=4", "train.log_every=2",
                           "train.eval_every=4", "train.save_every=4"],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = [r for r in read_log(out / "logs" / "metrics.jsonl") if "train/epsilon" in r]
    assert [r["step"] for r in logs] == [2, 4]
    assert all(0 <= r["train/model_input_fraction"] <= 1 for r in logs)
    assert (out / "model" / "model.safetensors").is_file()
