"""seqgen: train autoregressive text generators by teacher forcing, scheduled sampling or JS_pi
adversarial training, and measure what each objective buys."""

__version__ = "0.1.0"
