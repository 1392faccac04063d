"""Texygen BLEU-5 and Self-BLEU-5 on COCO captions: `seqgen.metrics.bleu` against NLTK's sentence_bleu loop.

    python benchmarks/bench_bleu.py                  # full sets (10,000 x 10,000), NLTK on 20 sentences
    python benchmarks/bench_bleu.py --quick          # 500 sentences each side, NLTK on 5
    python benchmarks/bench_bleu.py --nltk-subset 50 --reps 5

The "generated" sentences are the 10,000 lines of `image_coco.txt` (COCO train) and the references the
10,000 lines of `test_coco.txt`, from ../shared/data/coco_captions (see its README), split on whitespace.
seqgen's time is wall-clock of the whole metric, inputs already tokenised: building the reference index
and scoring every generated sentence for BLEU-5; building the leave-one-out index and scoring every
sentence for Self-BLEU-5. The best of --reps runs is reported. The NLTK loop (`sentence_bleu` with
weights (1/5,)*5 and method1 smoothing, as Texygen calls it) is quadratic, so it is timed once on the
first K generated sentences, each against the full reference set (Self-BLEU: against the other
sentences of the full set), and its time scaled linearly by N / K to the full N sentences. Agreement is
the largest absolute difference between the two per-sentence scores over those K sentences.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

from common import print_table, write_json

from seqgen.metrics.bleu import ReferenceIndex, bleu_scores, self_bleu_scores, self_bleu_sentence_scores

N = 5
TARGET_SECONDS = 10.0
TARGET_SPEEDUP = 100.0
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_captions"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding image_coco.txt, test_coco.txt")
    parser.add_argument("--sentences", type=int, default=None,
                        help="generated and reference sentences used from each file (default all; quick 500)")
    parser.add_argument("--nltk-subset", type=int, default=None,
                        help="K: sentences scored by the NLTK loop (default 20; quick 5)")
    parser.add_argument("--reps", type=int, default=3, help="timed runs of seqgen's metrics (best reported)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of the script")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args()
    if args.sentences is None:
        args.sentences = 500 if args.quick else None
    if args.nltk_subset is None:
        args.nltk_subset = 5 if args.quick else 20
    return args


def read_lines(path: Path, limit: int | None) -> list[list[str]]:
    if not path.exists():
        raise SystemExit(f"{path} not found: pass --data, the folder of the COCO caption files")
    return [line.split() for line in path.read_text().split("\n")[:limit]]


def best_time(fn, reps: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(reps):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def nltk_loop(hypotheses, references_of):
    """NLTK sentence BLEU-5 of each hypothesis against `references_of(i)`: (seconds, scores)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    smoothing = SmoothingFunction().method1
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = [sentence_bleu(references_of(i), h, weights=(1 / N,) * N, smoothing_function=smoothing)
                  for i, h in enumerate(hypotheses)]
    return time.perf_counter() - start, scores


def main() -> None:
    args = parse_args()
    generated = read_lines(args.data / "image_coco.txt", args.sentences)
    references = read_lines(args.data / "test_coco.txt", args.sentences)
    k = min(args.nltk_subset, len(generated))

    bleu_s, bleu = best_time(lambda: bleu_scores(generated, references, (N,))[f"bleu{N}_texygen"], args.reps)
    self_s, self_bleu = best_time(lambda: self_bleu_scores(generated, (N,))[f"self_bleu{N}"], args.reps)

    index = ReferenceIndex(references, N)
    ours_bleu = [index.sentence_bleu(h, (N,))[0] for h in generated[:k]]
    ours_self = [scores[0] for scores in self_bleu_sentence_scores(generated, (N,))[:k]]
    nltk_bleu_s, nltk_bleu = nltk_loop(generated[:k], lambda i: references)
    nltk_self_s, nltk_self = nltk_loop(generated[:k], lambda i: generated[:i] + generated[i + 1:])
    scale = len(generated) / k

    rows, results = [], {}
    for name, ours_s, value, nltk_s, ours_k, nltk_k in [
        (f"BLEU-{N}", bleu_s, bleu, nltk_bleu_s, ours_bleu, nltk_bleu),
        (f"Self-BLEU-{N}", self_s, self_bleu, nltk_self_s, ours_self, nltk_self),
    ]:
        nltk_full = nltk_s * scale
        diff = max(abs(a - b) for a, b in zip(ours_k, nltk_k))
        rows.append([name, f"{value:.6f}", f"{ours_s:.2f}", f"{nltk_s:.2f}", f"{nltk_full:,.0f}",
                     f"{nltk_full / ours_s:,.0f}x", f"{diff:.1e}"])
        results[name] = {"score": value, "seqgen_seconds": ours_s, "nltk_subset_seconds": nltk_s,
                         "nltk_scaled_seconds": nltk_full, "speedup": nltk_full / ours_s,
                         "max_abs_diff_on_subset": diff}
    total = bleu_s + self_s
    info = {"generated": len(generated), "references": len(references), "nltk_subset": k,
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2)}
    print(", ".join(f"{key} {value}" for key, value in info.items()))
    print_table(f"Texygen BLEU on COCO: {len(generated):,} generated vs {len(references):,} references; "
                f"NLTK timed on {k} sentences, scaled x{scale:,.0f}",
                ["metric", "score", "seqgen s", f"NLTK s ({k})", "NLTK s (scaled)", "speedup",
                 f"max |diff| ({k})"], rows)
    print(f"\nseqgen BLEU-{N} + Self-BLEU-{N}: {total:.2f} s (target < {TARGET_SECONDS:.0f} s); "
          f"speedups target >= {TARGET_SPEEDUP:.0f}x")
    write_json(args.json, {"machine": info, "results": results, "seqgen_total_seconds": total})


if __name__ == "__main__":
    main()
