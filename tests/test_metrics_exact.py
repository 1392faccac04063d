import itertools
import math
from collections import Counter
from collections.abc import Callable

import pytest
import torch

from seqgen.config import DecodeConfig
from seqgen.data.batch import Batch, Vocab
from seqgen.data.synthetic.oracle import OracleLSTM
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.data.tokenizer import fixed_tokenizer, vocab_of
from seqgen.errors import UserError
from seqgen.functional import binary_entropy
from seqgen.metrics.exact import (
    js_pi,
    kl,
    kl_to_product_of_marginals,
    model_log_probs,
    optimal_critic,
    optimal_critic_value,
    product_of_marginals,
    symbol_token_ids,
    total_variation,
    toy_metrics,
)
from seqgen.metrics.likelihood import sequence_nll
from seqgen.metrics.oracle import (
    nll_oracle,
    nll_test,
    oracle_metrics,
    sample_fixed_length,
    sequence_log_probs,
)
from seqgen.models.base import Generator
from seqgen.models.configs import RNNConfig
from seqgen.models.rnn import RNNGenerator
from seqgen.sampling import generate

SPECIALS = 4  # PAD, BOS, EOS, UNK come before the symbols in the fixed tokenizer
TOYS = [("joint", 3, 2), ("markov", 3, 3), ("markov", 2, 1)]


def fixed_vocab(num_symbols: int) -> Vocab:
    return Vocab(size=SPECIALS + num_symbols, pad_id=0, bos_id=1, eos_id=2, unk_id=3)


def rnn(num_symbols: int, seed: int = 0) -> RNNGenerator:
    torch.manual_seed(seed)
    cfg = RNNConfig(embedding_dim=8, hidden_dim=8)
    return RNNGenerator(fixed_vocab(num_symbols), cfg, "lm").eval()


def random_probs(n: int, gen: torch.Generator, zeros: int = 0) -> torch.Tensor:
    p = torch.rand(n, generator=gen, dtype=torch.float64) ** 3
    p[torch.randperm(n, generator=gen)[:zeros]] = 0.0
    return p / p.sum()


class SteppedGenerator(Generator):
    """A test generator defined by its `step`: `forward` runs the steps, and nothing is saved."""

    def forward(self, inputs, memory=None):
        logits, state = [], None
        for t in range(inputs.shape[1]):
            out, state = self.step(inputs[:, t], memory, state)
            logits.append(out)
        return torch.stack(logits, 1)

    def save_weights(self, directory):
        raise NotImplementedError

    def load_weights(self, directory):
        raise NotImplementedError


class TableGenerator(SteppedGenerator):
    """A language model that looks up log Q(next | whole prefix) in a table, one row per prefix of symbol
    tokens of length < `max_prefix + 1`. Other prefixes (after EOS, beyond the toy) read an arbitrary row."""

    family = "table"

    def __init__(self, vocab: Vocab, max_prefix: int,
                 next_log_probs: Callable[[tuple[int, ...]], torch.Tensor]) -> None:
        super().__init__(vocab)
        self.base = vocab.size + 1  # digit 0 is the empty prefix, so prefixes of any length differ
        table = torch.zeros(self.base ** max_prefix, vocab.size)
        symbols = range(SPECIALS, vocab.size)
        for k in range(max_prefix + 1):
            for prefix in itertools.product(symbols, repeat=k):
                row = self._code(prefix)
                if row < len(table):
                    table[row] = next_log_probs(prefix)
        self.register_buffer("table", table)

    def _code(self, prefix: tuple[int, ...]) -> int:
        code = 0
        for token in prefix:
            code = code * self.base + token + 1
        return code

    def _logits(self, code: torch.Tensor) -> torch.Tensor:
        return self.table[code.clamp(max=len(self.table) - 1)]

    @property
    def input_embeddings(self) -> torch.Tensor:
        return self.table

    def encode(self, context):
        return None

    def step(self, inputs, memory, state):
        code = torch.zeros_like(inputs) if state is None else state * self.base + inputs + 1
        return self._logits(code), code



