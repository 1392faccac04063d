"""The `transformers` generators: cache, probability inputs, beam reordering, save/load round trips."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, VisionEncoderDecoderModel

from seqgen.data.batch import Context, Vocab
from seqgen.errors import UserError
from seqgen.models.configs import TransformerConfig
from seqgen.models.hf import HFGenerator, build_transformer

VOCAB = Vocab(size=20, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
IMAGE = 32  # conv nets reduce it 16-fold: a 2x2 map, so cross-attention has keys to choose between
B, T = 3, 6

# name -> (task, TransformerConfig keys). BART scales its embeddings here so that the scaled path is tested.
CASES = {
    "gpt2": ("lm", {}),
    "gpt2_eager": ("lm", {"config_overrides": {"attn_implementation": "eager"}}),
    "bart": ("translation", {"arch": "bart", "config_overrides": {"scale_embedding": True}}),
    "marian": ("translation", {"arch": "marian"}),
    "t5": ("translation", {"arch": "t5"}),
    "vit": ("captioning", {"vision_arch": "vit"}),
    "resnet": ("captioning", {"vision_arch": "resnet"}),
    "convnext": ("captioning", {"vision_arch": "convnext"}),
}
AUTO = {"lm": AutoModelForCausalLM, "translation": AutoModelForSeq2SeqLM,
        "captioning": VisionEncoderDecoderModel}


def _cfg(**keys) -> TransformerConfig:
    tiny = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, max_positions=16, patch_size=8)
    return TransformerConfig(**{**tiny, **keys})


def _build(name: str, vocab: Vocab = VOCAB) -> tuple[HFGenerator, str]:
    task, keys = CASES[name]
    torch.manual_seed(0)
    return build_transformer(vocab, _cfg(**keys), task, image_size=IMAGE).eval(), task


def _data(task: str, batch: int = B) -> tuple[torch.Tensor, Context | None]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(4, VOCAB.size, (batch, T), generator=gen)
    ids[:, 0] = VOCAB.bos_id
    if task == "translation":
        source = torch.randint(4, VOCAB.size, (batch, 5), generator=gen)
        mask = torch.ones(batch, 5, dtype=torch.bool)
        mask[0, 3:] = False
        source[0, 3:] = VOCAB.pad_id
        return ids, Context(source=source, source_mask=mask)
    if task == "captioning":
        return ids, Context(pixels=torch.randn(batch, 3, IMAGE, IMAGE, generator=gen))
    return ids, None


def _native_logits(model, task: str, ids: torch.Tensor, context: Context | None) -> torch.Tensor:
    """Logits from the model's own input_ids path (its internal embedding and scaling)."""
    if task == "lm":
        return model(input_ids=ids).logits
    if task == "translation":
        return model(input_ids=context.source, attention_mask=context.source_mask,
                     decoder_input_ids=ids).logits
    return model(pixel_values=context.pixels, decoder_input_ids=ids).logits


def _stepped(g: HFGenerator, inputs: torch.Tensor, memory, state=None) -> tuple[torch.Tensor, object]:
    logits = []
    for t in range(inputs.shape[1]):
        out, state = g.step(inputs[:, t], memory, state)
        logits.append(out)
    return torch.stack(logits, 1), state


def _one_hot(ids: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(ids, VOCAB.size).float()


@pytest.mark.parametrize("name", CASES)
def test_step_on_the_cache_matches_forward(name):
    g, task = _build(name)
    ids, context = _data(task)
    memory = g.encode(context)
    with torch.no_grad():
        full = g(ids, memory)
        stepped, state = _stepped(g, ids, memory)
    assert full.shape == (B, T, VOCAB.size)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=0)
    assert state.position == T


