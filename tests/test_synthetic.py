import io
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seqgen.config import SyntheticConfig
from seqgen.data.synthetic import shapes
from seqgen.data.synthetic.oracle import ARRAYS, OracleLSTM
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TOYS = [("joint", 4, 2), ("joint", 3, 3), ("markov", 3, 3), ("markov", 4, 1), ("markov", 2, 5)]


def chi_square(counts: Counter, seqs: list, probs: torch.Tensor) -> float:
    n = sum(counts.values())
    return sum((counts[s] - n * p) ** 2 / (n * p) for s, p in zip(seqs, probs.tolist()) if p > 0)


# --------------------------------------------------------------------------------------------------
# toy


@pytest.mark.parametrize("kind,V,L", TOYS)
def test_toy_enumerate_is_a_distribution_over_the_whole_support(kind, V, L):
    toy = ToyDistribution(V, L, kind, concentration=0.5, seed=1)
    seqs, probs = toy.enumerate()
    expected = V**L if kind == "joint" else sum(V**n for n in range(1, L + 1))
    assert len(seqs) == len(set(seqs)) == expected
    assert probs.dtype == torch.float64 and (probs > 0).all()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.equal(toy.log_prob(seqs).exp(), probs)
    assert toy.fixed_length == (kind == "joint" or L == 1)


def test_toy_markov_log_prob_is_the_chain_rule():
    toy = ToyDistribution(3, 3, "markov", seed=4)
    init, trans = toy.log_initial.exp(), toy.log_transition.exp()
    end = toy.end
    by_hand = torch.stack([
        init[2] * trans[2, end],  # (2,): ends after one symbol
        init[0] * trans[0, 1] * trans[1, end],
        init[1] * trans[1, 1] * trans[1, 2],  # full length: END is forced, no END factor
    ]).log()
    torch.testing.assert_close(toy.log_prob([(2,), (0, 1), (1, 1, 2)]), by_hand, rtol=1e-12, atol=0)


def test_toy_log_prob_outside_the_support_is_minus_infinity():
    joint, markov = ToyDistribution(3, 2, "joint"), ToyDistribution(3, 2, "markov")
    assert joint.log_prob([(0,), (0, 1, 2), (0, 3), (0, -1)]).eq(-math.inf).all()
    assert markov.log_prob([(), (0, 1, 2), (3,)]).eq(-math.inf).all()
    assert joint.log_prob([(0, 1)]).isfinite().all() and markov.log_prob([(0,)]).isfinite().all()
    assert joint.log_prob([]).shape == (0,)


@pytest.mark.parametrize("kind,V,L", TOYS)
def test_toy_sample_frequencies_match_probabilities(kind, V, L):
    toy = ToyDistribution(V, L, kind, seed=2)
    seqs, probs = toy.enumerate()
    counts = Counter(toy.sample(20_000, seed=0))
    assert set(counts) <= set(seqs)
    df = len(seqs) - 1
    assert chi_square(counts, seqs, probs) < df + 6 * math.sqrt(2 * df)
    # the statistic does tell distributions apart: the samples are far from uniform
    uniform = torch.full_like(probs, 1 / len(seqs))
    assert chi_square(counts, seqs, uniform) > df + 6 * math.sqrt(2 * df)


@pytest.mark.parametrize("kind,V,L", TOYS)
def test_toy_marginals_entropy_and_multi_information_match_enumeration(kind, V, L):
    toy = ToyDistribution(V, L, kind, concentration=0.3, seed=3)
    seqs, probs = toy.enumerate()
    marginals = torch.zeros(L, V + 1, dtype=torch.float64)
    for seq, p in zip(seqs, probs):
        for t, x in enumerate(list(seq) + [toy.end] * (L - len(seq))):
            marginals[t, x] += p
    torch.testing.assert_close(toy.marginals(), marginals, rtol=0, atol=1e-12)
    if kind == "joint":
        assert toy.marginals()[:, toy.end].eq(0).all()
    entropy = float(-(probs * probs.log()).sum())
    assert toy.entropy() == pytest.approx(entropy, abs=1e-10)
    # multi-information = KL[P || prod_t P_t] of the END-padded sequences
    padded = torch.tensor([list(s) + [toy.end] * (L - len(s)) for s in seqs])
    log_product = marginals.log().gather(1, padded.T).sum(0)
    kl = float((probs * (probs.log() - log_product)).sum())
    assert toy.multi_information() == pytest.approx(kl, abs=1e-10)
    assert toy.multi_information() >= -1e-12
    if L > 1:
        assert toy.multi_information() > 1e-3