def conditionals_of(toy: ToyDistribution) -> Callable[[tuple[int, ...]], torch.Tensor]:
    """P(next token | prefix of symbol tokens) of the toy, read off the enumerated distribution."""
    seqs, probs = toy.enumerate()
    mass: Counter = Counter()
    for seq, p in zip(seqs, probs.tolist()):
        tokens = tuple(x + SPECIALS for x in seq) + (2,)
        for k in range(len(tokens) + 1):
            mass[tokens[:k]] += p
    size = SPECIALS + toy.vocab_size

    def next_log_probs(prefix):
        if mass[prefix] == 0:
            return torch.zeros(size)
        return torch.tensor([mass[prefix + (v,)] / mass[prefix] for v in range(size)]).log()

    return next_log_probs


def table_of(toy: ToyDistribution, next_log_probs=None) -> TableGenerator:
    return TableGenerator(fixed_vocab(toy.vocab_size), toy.max_length, next_log_probs or conditionals_of(toy))


# --------------------------------------------------------------------------------------------------
# divergences over explicit vectors


def test_divergences_of_a_distribution_to_itself_are_zero():
    p = random_probs(7, torch.Generator().manual_seed(0), zeros=2)
    assert kl(p, p) == 0.0 and total_variation(p, p) == 0.0
    for pi in (0.1, 0.5, 0.9):
        assert js_pi(p, p, pi) == pytest.approx(0.0, abs=1e-15)


def test_divergences_match_hand_computed_values():
    p, q = [0.5, 0.5], [0.25, 0.75]
    assert kl(p, q) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), abs=1e-15)
    assert kl(q, p) == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5), abs=1e-15)
    assert total_variation(p, q) == pytest.approx(0.25, abs=1e-15)
    # π = 1/4: M = (1/4)P + (3/4)Q = (5/16, 11/16)
    m = [5 / 16, 11 / 16]
    expected = 0.25 * sum(a * math.log(a / b) for a, b in zip(p, m)) + 0.75 * sum(
        a * math.log(a / b) for a, b in zip(q, m))
    assert js_pi(p, q, 0.25) == pytest.approx(expected, abs=1e-15)
    # three points with disjoint and shared mass; 0 · log 0 = 0 and p > 0 = q gives inf
    p3, q3 = [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]
    assert kl(p3, q3) == math.inf and kl([0.0, 1.0, 0.0], q3) == pytest.approx(math.log(2))
    assert js_pi(p3, q3, 0.5) == pytest.approx(0.5 * math.log(2), abs=1e-15)
    assert total_variation(p3, q3) == pytest.approx(0.5)
    # disjoint supports reach the bound H(π)
    for pi in (0.5, 0.2):
        assert js_pi([1.0, 0.0], [0.0, 1.0], pi) == pytest.approx(binary_entropy(pi), abs=1e-15)
    assert binary_entropy(0.5) == pytest.approx(math.log(2))


@pytest.mark.parametrize("seed", range(3))
def test_js_pi_tends_to_both_kls_at_the_ends(seed):
    gen = torch.Generator().manual_seed(seed)
    p, q = random_probs(3, gen), random_probs(3, gen)
    eps = 1e-6
    # With full supports, expanding log(1 + π(P/Q - 1)) to second order gives
    # JS_π/π = KL[P‖Q] - (π/2) χ²(P‖Q) + O(π²), χ²(P‖Q) = Σ (P - Q)² / Q; the π log π terms of the
    # general case come only from points where one side has no mass, which would make the KL infinite.
    chi_pq, chi_qp = float(((p - q) ** 2 / q).sum()), float(((p - q) ** 2 / p).sum())
    low = js_pi(p, q, eps) / eps
    assert low == pytest.approx(kl(p, q) - eps / 2 * chi_pq, abs=eps * 1e-2 * chi_pq + 1e-9)
    high = js_pi(p, q, 1 - eps) / eps
    assert high == pytest.approx(kl(q, p) - eps / 2 * chi_qp, abs=eps * 1e-2 * chi_qp + 1e-9)
    assert abs(low - kl(p, q)) > 0.2 * eps * chi_pq  # the correction is really there, of that size