@pytest.mark.parametrize("name", CASES)
def test_ids_path_matches_the_models_own_embedding(name):
    g, task = _build(name)
    ids, context = _data(task)
    with torch.no_grad():
        ours = g(ids, g.encode(context))
        if name in ("resnet", "convnext"):
            # VisionEncoderDecoderModel feeds a conv map to the decoder unflattened; compare the decoder.
            native = g.model.decoder(input_ids=ids, encoder_hidden_states=g.encode(context).hidden).logits
        else:
            native = _native_logits(g.model, task, ids, context)
    torch.testing.assert_close(ours, native, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_one_hot_inputs_give_the_logits_of_ids(name):
    g, task = _build(name)
    ids, context = _data(task)
    memory = g.encode(context)
    with torch.no_grad():
        torch.testing.assert_close(g(_one_hot(ids), memory), g(ids, memory), atol=1e-6, rtol=0)
        torch.testing.assert_close(_stepped(g, _one_hot(ids), memory)[0], _stepped(g, ids, memory)[0],
                                   atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_gradients_reach_probability_inputs(name):
    g, task = _build(name)
    _, context = _data(task)
    scores = torch.randn(B, T, VOCAB.size, requires_grad=True)
    probs = scores.softmax(-1)
    with torch.no_grad():
        memory = g.encode(context)
    g(probs, memory)[:, -1, 5].sum().backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0
    # Through the cache too: the last step's logits depend on the first position's input.
    first = torch.randn(B, VOCAB.size, requires_grad=True)
    _, state = g.step(first.softmax(-1), memory, None)
    logits, _ = g.step(probs[:, 1].detach(), memory, state)
    logits[:, 5].sum().backward()
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize("name", CASES)
def test_every_trainable_parameter_gets_a_gradient(name):
    g, task = _build(name)
    ids, context = _data(task)
    g.train()
    g(ids, g.encode(context)).logsumexp(-1).sum().backward()
    idle = [n for n, p in g.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert idle == []


@pytest.mark.parametrize("name", CASES)
def test_select_state_reorders_the_cache(name):
    g, task = _build(name)
    ids, context = _data(task)
    memory = g.encode(context)
    index = torch.tensor([2, 0, 2])
    with torch.no_grad():
        _, state = _stepped(g, ids[:, :3], memory)
        before, _ = _stepped(g, ids[:, 3:], memory, state)
        moved, _ = _stepped(g, ids[index, 3:], g.select_memory(memory, index), g.select_state(state, index))
        fresh, _ = _stepped(g, ids[index], g.encode(None if context is None else context.select(index)))
        again, _ = _stepped(g, ids[:, 3:], memory, state)
    torch.testing.assert_close(moved, fresh[:, 3:], atol=1e-5, rtol=0)
    # Stepping and selecting leave the state they were given untouched.
    torch.testing.assert_close(again, before, atol=0, rtol=0)


def test_dropout_is_off_in_eval_only():
    g, task = build_transformer(VOCAB, _cfg(arch="gpt2", dropout=0.1), "lm").eval(), "lm"
    ids, _ = _data(task)
    with torch.no_grad():
        torch.testing.assert_close(g(ids), g(ids), atol=0, rtol=0)
        g.train()
        assert not torch.equal(g(ids), g(ids))


def test_input_embeddings_are_the_decoders_matrix():
    for name in ("gpt2", "t5", "vit"):
        g, _ = _build(name)
        assert g.input_embeddings.shape == (VOCAB.size, 32)
        assert g.input_embeddings is g.decoder.get_input_embeddings().weight


@pytest.mark.parametrize("name", ["bart", "marian", "t5"])
def test_source_padding_is_ignored(name):
    g, task = _build(name)
    ids, context = _data(task)
    other = context.source.clone()
    other[0, 3:] = 7
    with torch.no_grad():
        a = g(ids, g.encode(context))
        b = g(ids, g.encode(Context(source=other, source_mask=context.source_mask)))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_save_and_reload_give_identical_logits(name, tmp_path):
    g, task = _build(name)
    ids, context = _data(task)
    with torch.no_grad():
        expected = g(ids, g.encode(context))
    g.save_weights(tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()

    native = AUTO[task].from_pretrained(tmp_path).eval()
    pretrained = build_transformer(VOCAB, _cfg(pretrained=str(tmp_path)), task).eval()
    torch.manual_seed(5)  # different initial weights, then overwritten
    loaded = build_transformer(VOCAB, _cfg(**CASES[name][1]), task, image_size=IMAGE).eval()
    loaded.load_weights(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, loaded.encode(context)), expected, atol=0, rtol=0)
        # A reloaded config picks its default attention kernel (sdpa) whatever this one used.
        torch.testing.assert_close(pretrained(ids, pretrained.encode(context)), expected, atol=1e-6, rtol=0)
        if name not in ("resnet", "convnext"):
            torch.testing.assert_close(_native_logits(native, task, ids, context), expected,
                                       atol=1e-5, rtol=0)
    assert native.state_dict().keys() == g.model.state_dict().keys()


def test_pretrained_vocabulary_is_resized_to_the_tokenizers(tmp_path):
    small = Vocab(size=17, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    g, _ = _build("gpt2", small)
    g.save_weights(tmp_path)
    big = build_transformer(VOCAB, _cfg(pretrained=str(tmp_path)), "lm").eval()
    assert big.input_embeddings.shape == (VOCAB.size, 32)
    torch.testing.assert_close(big.input_embeddings[:17], g.input_embeddings, atol=0, rtol=0)
    ids, _ = _data("lm")
    with torch.no_grad():
        assert big(ids).shape == (B, T, VOCAB.size)


def test_load_weights_rejects_another_model(tmp_path):
    g, _ = _build("gpt2", Vocab(size=17, pad_id=0, bos_id=1, eos_id=2, unk_id=3))
    g.save_weights(tmp_path)
    other, _ = _build("gpt2")
    with pytest.raises(UserError, match="do not fit"):
        other.load_weights(tmp_path)
    with pytest.raises(UserError, match="cannot load"):
        other.load_weights(tmp_path / "absent")


@pytest.mark.parametrize("task, keys, message", [
    ("translation", {"arch": "gpt2"}, "decoder-only"),
    ("lm", {"arch": "bart"}, "needs model.arch=gpt2"),
    ("lm", {"config_overrides": {"n_embed_typo": 3}}, "n_embed_typo is not a setting of GPT2Config"),
    ("lm", {"num_attention_heads": 5}, "not divisible"),
    ("captioning", {"patch_size": 5}, "not a multiple of model.patch_size"),
    ("lm", {"pretrained": "/nonexistent/model"}, "cannot load model.pretrained"),
])
def test_configuration_mistakes_are_user_errors(task, keys, message):
    with pytest.raises(UserError, match=message):
        build_transformer(VOCAB, _cfg(**keys), task, image_size=IMAGE)


def test_too_long_sequences_are_user_errors():
    g, _ = _build("gpt2")
    with pytest.raises(UserError, match="exceeds the model's 16"):
        g(torch.ones(1, 17, dtype=torch.long))


def test_vision_pretrained_encoder_is_loaded(tmp_path):
    g, task = _build("resnet")
    g.model.encoder.save_pretrained(tmp_path)
    torch.manual_seed(5)
    other = build_transformer(VOCAB, _cfg(vision_pretrained=str(tmp_path)), task, image_size=IMAGE).eval()
    assert type(other.model.encoder) is type(g.model.encoder)
    theirs = other.model.encoder.state_dict()
    for name, mine in g.model.encoder.state_dict().items():
        torch.testing.assert_close(theirs[name], mine, atol=0, rtol=0, msg=name)
    _, context = _data(task)
    with torch.no_grad():
        torch.testing.assert_close(other.encode(context).hidden, g.encode(context).hidden, atol=0, rtol=0)


def test_model_dropout_sets_the_built_configs_dropout():
    for arch, task, key in (("gpt2", "lm", "resid_pdrop"), ("bart", "translation", "dropout"),
                            ("t5", "translation", "dropout_rate")):
        g = build_transformer(VOCAB, _cfg(arch=arch, dropout=0.25), task)
        assert getattr(g.model.config, key) == 0.25
