"""Mixed precision: bf16 and fp16 autocast for both families and every task, float32 logits, a fused RNN
that falls back to float32 where the CPU cannot run it in low precision, and one loss scaler per
optimizer, checkpointed with the run."""

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from seqgen import precision
from seqgen.config import load_config
from seqgen.data.batch import Vocab
from seqgen.models.configs import RNNConfig, TransformerConfig
from seqgen.models.encoders import LSTM
from seqgen.models.hf import build_transformer
from seqgen.models.rnn import RNNGenerator
from seqgen.tracking import read_log
from seqgen.train import train

VOCAB = Vocab(size=20, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
IDS = torch.randint(4, 20, (3, 6), generator=torch.Generator().manual_seed(0))


def _generators():
    torch.manual_seed(0)
    yield RNNGenerator(VOCAB, RNNConfig(embedding_dim=8, hidden_dim=16), "lm")
    yield build_transformer(VOCAB, TransformerConfig(arch="gpt2", num_hidden_layers=1, hidden_size=16,
                                              num_attention_heads=2, max_positions=16), "lm")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_logits_are_float32_and_close_under_autocast(dtype):
    for generator in _generators():
        generator.eval()
        reference = generator(IDS)
        with torch.autocast("cpu", dtype=dtype):
            logits = generator(IDS)
            stepped, _ = generator.step(IDS[:, 0], None, None)
        assert logits.dtype == stepped.dtype == torch.float32, generator.family
        assert not torch.equal(logits, reference), f"{generator.family}: autocast changed nothing"
        torch.testing.assert_close(logits, reference, atol=0.05, rtol=0.05)
        torch.testing.assert_close(stepped, reference[:, 0], atol=0.05, rtol=0.05)


@pytest.fixture
def failing_low_precision_rnn(monkeypatch):
    """Make torch's fused LSTM fail under CPU autocast, as oneDNN does on a CPU without bf16 support."""
    real = nn.LSTM.forward

    def forward(self, *args, **kwargs):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("could not create a primitive descriptor for an LSTM forward propagation primitive")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(nn.LSTM, "forward", forward)
    precision.low_precision_rnn_supported.cache_clear()
    yield
    precision.low_precision_rnn_supported.cache_clear()  # what the probe found here is this test's alone


def test_a_cpu_without_low_precision_rnns_runs_them_in_float32(failing_low_precision_rnn):
    assert not precision.low_precision_rnn_supported(torch.bfloat16)
    torch.manual_seed(0)
    layer = LSTM(8, 8, batch_first=True)
    x = torch.randn(2, 5, 8)
    reference, _ = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h, _) = layer(x)
    assert out.dtype == h.dtype == torch.float32
    assert torch.equal(out, reference)


def test_the_probe_finds_this_cpus_low_precision_rnn():
    """On a CPU that runs it, the fused LSTM keeps autocast's dtype (no fallback)."""
    precision.low_precision_rnn_supported.cache_clear()
    if not precision.low_precision_rnn_supported(torch.bfloat16):
        pytest.skip("this CPU cannot run an LSTM in bf16: the fallback path is the one taken")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = LSTM(8, 8, batch_first=True)(torch.randn(2, 5, 8))
    assert out.dtype == torch.bfloat16


def _run(tmp_path, recipe: str, name: str, *overrides: str):
    return load_config(f"recipes/debug/{recipe}.yaml",
                       [f"output_dir={tmp_path / name}", "train.log_every=2", "train.eval_every=1000",
                        "train.num_samples=0", *overrides])


def _losses(folder, key: str = "train/loss") -> list[float]:
    return [r[key] for r in read_log(folder / "logs" / "metrics.jsonl") if key in r]


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
@pytest.mark.parametrize("recipe", ["lm", "lm_transformer", "translation", "captioning"])
def test_mixed_precision_trains_each_family_and_task(tmp_path, recipe, mode):
    train(_run(tmp_path, recipe, "run", "train.max_steps=12", "train.save_every=12",
               f"train.mixed_precision={mode}"))
    losses = _losses(tmp_path / "run")
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0], losses


def test_bf16_trains_an_rnn_where_the_cpu_cannot_run_it_in_low_precision(tmp_path, failing_low_precision_rnn):
    train(_run(tmp_path, "translation", "run", "train.max_steps=8", "train.save_every=8",
               "train.mixed_precision=bf16"))
    losses = _losses(tmp_path / "run")
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses


def test_fp16_adversarial_training_keeps_a_loss_scale_per_optimizer(tmp_path):
    train(_run(tmp_path, "lm_adv", "run", "train.max_steps=4", "train.save_every=2",
               "train.mixed_precision=fp16"))
    logged = [r for r in read_log(tmp_path / "run" / "logs" / "metrics.jsonl") if "train/loss" in r]
    assert logged and all({"critic/loss_scale", "train/loss_scale"} <= set(r) for r in logged)
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-0000004" / "trainer_state.json").read_text())
    assert len(state["scalers"]) == 2 and all(s["scale"] > 0 for s in state["scalers"])


def test_an_fp16_run_resumes_with_its_loss_scale(tmp_path):
    """The captioning debug run overflows in fp16 early on, so its scale drops below the initial 65536;
    a run stopped at step 6 and resumed continues from that scale and ends as the uninterrupted run."""
    args = ("train.mixed_precision=fp16", "train.save_every=6")
    train(_run(tmp_path, "captioning", "whole", "train.max_steps=10", *args))
    scales = _losses(tmp_path / "whole", "train/loss_scale")
    assert scales[2] < 65536, scales  # the scale at step 6 is one the run learned
    train(_run(tmp_path, "captioning", "parts", "train.max_steps=6", *args))
    train(_run(tmp_path, "captioning", "parts", "train.max_steps=10", *args), resume=True)
    assert _losses(tmp_path / "parts", "train/loss_scale") == scales
    whole, parts = (load_file(tmp_path / n / "model" / "model.safetensors") for n in ("whole", "parts"))
    for key in whole:
        assert torch.equal(whole[key], parts[key]), key