@pytest.mark.parametrize("pi", [0.05, 0.3, 0.5, 0.8])
def test_optimal_critic_value_is_js_pi_minus_entropy_of_pi(pi):
    gen = torch.Generator().manual_seed(int(pi * 100))
    for zeros in (0, 3):
        p, q = random_probs(10, gen, zeros), random_probs(10, gen, zeros)
        js = js_pi(p, q, pi)
        assert 0.0 < js <= binary_entropy(pi)
        best = optimal_critic_value(p, q, pi)
        assert best == pytest.approx(js - binary_entropy(pi), abs=1e-12)
        # no other critic does better
        d_star = optimal_critic(p, q, pi).nan_to_num(0.5).clamp(1e-12, 1 - 1e-12)
        for _ in range(5):
            d = (d_star + 0.05 * torch.randn(10, generator=gen, dtype=torch.float64)).clamp(1e-6, 1 - 1e-6)
            value = float(pi * (p * d.log()).sum() + (1 - pi) * (q * (1 - d).log()).sum())
            assert value < best


def test_pi_outside_the_open_interval_is_a_user_error():
    with pytest.raises(UserError, match="pi"):
        js_pi([1.0], [1.0], 1.0)


# --------------------------------------------------------------------------------------------------
# product of marginals


@pytest.mark.parametrize("kind,V,L", TOYS)
def test_product_of_marginals_matches_the_toys_marginals_and_multi_information(kind, V, L):
    toy = ToyDistribution(V, L, kind, concentration=0.5, seed=3)
    seqs, p = toy.enumerate()
    marginals = toy.marginals()
    padded = [list(s) + [toy.end] * (L - len(s)) for s in seqs]
    expected = torch.tensor([math.prod(marginals[t, x].item() for t, x in enumerate(row)) for row in padded],
                            dtype=torch.float64)
    assert torch.allclose(product_of_marginals(seqs, p), expected, rtol=1e-12, atol=0)
    assert kl_to_product_of_marginals(p, seqs, p) == pytest.approx(toy.multi_information(), abs=1e-12)
    if kind == "joint":
        assert product_of_marginals(seqs, p).sum().item() == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# model probabilities of a toy's support


def test_symbol_token_ids_follow_the_fixed_tokenizer():
    tokenizer = fixed_tokenizer(["a", "b", "c"])
    ids = symbol_token_ids(vocab_of(tokenizer), 3)
    assert ids.tolist() == tokenizer.convert_tokens_to_ids(["a", "b", "c"]) == [4, 5, 6]
    with pytest.raises(UserError, match="vocabulary"):
        symbol_token_ids(vocab_of(tokenizer), 4)


@pytest.mark.parametrize("kind,V,L", TOYS)
def test_a_model_equal_to_p_has_zero_divergences(kind, V, L):
    toy = ToyDistribution(V, L, kind, concentration=0.5, seed=1)
    model = table_of(toy)
    _, p = toy.enumerate()
    assert torch.allclose(model_log_probs(model, toy, batch_size=5).exp(), p, atol=1e-6)
    m = toy_metrics(model, toy, pis=(0.5, 0.1))
    for key in ("kl_p_q", "kl_q_p", "js_pi0.5", "js_pi0.1_over_pi", "tv_p_q", "q_mass_outside"):
        assert m[key] == pytest.approx(0.0, abs=1e-5), key
    assert m["multi_information_p"] == pytest.approx(toy.multi_information(), abs=1e-12)
    assert m["kl_q_prod_marginals"] == pytest.approx(m["multi_information_p"], abs=1e-5)
    assert m["cross_entropy_p_q"] == pytest.approx(m["entropy_p"], abs=1e-5)