def test_toy_is_seeded():
    a, b, c = (ToyDistribution(4, 3, "markov", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.enumerate()[1], b.enumerate()[1])
    assert not torch.equal(a.enumerate()[1], c.enumerate()[1])
    assert a.sample(50, seed=5) == b.sample(50, seed=5) != a.sample(50, seed=6)
    assert a.sample(0, seed=5) == []


def test_toy_from_config_and_texts():
    cfg = SyntheticConfig(vocab_size=5, length=3, kind="joint", concentration=0.2, seed=7)
    toy = ToyDistribution.from_config(cfg)
    assert toy.symbols == ["a", "b", "c", "d", "e"] and toy.max_length == 3
    assert torch.equal(toy.enumerate()[1], ToyDistribution(5, 3, "joint", 0.2, 7).enumerate()[1])
    texts = toy.sample_texts(20, seed=1)
    assert [tuple(toy.symbols.index(w) for w in t.split()) for t in texts] == toy.sample(20, seed=1)


@pytest.mark.parametrize("kwargs", [dict(vocab_size=17), dict(length=7), dict(length=0), dict(kind="tree"),
                                    dict(concentration=0.0)])
def test_toy_rejects_bad_config(kwargs):
    with pytest.raises(UserError):
        ToyDistribution.from_config(SyntheticConfig(**kwargs))


def test_toy_small_concentration_keeps_every_sequence_possible():
    toy = ToyDistribution(4, 4, "joint", concentration=0.002, seed=0)
    log_p = toy.log_prob(toy.support())
    assert log_p.isfinite().all()
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# oracle


def random_arrays(V: int, E: int, H: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes_ = {"embedding": (V, E), "Wo": (H, V), "bo": (V,)}
    for g in ("i", "f", "og", "c"):
        shapes_ |= {f"W{g}": (E, H), f"U{g}": (H, H), f"b{g}": (H,)}
    return {name: rng.normal(size=shapes_[name]).astype(np.float32) for name in ARRAYS}


def reference_log_prob(p: dict[str, np.ndarray], seq: list[int]) -> float:
    """The README's equations, one sequence at a time, in float64."""
    p = {k: v.astype(np.float64) for k, v in p.items()}
    sigmoid = lambda z: 1 / (1 + np.exp(-z))
    h = c = np.zeros(p["Ui"].shape[0])
    x, total = p["embedding"][0], 0.0
    for token in seq:
        i = sigmoid(x @ p["Wi"] + h @ p["Ui"] + p["bi"])
        f = sigmoid(x @ p["Wf"] + h @ p["Uf"] + p["bf"])
        o = sigmoid(x @ p["Wog"] + h @ p["Uog"] + p["bog"])
        c_tilde = np.tanh(x @ p["Wc"] + h @ p["Uc"] + p["bc"])
        c = f * c + i * c_tilde
        h = o * np.tanh(c)
        logits = h @ p["Wo"] + p["bo"]
        total += logits[token] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        x = p["embedding"][token]
    return total


def test_oracle_log_prob_matches_the_reference_equations(tmp_path):
    arrays = random_arrays(V=7, E=5, H=4, seed=0)
    np.savez(tmp_path / "oracle.npz", **arrays)
    oracle = OracleLSTM.load(tmp_path / "oracle.npz", length=6)
    x = torch.randint(0, 7, (9, 6), generator=torch.Generator().manual_seed(0))
    expected = torch.tensor([reference_log_prob(arrays, row) for row in x.tolist()], dtype=torch.float64)
    got = oracle.log_prob(x, batch_size=4)
    assert got.shape == (9,) and got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert oracle.nll_per_token(x) == pytest.approx(-expected.sum().item() / x.numel(), rel=1e-5)
    # a prefix is scored by its marginal probability
    prefix = torch.tensor([reference_log_prob(arrays, row) for row in x[:, :2].tolist()], dtype=torch.float64)
    torch.testing.assert_close(oracle.log_prob(x[:, :2]), prefix, rtol=1e-5, atol=1e-5)


def test_oracle_is_a_distribution_and_samples_follow_it():
    oracle = OracleLSTM.random(vocab_size=3, hidden_dim=4, length=3, seed=1)
    every = torch.cartesian_prod(*[torch.arange(3)] * 3)  # (27, 3)
    probs = oracle.log_prob(every).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    samples, log_p = oracle.sample_with_log_prob(20_000, seed=0, batch_size=3000)
    assert samples.shape == (20_000, 3) and samples.dtype == torch.long
    assert torch.equal(samples, oracle.sample(20_000, seed=0, batch_size=3000))
    torch.testing.assert_close(log_p, oracle.log_prob(samples), rtol=1e-6, atol=1e-6)
    counts = Counter(map(tuple, samples.tolist()))
    seqs = list(map(tuple, every.tolist()))
    df = len(seqs) - 1
    assert chi_square(counts, seqs, probs) < df + 6 * math.sqrt(2 * df)
    assert chi_square(counts, seqs, torch.full_like(probs, 1 / 27)) > df + 6 * math.sqrt(2 * df)


def test_oracle_is_seeded_and_built_from_config():
    cfg = SyntheticConfig(vocab_size=11, hidden_dim=6, length=4, seed=3)
    a, b = OracleLSTM.from_config(cfg), OracleLSTM.random(11, 6, 4, seed=3)
    c = OracleLSTM.random(11, 6, 4, seed=4)
    assert a.vocab_size == 11 and a.max_length == 4 and a.fixed_length
    assert a.symbols == [str(i) for i in range(11)]
    x = a.sample(30, seed=0)
    assert torch.equal(x, b.sample(30, seed=0)) and not torch.equal(x, a.sample(30, seed=1))
    assert torch.equal(a.log_prob(x), b.log_prob(x)) and not torch.equal(a.log_prob(x), c.log_prob(x))
    assert a.sample_texts(30, seed=0) == [" ".join(map(str, row)) for row in x.tolist()]
    assert a.sample(0, seed=0).shape == (0, 4)


def test_oracle_weight_file_errors_name_the_file_and_problem(tmp_path):
    with pytest.raises(UserError, match="not found: .*missing.npz"):
        OracleLSTM.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    with pytest.raises(UserError, match="junk.npz"):
        OracleLSTM.load(tmp_path / "junk.npz")
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(UserError, match="pickled.npy"):
        OracleLSTM.load(tmp_path / "pickled.npy")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(UserError, match="plain.npy hold a single array"):
        OracleLSTM.load(tmp_path / "plain.npy")
    arrays = random_arrays(V=7, E=5, H=4, seed=0)
    np.savez(tmp_path / "short.npz", **{k: v for k, v in arrays.items() if k != "Uog"})
    with pytest.raises(UserError, match="short.npz lack the arrays Uog"):
        OracleLSTM.load(tmp_path / "short.npz")
    np.savez(tmp_path / "shape.npz", **(arrays | {"Wo": arrays["Wo"][:, :6]}))
    with pytest.raises(UserError, match=r"shape.npz: array Wo has shape \(4, 6\), expected \(4, 7\)"):
        OracleLSTM.load(tmp_path / "shape.npz")


@pytest.mark.slow  # 10,000 x 20 draws over 5,000 tokens: seconds on a CPU
def test_seqgan_oracle_nll_of_its_own_samples():
    path = SHARED_DATA / "seqgan_oracle" / "oracle_lstm.npz"
    if not path.exists():
        pytest.skip(f"reference data absent: {path}")
    oracle = OracleLSTM.load(path, length=20)
    assert oracle.vocab_size == 5000
    # sampling yields log P too, at half the cost of log_prob (their equality is tested above)
    x, log_p = oracle.sample_with_log_prob(10_000, seed=0)
    assert x.shape == (10_000, 20)
    assert -log_p.sum().item() / x.numel() == pytest.approx(5.749, abs=0.01)


# --------------------------------------------------------------------------------------------------
# shapes


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_shapes_render_draws_the_scene_at_its_centres():
    scene = shapes.Scene(shapes.Shape("small", "red", "circle", 20.0, 16.0), "above",
                         shapes.Shape("large", "blue", "triangle", 30.0, 46.0))
    pixels = np.asarray(shapes.render(scene, 64))
    assert tuple(pixels[16, 20]) == shapes.COLOURS["red"]
    assert tuple(pixels[46, 30]) == shapes.COLOURS["blue"]
    assert tuple(pixels[0, 0]) == shapes.BACKGROUND
    caps = shapes.captions(scene)
    assert caps[0] == "a small red circle above a large blue triangle"
    assert "there is a large blue triangle below a small red circle" in caps


def test_shapes_split_is_seeded_per_index():
    a = shapes.make_split(6, seed=0)
    assert a == shapes.make_split(6, seed=0)
    assert a[:3] == shapes.make_split(3, seed=0)
    other = shapes.make_split(6, seed=1)
    assert [e["image"] for e in a] != [e["image"] for e in other]


def test_shapes_captions_use_symbols_and_describe_the_image():
    fill = {"square": 1.0, "circle": math.pi / 4, "triangle": 0.5}  # area / bounding-box area
    words = set(shapes.SYMBOLS)
    checked = 0
    for example in shapes.make_split(60, seed=3, image_size=64):
        pixels = decode(example["image"])
        assert pixels.shape == (64, 64, 3)
        assert len(example["captions"]) == len(set(example["captions"])) > 1
        for caption in example["captions"]:
            assert caption == caption.lower() and set(caption.split()) <= words
        # "a SIZE COLOUR KIND REL a SIZE COLOUR KIND"
        first, rest = example["captions"][0].split()[1:4], example["captions"][0].split()[4:]
        relation, second = " ".join(rest[:-4]), rest[-3:]
        if first[1] == second[1]:
            continue
        found = []
        for size, colour, kind in (first, second):
            ys, xs = np.nonzero((pixels == shapes.COLOURS[colour]).all(-1))
            area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            assert min(fill, key=lambda k: abs(fill[k] - len(ys) / area)) == kind
            found.append((len(ys), ys.mean(), xs.mean()))
        (n1, y1, x1), (n2, y2, x2) = found
        if first[0] != second[0]:
            assert (n1 > n2) == (first[0] == "large")
        assert {"above": y1 < y2, "below": y1 > y2, "to the left of": x1 < x2,
                "to the right of": x1 > x2}[relation]
        checked += 1
    assert checked > 30


def test_shapes_symbols_cover_every_word():
    used = {w for e in shapes.make_split(200, seed=0) for c in e["captions"] for w in c.split()}
    assert used == set(shapes.SYMBOLS)


# --------------------------------------------------------------------------------------------------
# the data's P


@pytest.mark.parametrize("source", ["toy", "oracle"])
def test_load_data_carries_the_distribution_its_examples_were_drawn_from(source):
    from seqgen.config import load_config
    from seqgen.data import load_data
    from seqgen.data.sources import synthetic_distribution

    cfg = load_config(None, [f"data.source={source}", "data.synthetic.num_train=40", "data.synthetic.num_validation=4",
                             "data.synthetic.num_test=4", "data.synthetic.vocab_size=5", "data.synthetic.length=3",
                             "data.synthetic.hidden_dim=4", "data.synthetic.seed=2"])
    p = load_data(cfg).distribution
    expected = ToyDistribution.from_config(cfg.data.synthetic) if source == "toy" else \
        OracleLSTM.from_config(cfg.data.synthetic)
    assert type(p) is type(expected) is type(synthetic_distribution(cfg.data))
    seqs = expected.sample(10, seed=0)
    torch.testing.assert_close(p.log_prob(seqs), expected.log_prob(seqs), rtol=0, atol=0)
    other = load_config(None, [f"data.source={source}", "data.synthetic.vocab_size=5", "data.synthetic.length=3",
                               "data.synthetic.hidden_dim=4", "data.synthetic.seed=3"])
    assert not torch.equal(synthetic_distribution(other.data).log_prob(seqs), expected.log_prob(seqs))


def test_other_sources_have_no_distribution(tmp_path):
    from seqgen.config import load_config
    from seqgen.data import load_data
    from seqgen.data.sources import synthetic_distribution

    (tmp_path / "t.txt").write_text("a b\nb c\n")
    cfg = load_config(None, ["data.source=text", f"data.train={tmp_path / 't.txt'}"])
    assert synthetic_distribution(cfg.data) is None and load_data(cfg).distribution is None
    assert synthetic_distribution(load_config(None, ["data.source=shapes", "task=captioning"]).data) is None
