"""The `seqgen` command line: train | eval | generate | sweep | experiment | reproduce | check | demo.

A mistake in the user's input (bad recipe, bad data, missing file) is printed as one line,
`seqgen: error: ...`, with exit status 2; nothing already on disk is overwritten.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import sys
from pathlib import Path

from seqgen.allocator import retain_freed_memory
from seqgen.errors import UserError

SPLITS = ("train", "validation", "test")


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # `key=value` overrides may come after options (`seqgen eval RUN --split test decode.beam_size=5`),
    # which argparse leaves over; anything else left over is a mistake.
    unknown = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    retain_freed_memory()
    _quiet_libraries(args.verbose)
    try:
        args.run(args)
    except UserError as e:
        _fail(str(e))
    except (OSError, RuntimeError) as e:
        full = _full_disk(e)
        if full is None:
            raise
        _fail(full)
    except KeyboardInterrupt:
        print("seqgen: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Tear down the process group Accelerate joined, if any. Left to interpreter shutdown, gloo's
    threads can be destroyed while still joinable, and the process aborts (SIGABRT, "terminate called
    without an active exception") after its work is done."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _fail(message: str) -> None:
    """Print the one line of a user error and exit with status 2. Under `accelerate launch` every process
    meets the same mistake; only the first says it."""
    if os.environ.get("RANK", "0") == "0":
        print(f"seqgen: error: {message}", file=sys.stderr)
    sys.exit(2)


def _full_disk(error: BaseException) -> str | None:
    """The one line for a write that failed for lack of space (None for any other error). torch's zip
    writer reports it as a RuntimeError about positions rather than as ENOSPC."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {error.filename}" if error.filename else ""
        return f"no space left on the device{where}; free some space (a checkpointed run continues with --resume)"
    if isinstance(error, RuntimeError) and ("PytorchStreamWriter failed" in str(error) or "unexpected pos" in str(error)):
        return ("a file could not be written whole, most likely for lack of space on the device; free some space "
                "(a checkpointed run continues with --resume)")
    return None


