"""Embedded synthetic sources, generated from a seed with no data files: an enumerable toy
distribution (`toy`), the SeqGAN oracle LSTM (`oracle`) and a captioning set of drawn shapes (`shapes`)."""

from seqgen.data.synthetic.oracle import OracleLSTM
from seqgen.data.synthetic.toy import ToyDistribution

__all__ = ["OracleLSTM", "ToyDistribution"]
