import pytest
import torch

from seqgen.data.batch import Context, Vocab
from seqgen.errors import UserError
from seqgen.models.configs import RNNConfig
from seqgen.models.rnn import RNNGenerator

V, B, T, S = 13, 3, 5, 6
VOCAB = Vocab(size=V, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
CELLS = ["lstm", "gru"]
TASKS = ["lm", "translation", "captioning"]


def make(cell: str, task: str, seed: int = 0, **overrides) -> RNNGenerator:
    torch.manual_seed(seed)
    cfg = RNNConfig(cell=cell, embedding_dim=6, hidden_dim=8, num_layers=2, dropout=0.1, **overrides)
    return RNNGenerator(VOCAB, cfg, task)


def context(task: str, seed: int = 1) -> Context | None:
    g = torch.Generator().manual_seed(seed)
    if task == "translation":
        lengths = torch.tensor([S, 2, 4])
        mask = torch.arange(S)[None, :] < lengths[:, None]  # (B, S)
        source = torch.randint(4, V, (B, S), generator=g).masked_fill(~mask, VOCAB.pad_id)
        return Context(source=source, source_mask=mask)
    if task == "captioning":
        return Context(pixels=torch.randn(B, 3, 16, 16, generator=g))
    return None


def ids(seed: int = 2) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def decode_steps(model: RNNGenerator, inputs: torch.Tensor, memory) -> torch.Tensor:
    state, out = None, []
    for t in range(inputs.shape[1]):
        logits, state = model.step(inputs[:, t], memory, state)
        out.append(logits)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("cell", CELLS)
def test_forward_matches_step(cell, task):
    model = make(cell, task).eval()
    memory = model.encode(context(task))
    x = ids()
    full = model(x, memory)
    assert full.shape == (B, T, V)
    torch.testing.assert_close(decode_steps(model, x, memory), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("cell", CELLS)
def test_one_hot_inputs_match_ids(cell, task):
    model = make(cell, task).eval()
    memory = model.encode(context(task))
    x = ids()
    one_hot = torch.nn.functional.one_hot(x, V).float()
    torch.testing.assert_close(model(one_hot, memory), model(x, memory), atol=1e-6, rtol=0)
    torch.testing.assert_close(model.step(one_hot[:, 0], memory, None)[0],
                               model.step(x[:, 0], memory, None)[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell,bidirectional", [("lstm", True), ("gru", False)])
def test_source_padding_does_not_leak(cell, bidirectional):
    model = make(cell, "translation", bidirectional_encoder=bidirectional).eval()
    ctx = context("translation")
    # Garbage ids under the padding: only the mask may tell the model where the source ends.
    noisy = ctx.source.masked_fill(~ctx.source_mask, 7)
    x = ids()
    batched = model(x, model.encode(Context(source=noisy, source_mask=ctx.source_mask)))
    for i in range(B):
        n = int(ctx.source_mask[i].sum())
        alone = Context(source=ctx.source[i:i + 1, :n], source_mask=ctx.source_mask[i:i + 1, :n])
        single = model(x[i:i + 1], model.encode(alone))
        torch.testing.assert_close(batched[i:i + 1], single, atol=1e-5, rtol=0)
    # The check can fail: with the mask ignored, the short example's logits change.
    full = model(x, model.encode(Context(source=noisy, source_mask=torch.ones_like(ctx.source_mask))))
    assert (full[1] - batched[1]).abs().max() > 1e-3


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_reach_every_parameter_and_probabilities(cell, task):
    model = make(cell, task).train()
    probs = torch.randn(B, T, V).softmax(-1).requires_grad_()
    logits = model(probs, model.encode(context(task)))
    (logits * torch.randn_like(logits)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert probs.grad.abs().sum() > 0


@pytest.mark.parametrize("task", TASKS)
def test_save_load_round_trip(task, tmp_path):
    model = make("lstm", task).eval()
    model.save_weights(tmp_path / "w")
    assert (tmp_path / "w" / "model.safetensors").is_file()
    other = make("lstm", task, seed=1).eval()
    ctx, x = context(task), ids()
    assert not torch.equal(other(x, other.encode(ctx)), model(x, model.encode(ctx)))
    other.load_weights(tmp_path / "w")
    assert torch.equal(other(x, other.encode(ctx)), model(x, model.encode(ctx)))
    assert other.out.weight is other.input_embeddings  # tying survives loading


def test_load_weights_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no RNN weights"):
        make("gru", "lm").load_weights(tmp_path)
    make("gru", "lm").save_weights(tmp_path)
    with pytest.raises(UserError, match="do not fit"):
        make("lstm", "lm").load_weights(tmp_path)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("cell", CELLS)
def test_select_state_and_memory_reorder(cell, task):
    model = make(cell, task).eval()
    memory = model.encode(context(task))
    x = ids()
    _, state = model.step(x[:, 0], memory, None)
    logits, new_state = model.step(x[:, 1], memory, state)
    index = torch.tensor([2, 0, 0, 1])
    picked, picked_state = model.step(x[index, 1], model.select_memory(memory, index),
                                      model.select_state(state, index))
    torch.testing.assert_close(picked, logits[index], atol=1e-6, rtol=0)
    torch.testing.assert_close(picked_state, model.select_state(new_state, index), atol=1e-6, rtol=0)


def test_tying_and_projection():
    tied = make("lstm", "lm")
    assert tied.out.weight is tied.input_embeddings and tied.proj.weight.shape == (6, 8)
    untied = make("lstm", "lm", tie_embeddings=False)
    assert untied.out.weight is not untied.input_embeddings and isinstance(untied.proj, torch.nn.Identity)
    assert untied(ids()).shape == (B, T, V)


def _tiny_vit(path):
    from transformers import ViTConfig, ViTModel

    # Trained at 32x32, fed 16x16 images: exercises position-embedding interpolation.
    ViTModel(ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                       image_size=32, patch_size=8)).save_pretrained(path)


def _tiny_resnet(path):
    from transformers import ResNetConfig, ResNetModel

    ResNetModel(ResNetConfig(embedding_size=4, hidden_sizes=[4, 6], depths=[1, 1],
                             layer_type="basic")).save_pretrained(path)


@pytest.mark.parametrize("build", [_tiny_vit, _tiny_resnet])
def test_pretrained_image_encoder(build, tmp_path):
    build(tmp_path / "vision")
    model = make("gru", "captioning", image_encoder=str(tmp_path / "vision")).eval()
    memory = model.encode(context("captioning"))
    assert memory["states"].shape[0] == B and memory["states"].dim() == 3
    x = ids()
    full = model(x, memory)
    torch.testing.assert_close(decode_steps(model, x, memory), full, atol=1e-5, rtol=0)
    model.save_weights(tmp_path / "w")
    other = make("gru", "captioning", seed=1, image_encoder=str(tmp_path / "vision")).eval()
    other.load_weights(tmp_path / "w")
    assert torch.equal(other(x, other.encode(context("captioning"))), full)


def test_missing_image_encoder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot load image encoder"):
        make("lstm", "captioning", image_encoder=str(tmp_path / "nowhere"))