def _quiet_libraries(verbose: bool) -> None:
    """Keep stderr for seqgen's own progress and errors: datasets' per-map progress bars and
    accelerate's note about tied weights (which safetensors restores on load) only with --verbose."""
    if verbose:
        return
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seqgen")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqgen", description=__doc__.splitlines()[0], epilog=EPILOG)
    p.add_argument("-v", "--verbose", action="store_true", help="log data statistics and progress details")
    p.add_argument("--version", action="version", version=f"seqgen {_version()}")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a generator from a recipe")
    t.add_argument("recipe", help="YAML recipe (see recipes/)")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. train.lr=3e-4")
    mode = t.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in output_dir")
    mode.add_argument("--overwrite", action="store_true", help="replace the run in output_dir")
    t.set_defaults(run=_train)

    e = sub.add_parser("eval", help="evaluate a run or an exported model")
    e.add_argument("path", help="a run folder (uses its model/) or an exported model folder")
    e.add_argument("--split", choices=SPLITS, default="test", help="the recipe's split to evaluate")
    e.add_argument("--data", help="evaluate this file instead of the recipe's split (same format)")
    e.add_argument("--bleu", action=argparse.BooleanOptionalAction, default=None,
                   help="decode and compute BLEU/chrF/TER (default: for translation and captioning)")
    e.add_argument("--quality", action=argparse.BooleanOptionalAction, default=True,
                   help="sample-quality metrics: exact divergences (toy), NLL_oracle/NLL_test (oracle), "
                        "BLEU-n/Self-BLEU-n/diversity of samples (text), CIDEr-D (captioning)")
    e.add_argument("--two-sample", action="store_true", default=None,
                   help="also train a fresh classifier to tell real from generated sentences")
    e.add_argument("--out", help="metrics JSON to write (default: PATH/metrics-SPLIT.json)")
    e.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. decode.beam_size=5")
    e.set_defaults(run=_eval)

    g = sub.add_parser("generate", help="decode samples or outputs from an exported model")
    g.add_argument("path", help="a run folder (uses its model/) or an exported model folder")
    g.add_argument("--n", type=int, default=10, help="samples to draw (language models)")
    g.add_argument("--input", help="file of source sentences or image paths, one per line ('-': stdin)")
    g.add_argument("--strategy", choices=("greedy", "sample", "beam"), default=None,
                   help="decoding (default: sample, or beam with --beam)")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling: logits are divided by it")
    g.add_argument("--top-k", type=int, default=0, help="sampling: keep the k most likely tokens (0: all)")
    g.add_argument("--top-p", type=float, default=1.0,
                   help="sampling: keep the smallest set of tokens whose probability reaches p")
    g.add_argument("--beam", type=int, default=None, help="beam size (implies --strategy beam)")
    g.add_argument("--max-new-tokens", type=int, default=None,
                   help="longest output (default: the run's decode.max_new_tokens, else 64)")
    g.add_argument("--seed", type=int, default=0, help="seed of the samples")
    g.set_defaults(run=_generate)

    w = sub.add_parser("sweep", help="quality-diversity curves over the sampling temperature")
    w.add_argument("paths", nargs="+", metavar="MODEL_DIR", help="run or exported model folders")
    w.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.75, 1.0, 1.5, 2.0, 2.5],
                   help="inverse temperatures (logits x alpha)")
    w.add_argument("--out", default="runs/sweep", help="folder for sweep.csv, sweep.json and the figures")
    w.add_argument("--num-samples", type=int, default=1000, help="samples per model and alpha")
    w.add_argument("--seed", type=int, default=0, help="seed of the samples")
    w.add_argument("--data", help="test file for models without a recipe beside them")
    w.add_argument("--overwrite", action="store_true", help="replace the sweep that --out holds")
    w.set_defaults(run=_sweep)

    c = sub.add_parser("check", help="check recipes without running them: keys, types, ranges, consistency")
    c.add_argument("paths", nargs="*", default=["recipes"], help="recipe files or folders (default: recipes)")
    c.set_defaults(run=_check)

    from seqgen.experiments.sizes import ALIASES, SIZE_NAMES

    def size_name(name: str) -> str:  # earlier names (`ALIASES`) are accepted but not listed
        return ALIASES.get(name, name)

    x = sub.add_parser("experiment", help="the founding paper's studies, on embedded synthetic data")
    studies = x.add_subparsers(required=True, metavar="STUDY")
    i = studies.add_parser("inconsistency", help="scheduled sampling's optimum is not P: teacher forcing "
                           "vs scheduled sampling on an enumerable toy and an oracle LSTM")
    i.add_argument("--out", default="runs/inconsistency", help="folder for the runs, results.json, report.md "
                   "and the figures")
    i.add_argument("--size", choices=SIZE_NAMES, type=size_name, default="full",
                   help="recipes of the runs before overrides (tiny: seconds per run; demo: what `seqgen demo` "
                        "runs; full: the study as reported)")
    i.add_argument("--epsilons", default="0,0.25,0.5,0.75,1",
                   help="fixed ε of the scheduled-sampling runs, comma-separated")
    i.add_argument("--no-oracle", dest="oracle", action="store_false", help="skip the oracle LSTM runs")
    i.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    i.add_argument("overrides", nargs="*", metavar="key=value",
                   help="recipe overrides of the toy runs (oracle.key=value: of the oracle runs)")
    i.set_defaults(run=_experiment_inconsistency)

    j = studies.add_parser("js-pi", help="JS_π moves a fit from covering P's mass to seeking its modes as π "
                           "grows: a Gaussian fitted to a 2-D mixture, an enumerable toy and an oracle LSTM")
    j.add_argument("--out", default="runs/js_pi", help="folder for the runs, results.json, report.md and the "
                   "figures")
    j.add_argument("--size", choices=SIZE_NAMES, type=size_name, default="full",
                   help="recipes of the runs before overrides (tiny: seconds per run; demo: what `seqgen demo` "
                        "runs; full: the study as reported)")
    j.add_argument("--pis", default=None, help="class priors π of the sequence step, comma-separated (default: "
                   "0.05,0.1,0.25,0.5,0.75,0.9,0.95 at full size, 0.05,0.25,0.5,0.75,0.95 at demo size)")
    j.add_argument("--continuous-pis", default=None, help="class priors π of the continuous step, comma-separated "
                   "(default: a log grid from 0.001 to 0.95)")
    j.add_argument("--oracle-pis", default="0.25,0.5,0.75,0.9",
                   help="class priors π of the oracle step, comma-separated")
    j.add_argument("--no-continuous", dest="continuous", action="store_false",
                   help="skip the Gaussian fits to a 2-D mixture")
    j.add_argument("--no-toy", dest="toy", action="store_false", help="skip the runs on the enumerable toy")
    j.add_argument("--no-oracle", dest="oracle", action="store_false", help="skip the oracle LSTM runs")
    j.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    j.add_argument("overrides", nargs="*", metavar="key=value",
                   help="recipe overrides of the toy runs (adversarial.key=value: of its JS_π runs only; "
                        "oracle.key=value and oracle.adversarial.key=value: of the oracle runs)")
    j.set_defaults(run=_experiment_js_pi)

    o = studies.add_parser("objectives", help="which training objective gives the better samples: every "
                           "objective from teacher forcing, on an enumerable toy and an oracle LSTM, against "
                           "tempered teacher forcing")
    o.add_argument("--out", default="runs/objectives", help="folder for the runs, results.json, report.md and "
                   "the figures")
    o.add_argument("--size", choices=SIZE_NAMES, type=size_name, default="full",
                   help="recipes of the runs before overrides (tiny: seconds per run; demo: minutes; full: the "
                        "study as reported)")
    o.add_argument("--no-oracle", dest="oracle", action="store_false", help="skip the oracle LSTM runs")
    o.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    o.add_argument("overrides", nargs="*", metavar="key=value",
                   help="recipe overrides of the toy runs (METHOD.key=value: of one method's runs, e.g. "
                        "tailr.objective.gamma=0.3; oracle.key=value and oracle.METHOD.key=value: of the "
                        "oracle runs)")
    o.set_defaults(run=_experiment_objectives)

    h = studies.add_parser("estimators", help="which generator gradient estimator follows ∇JS_π at which π: "
                           "each estimator's estimates against the exact gradient on the enumerable toy")
    h.add_argument("--out", default="runs/estimators", help="folder for results.json, report.md, "
                   "estimators.png and the starting model's run")
    h.add_argument("--size", choices=SIZE_NAMES, type=size_name, default="full",
                   help="how many estimates and critic steps (tiny: seconds; full: the harness as reported)")
    h.add_argument("--pis", default="0.05,0.25,0.5,0.75,0.95", help="class priors π, comma-separated")
    h.add_argument("--estimators", default=None, help="comma-separated names (default: all of "
                   "straight_through, reinforce, reinforce_batch, reinforce_rloo4, rebar)")
    h.add_argument("--critics", default="optimal,learned", help="optimal (D*) and/or learned, comma-separated")
    h.add_argument("--seed", type=int, default=0, help="seed of the starting model and the estimates")
    h.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    h.set_defaults(run=_experiment_estimators)

    from seqgen.reproduce.benchmark import SIZE_NAMES as REPRODUCTION_SIZES
    from seqgen.reproduce.catalogue import BENCHMARKS

    r = sub.add_parser("reproduce", help="rerun a published benchmark's table: every objective as a row, the "
                       "published numbers beside seqgen's, quality-diversity curves")
    r.add_argument("benchmark", choices=list(BENCHMARKS), metavar="NAME",
                   help=f"the benchmark: {', '.join(BENCHMARKS)}")
    r.add_argument("--size", choices=REPRODUCTION_SIZES, default="cpu",
                   help="paper: the published protocol; cpu: sized for 2 CPU cores; tiny: seconds")
    r.add_argument("--out", default=None, help="folder for the runs, results.json, report.md and the figure "
                   "(default: runs/reproduce/NAME-SIZE)")
    r.add_argument("--rows", default=None, help="the rows to train, comma-separated (default: all; teacher "
                   "forcing is always trained)")
    r.add_argument("--row", action="append", default=[], metavar="NAME=RECIPE",
                   help="one more row: a YAML file of recipe keys (e.g. an objective section) laid over the "
                        "baseline's recipe, trained from the baseline's model; repeatable")
    r.add_argument("--data-dir", default=None, help="the folder holding the benchmark's data (e.g. "
                   "seqgan_oracle/oracle_lstm.npz); default: $SEQGEN_DATA")
    r.add_argument("--resume", action="store_true", help="reuse the rows --out already measured, continue the rest")
    r.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    r.add_argument("overrides", nargs="*", metavar="key=value",
                   help="recipe overrides of every row (ROW.key=value: of one row)")
    r.set_defaults(run=_reproduce)

    d = sub.add_parser("demo", help="the main job on an embedded default, in a few minutes on a CPU")
    d.add_argument("--out", default="runs/demo", help="where to write the demo's runs, reports and figures")
    d.set_defaults(run=_demo)
    _finish(p)
    return p