def test_a_model_equal_to_the_product_of_marginals_is_multi_information_away():
    toy = ToyDistribution(3, 3, "joint", concentration=0.3, seed=2)
    marginals = toy.marginals()  # (L, V + 1), END column empty for a joint toy

    def next_log_probs(prefix):
        probs = torch.zeros(SPECIALS + 3)
        if len(prefix) < 3:
            probs[SPECIALS:] = marginals[len(prefix), :3]
        else:
            probs[2] = 1.0  # EOS after L symbols
        return probs.log()

    m = toy_metrics(table_of(toy, next_log_probs), toy)
    assert m["multi_information_p"] > 0.05
    assert m["kl_p_q"] == pytest.approx(m["multi_information_p"], abs=1e-5)
    assert m["kl_q_prod_marginals"] == pytest.approx(0.0, abs=1e-5)
    assert m["q_mass_outside"] == pytest.approx(0.0, abs=1e-6)


def test_mass_outside_the_support_is_reported_and_conditioned_away():
    toy = ToyDistribution(2, 2, "markov", concentration=0.5, seed=4)
    delta = 0.3
    conditionals = conditionals_of(toy)

    def leaky(prefix):  # Q(x) = (1 - δ) P(x): the first token is PAD with probability δ
        if prefix:
            return conditionals(prefix)
        probs = (1 - delta) * conditionals(prefix).exp()
        probs[0] += delta
        return probs.log()

    model = table_of(toy, leaky)
    assert model_log_probs(model, toy).exp().sum().item() == pytest.approx(1 - delta, abs=1e-6)
    m = toy_metrics(model, toy)
    assert m["q_mass_outside"] == pytest.approx(delta, abs=1e-6)
    assert m["kl_p_q"] == pytest.approx(0.0, abs=1e-6) and m["kl_q_p"] == pytest.approx(0.0, abs=1e-6)
    assert m["cross_entropy_p_q"] == pytest.approx(m["entropy_p"] - math.log(1 - delta), abs=1e-6)


def test_model_log_probs_of_an_rnn_match_step_by_step_decoding_and_its_samples():
    toy = ToyDistribution(2, 3, "markov", seed=0)
    model = rnn(2, seed=1)
    log_q = model_log_probs(model, toy, batch_size=4)
    expected = []
    for seq in toy.support():
        state, inputs, total = None, torch.tensor([1]), 0.0
        for token in [x + SPECIALS for x in seq] + [2]:
            logits, state = model.step(inputs, None, state)
            total += logits.double().log_softmax(-1)[0, token].item()
            inputs = torch.tensor([token])
        expected.append(total)
    assert torch.allclose(log_q, torch.tensor(expected, dtype=torch.float64), atol=1e-5)

    # q_mass_outside is the share of the model's own samples that the toy cannot produce
    m = toy_metrics(model, toy, pis=(1e-6,))
    n = 4000
    out = generate(model, DecodeConfig(strategy="sample", max_new_tokens=3), num_sequences=n,
                   rng=torch.Generator().manual_seed(0))
    inside = 0
    for row in out.tolist():
        if 2 in row:
            body = row[: row.index(2)]
            inside += 1 <= len(body) <= 3 and all(t >= SPECIALS for t in body)
    outside = 1 - inside / n
    assert 0.05 < m["q_mass_outside"] < 0.95
    assert outside == pytest.approx(m["q_mass_outside"], abs=5 * math.sqrt(0.25 / n))
    assert m["js_pi1e-06_over_pi"] == pytest.approx(m["kl_p_q"], rel=1e-3)
    assert 0 < m["tv_p_q"] < 1 and m["kl_q_p"] > 0


# --------------------------------------------------------------------------------------------------
# oracle NLLs


