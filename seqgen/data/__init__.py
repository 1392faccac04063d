"""One data pipeline for every task: sources (files, hub datasets, synthetic), tokenizers, batching."""

from seqgen.data.batch import Batch, Context, Vocab
from seqgen.data.pipeline import Split, TaskData, build_tokenizer, load_data
from seqgen.data.tokenizer import decode, load_tokenizer, save_tokenizer

__all__ = ["Batch", "Context", "Split", "TaskData", "Vocab", "build_tokenizer", "decode", "load_data",
           "load_tokenizer", "save_tokenizer"]