EPILOG = """Recipes are YAML files (see recipes/); any key can be set after the recipe as key=value, e.g.
`seqgen train recipes/debug/lm.yaml train.lr=3e-4 objective.name=scheduled_sampling`. Every key, with
its default, is listed in docs/recipes.md. `seqgen COMMAND --help` describes each command."""


class _Formatter(argparse.HelpFormatter):
    """Help that shows each option's default, unless it has none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        hidden = action.default is None or isinstance(action.default, bool) or action.default == argparse.SUPPRESS
        shown = not hidden and action.option_strings
        return f"{text} (default: %(default)s)" if shown and "%(default)" not in text else text


def _finish(parser: argparse.ArgumentParser) -> None:
    """Give every command a description (its one-line help), defaults in its help, and -v/--verbose
    (accepted before or after the command)."""
    parser.formatter_class = _Formatter
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, command in action.choices.items():
            command.description = command.description or helps.get(name)
            if not any("--verbose" in a.option_strings for a in command._actions):
                command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                     help="log data statistics and progress details")
            _finish(command)


def _train(args: argparse.Namespace) -> None:
    from seqgen.config import load_config
    from seqgen.recipes import check_recipe
    from seqgen.train import train

    cfg = load_config(args.recipe, args.overrides)
    check_recipe(cfg)
    train(cfg, resume=args.resume, overwrite=args.overwrite)


def _eval(args: argparse.Namespace) -> None:
    from seqgen.inference import evaluate_model
    from seqgen.processes import make_accelerator

    # What is measured, recorded in the file: a file never holds, nor is replaced by, another measurement.
    measured = {"model": str(args.path), "split": None if args.data else args.split, "data": args.data,
                "bleu": args.bleu, "quality": args.quality, "two_sample": args.two_sample,
                "overrides": list(args.overrides)}
    out = Path(args.out) if args.out else Path(args.path) / _metrics_name(args.split, args.data)
    # before the evaluation, which can take long; a metrics file named by --out is the user's to replace
    _check_metrics_file(out, None if args.out else measured)
    accelerator = make_accelerator()
    result, _ = evaluate_model(args.path, split=args.split, data=args.data, bleu=args.bleu,
                               quality=args.quality, two_sample=args.two_sample,
                               overrides=args.overrides, accelerator=accelerator)
    if not accelerator.is_main_process:
        return
    print(_table(result.metrics))
    for key, sig in result.signatures.items():
        print(f"{key} signature: {sig}")
    print(_scored_line(result.checkpoint, result.scored))
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps({"measured": measured, "checkpoint": result.checkpoint, "scored": result.scored,
                               "metrics": result.metrics, "signatures": result.signatures}, indent=2))
    tmp.replace(out)  # whole or not at all
    shared = f" (work shared by {accelerator.num_processes} processes)" if accelerator.num_processes > 1 else ""
    print(f"metrics written to {out}{shared}")


def _scored_line(checkpoint: dict, scored: dict) -> str:
    """One line saying which checkpoint was measured on what: its step, the split and its data, the
    sequences scored, and the decoding where outputs were decoded."""
    step = checkpoint.get("step")
    line = (f"measured {checkpoint.get('path')} ({'step ' + str(step) if step is not None else 'step not recorded'}) "
            f"on {scored['split']} ({scored['data']}): {scored['num_sequences']} sequences")
    if "decoding" in scored:
        decoding = ", ".join(f"{k}={v}" for k, v in scored["decoding"].items())
        line += f", {scored['num_decoded']} decoded ({decoding})"
    for key in ("samples", "oracle_samples"):
        if key in scored:
            line += f", {scored[key]['num']} {key.replace('_', ' ')} (ancestral, temperature 1)"
    return line


def _metrics_name(split: str, data: str | None) -> str:
    """metrics-SPLIT.json, or metrics-data-NAME.json for a file given by --data."""
    if data is None:
        return f"metrics-{split}.json"
    return f"metrics-data-{re.sub(r'[^A-Za-z0-9._-]+', '_', Path(data).name)}.json"


def _check_metrics_file(out: Path, measured: dict | None) -> None:
    """Refuse a place that cannot be written, a file that is not a metrics file of `seqgen eval`, or a
    default output file that holds another measurement than `measured` (None: any metrics file may be
    replaced)."""
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; name a file")
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: no folder {out.parent}")
    if not os.access(out.parent, os.W_OK):
        raise UserError(f"cannot write {out}: the folder is not writable")
    if not out.exists():
        return
    try:
        previous = json.loads(out.read_text(encoding="utf-8")).get("measured")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous is None:
        raise UserError(f"{out} exists and is not a metrics file that records what seqgen eval measured; "
                        f"name another file")
    if measured is not None and previous != measured:
        raise UserError(f"{out} holds another measurement ({_describe(previous)}); pass --out FILE to keep both")


def _describe(measured: object) -> str:
    if not isinstance(measured, dict):
        return str(measured)
    what = f"data {measured['data']}" if measured.get("data") else f"split {measured.get('split')}"
    overrides = measured.get("overrides") or []
    return what + (f", {' '.join(overrides)}" if overrides else "")


def _generate(args: argparse.Namespace) -> None:
    from seqgen.config import DecodeConfig
    from seqgen.inference import generate_texts, recipe_decode_length

    strategy = args.strategy or ("beam" if args.beam is not None else "sample")
    if args.n < 1 or args.temperature <= 0 or not 0 < args.top_p <= 1 or args.top_k < 0:
        raise UserError("--n must be >= 1, --temperature > 0, --top-p in (0, 1] and --top-k >= 0")
    if args.beam is not None and args.beam < 1:
        raise UserError(f"--beam must be >= 1 (the number of hypotheses kept), got {args.beam}")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    decode = DecodeConfig(strategy=strategy, temperature=args.temperature, top_k=args.top_k,
                          top_p=args.top_p, beam_size=args.beam or DecodeConfig.beam_size,
                          max_new_tokens=args.max_new_tokens or recipe_decode_length(args.path))
    inputs = None
    if args.input:
        try:
            text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read --input {args.input}: {e}") from None
        inputs = [line.strip() for line in text.splitlines() if line.strip()]
    for line in generate_texts(args.path, decode, n=args.n, inputs=inputs, seed=args.seed):
        print(line, flush=True)


def _sweep(args: argparse.Namespace) -> None:
    from seqgen.experiments.report import aligned
    from seqgen.sweep import DESCRIPTION, sweep

    rows = sweep(args.paths, args.alphas, args.out, num_samples=args.num_samples, seed=args.seed,
                 data=args.data, overwrite=args.overwrite)
    # every model's measures (an oracle run's differ from a text model's); a measure a model lacks is blank
    measures = list(dict.fromkeys(k for r in rows for k in r if k not in DESCRIPTION))
    print("\n".join(aligned(["model", "alpha", *measures],
                            [[r["model"], f"{r['alpha']:g}", *(f"{r[k]:.4f}" if k in r else "" for k in measures)]
                             for r in rows])))
    print(f"sweep.csv, sweep.json and the figures written to {args.out}")


def _check(args: argparse.Namespace) -> None:
    from seqgen.recipes import check_paths

    failures = check_paths(args.paths)
    if failures:
        raise UserError(f"{failures} recipe(s) failed the check")


def _experiment_inconsistency(args: argparse.Namespace) -> None:
    from seqgen.experiments.inconsistency import run_inconsistency

    result = run_inconsistency(args.out, args.overrides, size=args.size,
                               epsilons=_numbers(args.epsilons, "--epsilons"), oracle=args.oracle,
                               overwrite=args.overwrite)
    _print_study(result)


def _experiment_js_pi(args: argparse.Namespace) -> None:
    from seqgen.experiments.js_pi import run_js_pi

    result = run_js_pi(args.out, args.overrides, size=args.size,
                       pis=None if args.pis is None else _numbers(args.pis, "--pis"),
                       continuous_pis=None if args.continuous_pis is None else _numbers(args.continuous_pis,
                                                                                          "--continuous-pis"),
                       oracle_pis=_numbers(args.oracle_pis, "--oracle-pis"), continuous=args.continuous,
                       toy=args.toy, oracle=args.oracle, overwrite=args.overwrite)
    _print_study(result)


def _experiment_objectives(args: argparse.Namespace) -> None:
    from seqgen.experiments.objectives import run_objectives

    result = run_objectives(args.out, args.overrides, size=args.size, oracle=args.oracle,
                            overwrite=args.overwrite)
    _print_study(result)


def _experiment_estimators(args: argparse.Namespace) -> None:
    from seqgen.experiments.estimators import ESTIMATORS, run_estimators

    estimators = tuple(ESTIMATORS) if args.estimators is None else tuple(args.estimators.split(","))
    result = run_estimators(args.out, size=args.size, pis=_numbers(args.pis, "--pis"), estimators=estimators,
                            critics=tuple(args.critics.split(",")), seed=args.seed, overwrite=args.overwrite)
    _print_study(result)


def _reproduce(args: argparse.Namespace) -> None:
    from seqgen.reproduce import reproduce

    extra = []
    for item in args.row:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--row takes NAME=RECIPE.yaml, got {item!r}")
        extra.append((name, path))
    out = args.out or f"runs/reproduce/{args.benchmark}-{args.size}"
    result = reproduce(args.benchmark, out, size=args.size, rows=args.rows.split(",") if args.rows else None,
                       extra_rows=extra, overrides=args.overrides, data_dir=args.data_dir, resume=args.resume,
                       overwrite=args.overwrite)
    _print_study(result)


def _print_study(result) -> None:
    """A study's tables, then where its files are."""
    print()
    print(result.table())
    print()
    for name, path in result.files.items():
        print(f"{name:<14} {path}")


def _numbers(text: str, option: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise UserError(f"{option} must be comma-separated numbers, got {text!r}") from None


def _demo(args: argparse.Namespace) -> None:
    from seqgen.demo import demo

    demo(args.out)


def _table(metrics: dict[str, float]) -> str:
    width = max(len(k) for k in metrics)
    return "\n".join(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in metrics.items())