class OracleGenerator(SteppedGenerator):
    """The oracle itself behind the Generator interface, with the fixed tokenizer's ids (the oracle's
    token i is id 4 + i) and special tokens that are never predicted."""

    family = "oracle"

    def __init__(self, oracle: OracleLSTM) -> None:
        super().__init__(fixed_vocab(oracle.vocab_size))
        self.oracle = oracle

    @property
    def input_embeddings(self) -> torch.Tensor:
        return self.oracle.embedding

    def encode(self, context):
        return None

    def step(self, inputs, memory, state):
        if state is None:
            x, h, c = self.oracle._start(inputs.shape[0])  # the oracle's own start token stands for BOS
        else:
            (h, c), x = state, self.oracle.embedding[inputs - SPECIALS]
        logits, h, c = self.oracle._step(x, h, c)
        return torch.cat([torch.full_like(logits[:, :SPECIALS], -math.inf), logits], 1), (h, c)



def test_nll_test_of_the_oracle_itself_is_the_oracles_own_nll():
    oracle = OracleLSTM.random(vocab_size=7, hidden_dim=6, length=5, seed=0)
    model = OracleGenerator(oracle)
    expected = oracle.nll_per_token(oracle.sample(50, seed=3))
    assert nll_test(model, oracle, 50, seed=3, batch_size=16) == pytest.approx(expected, rel=1e-5)
    assert oracle_metrics(model, oracle, 50, seed=3)["nll_test"] == pytest.approx(expected, rel=1e-5)


def test_nll_oracle_of_the_oracles_own_samples_is_its_entropy_rate():
    oracle = OracleLSTM.random(vocab_size=6, hidden_dim=8, length=5, seed=1)
    n = 3000
    got = nll_oracle(OracleGenerator(oracle), oracle, n, seed=0, batch_size=1000)
    # the entropy rate, estimated independently from the oracle's own sampler
    log_p = oracle.sample_with_log_prob(n, seed=1)[1] / oracle.length
    stderr = float(log_p.std()) / math.sqrt(n)
    assert got == pytest.approx(float(-log_p.mean()), abs=5 * math.sqrt(2) * stderr)
    assert nll_oracle(OracleGenerator(oracle), oracle, 64, seed=5) == nll_oracle(
        OracleGenerator(oracle), oracle, 64, seed=5)


@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_fixed_length_samples_follow_the_masked_model(alpha):
    model = rnn(3, seed=2)
    seqs = torch.tensor(list(itertools.product(range(3), repeat=2)))
    probs = sequence_log_probs(model, seqs, 3, alpha=alpha).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)  # Q_T is a distribution over V^T
    n = 20_000
    samples = sample_fixed_length(model, 3, 2, n, seed=0, alpha=alpha, batch_size=7000)
    assert samples.shape == (n, 2) and samples.min() >= 0 and samples.max() <= 2
    counts = Counter(map(tuple, samples.tolist()))
    for seq, p in zip(map(tuple, seqs.tolist()), probs.tolist()):
        assert counts[seq] / n == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / n)), seq


def test_full_vocabulary_nll_test_is_the_held_out_nll_with_eos():
    oracle = OracleLSTM.random(vocab_size=5, hidden_dim=4, length=4, seed=2)
    model = rnn(5, seed=3)
    n = 40
    x = oracle.sample(n, seed=7)
    tokens = torch.cat([torch.ones(n, 1, dtype=torch.long), x + SPECIALS, torch.full((n, 1), 2)], 1)
    batch = Batch(tokens=tokens, mask=torch.ones_like(tokens, dtype=torch.bool))
    expected = sequence_nll(model, batch).sum().item() / (n * 5)
    assert nll_test(model, oracle, n, seed=7, fixed_length=False) == pytest.approx(expected, rel=1e-5)
    # the fixed-length version drops the special tokens' mass and EOS, so it is lower here
    assert nll_test(model, oracle, n, seed=7) < expected


def test_oracle_metrics_reject_a_model_of_another_vocabulary():
    oracle = OracleLSTM.random(vocab_size=5, hidden_dim=4, length=3, seed=0)
    with pytest.raises(UserError, match="vocabulary"):
        nll_oracle(rnn(4), oracle, 10, seed=0)
    with pytest.raises(UserError, match="alpha"):
        nll_test(rnn(5), oracle, 10, seed=0, alpha=0.0)
