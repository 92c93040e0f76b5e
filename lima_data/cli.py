"""The ``lima-data`` command line (click)."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path

import click
from rich.console import Console

from .errors import LimaDataError, describe, safe_text

SOURCE_NAMES = ("stackexchange", "wikihow", "reddit", "natural_instructions", "authored", "stackexchange_dialogue")
LOGGER = "lima_data"


def _console(quiet: bool = False) -> Console:
    return Console(stderr=True, quiet=quiet)


class _StderrHandler(logging.Handler):
    """Messages of the ``lima_data`` loggers on stderr: ``warning: ...`` in yellow, ``error: ...`` in red."""

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        color = {"warning": "yellow", "error": "red", "critical": "red"}.get(level)
        prefix = click.style(f"{level}: ", fg=color) if color else ("" if level == "info" else f"{level}: ")
        click.echo(prefix + record.getMessage(), err=True)


def _setup(quiet: bool = False, verbose: bool = False) -> None:
    """Route the ``lima_data`` loggers to stderr (WARNING; ERROR with --quiet; DEBUG with --verbose) and, with
    --quiet, silence the progress bars of the libraries too (datasets, huggingface_hub, transformers, tqdm),
    here and in worker processes (through their environment variables)."""
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    logger.addHandler(_StderrHandler())
    logger.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    if quiet:
        for name in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
            os.environ[name] = "1"
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()


def _verbosity(command):
    """Add -q/--quiet and -v/--verbose to a command."""
    command = click.option("--verbose", "-v", is_flag=True, help="More messages (debug level).")(command)
    return click.option("--quiet", "-q", is_flag=True,
                        help="No progress bars (libraries' too), warnings or tables: errors and data only.")(command)


class _Greedy(click.Option):
    """A repeatable option that also takes several values after one flag: ``--input A B C`` is
    ``--input A --input B --input C`` (values run up to the next argument starting with ``-``)."""

    def add_to_parser(self, parser, ctx):
        result = super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if option is None:
                continue
            process = option.process

            def greedy(value, state, process=process):
                process(value, state)
                while state.rargs and not state.rargs[0].startswith("-"):
                    process(state.rargs.pop(0), state)

            option.process = greedy
        return result


def _alias(name: str, *decls: str, **kwargs):
    """A hidden old spelling of an option (kept for one release), read into ``name``."""
    return click.option(*decls, name, hidden=True, default=None, **kwargs)


def _pick(new, old, flag: str, old_flag: str):
    if old is not None and new is not None and old != new:
        raise click.UsageError(f"{flag} and its old spelling {old_flag} disagree; use {flag}")
    return new if new is not None else old


def _fail(error: LimaDataError) -> None:
    """Hand ``error`` to the error boundary (:class:`_Boundary`), which prints ``error: <message>`` and exits 1."""
    raise error


class _Boundary(click.Group):
    """The one error boundary of every command (see :mod:`lima_data.errors`): an expected failure becomes
    ``error: <path>: <what is wrong and what to do>`` on stderr and exit status 1, Ctrl-C one line and 130, an
    unexpected exception its traceback and a request for a bug report; ``--debug`` shows every traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            if _debug(ctx):
                traceback.print_exc()
            click.echo("error: interrupted; files being written were not kept: run the command again (a build "
                       "resumes from its cache, training with --resume)", err=True)
            sys.exit(130)
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - this is the boundary (torch's CheckpointException is a
            message = describe(exc)  # BaseException)
            if message is None or _debug(ctx):
                traceback.print_exc()
            if message is None:
                click.echo(safe_text(f"error: unexpected {type(exc).__name__}: {exc}. This is a bug in lima-data "
                                     f"{_version()}: please report it with the command you ran and the traceback "
                                     "above."), err=True)
            else:
                click.secho("error: ", fg="red", err=True, nl=False)
                click.echo(message, err=True)
            sys.exit(1)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("LIMA_DATA_DEBUG", "") not in ("", "0")


def _version() -> str:
    from . import __version__

    return __version__


@click.group(cls=_Boundary, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lima-data")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure (also LIMA_DATA_DEBUG=1).")
def main(debug: bool) -> None:
    """Build LIMA-style supervised fine-tuning sets from community dumps, and inspect them.

    \b
    lima-data build                               build the bundled sample into manifests/sample
    lima-data build --input DUMPS --recipe lima   LIMA's full recipe on your dumps
    lima-data report manifests/sample             the funnel, rejects by reason, and an HTML report
    lima-data inspect manifests/sample --what rejects --reason too_long
    lima-data export manifests/sample --format hf
    lima-data validate manifests/sample
    """
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed escaped, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="lima-data-escape")


@main.command()
@click.option("--recipe", "recipe_name", default=None, metavar="NAME|PATH",
              help="Bundled recipe name or a TOML file. Bundled: sample, lima (the paper's rules), lima-release (the "
                   "release's distributions), lima-dialogue, lima-ablation-filtered-se / -unfiltered-se / -wikihow, "
                   "lima-quantity-2k ... -32k (`lima-data recipe --show NAME` prints one). Default: 'sample' "
                   "without --input, 'lima' with it.")
@click.option("--input", "-i", "inputs", multiple=True, type=click.Path(exists=True, path_type=Path), cls=_Greedy,
              metavar="PATH...", help="Dump files or folders of them, any source: Stack Exchange .7z / Posts.xml, "
                                      "wikiHow pages / CSVs / JSONL, Pushshift .zst / NDJSON / top-post CSV, "
                                      "natural-instructions task JSON, your authored JSONL, LIMA's release (GAIR "
                                      "train.jsonl / test.jsonl, LLaMA-Factory lima.json: its authors' rows only). "
                                      "Files are recognised by "
                                      "name and content. Several after one --input (--input A B C) or repeated. "
                                      "Default: the recipe's own inputs.")
@click.option("--sources", "--source", "sources", multiple=True, cls=_Greedy, metavar="NAME...",
              help=f"Sources to build (of: {', '.join(SOURCE_NAMES)}): several after one --sources, repeated, or "
                   "comma-separated. Default: all in the recipe.")
@click.option("--name", default=None, help="Manifest folder name. Default: the recipe's name.")
@click.option("--output", "-o", "out_dir", default=None, type=click.Path(path_type=Path),
              help="Folder that receives <name>/.  [default: manifests]")
@_alias("out_old", "--out", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only list which source claims which input file and which files are "
                                              "skipped (JSON on stdout with --json); read and write nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON.")
@click.option("--allow-empty", is_flag=True, help="Write a manifest even when no row is selected (else an error).")
@click.option("--seed", type=int, default=None, help="Override the recipe's seed.")
@click.option("--strict", is_flag=True, help="Fail on any malformed row, truncated file, source without input "
                                           "or unfilled quota.")
@click.option("--benchmark", "benchmarks", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="FILE", help="Prompts no train row may share a 13-word n-gram with (JSONL, CSV or one prompt a "
                                   "line), on top of the selected test prompts. Repeat for more.")
@click.option("--keep", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE",
              help="Candidate ids kept by hand (one a line, or JSONL with \"id\"): they pass every filter and are "
                   "selected first.")
@click.option("--drop", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE",
              help="Candidate ids dropped by hand (reason dropped_by_hand).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes reading and filtering shards in parallel (one shard per task; a Posts.xml over "
                   "64 MiB is split into byte ranges, each its own task).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine's processes; ray: the same tasks on a Ray cluster (pip install "
                   "'lima-data[ray]').")
@click.option("--address", default=None, help="Ray cluster address (default: a local Ray with --workers CPUs).")
@click.option("--clean-cache", is_flag=True,
              help="Remove <out>/.lima-cache (finished tasks, byte-range indexes, unpacked .7z members) once the "
                   "manifest is written.")
@_verbosity
def build(recipe_name, inputs, sources, name, out_dir, out_old, dry_run, as_json, allow_empty, seed, strict,
          benchmarks, keep, drop, workers, executor, address, clean_cache, quiet, verbose):
    """Read dumps, run the recipe's filters, select by quotas, write a manifest and its report.

    Writes manifests/<name>/ (train.jsonl, dev.jsonl, test.jsonl in the chat "messages" layout, manifest.json,
    report/ with stats and every rejected candidate), atomically: an interrupted build leaves no half-written
    manifest. Same inputs and seed give byte-identical JSONL, with any number of workers. Finished shards are
    cached in <out>/.lima-cache: a killed build run again does only what was left.

    \b
    Examples:
      lima-data build
      lima-data build --recipe lima --input dumps/ --name lima
      lima-data build --sources stackexchange wikihow --input se/ wikihow/ --name se-wikihow
      lima-data build --recipe lima --input dumps/ --dry-run
    """
    from .build import build as run_build
    from .recipe import load_recipe
    from .report import counts_table, funnel_table

    _setup(quiet, verbose)
    out_dir = _pick(out_dir, out_old, "--output", "--out") or Path("manifests")
    try:
        recipe = load_recipe(recipe_name or ("lima" if inputs else "sample"), seed=seed)
        wanted = [s.strip() for item in sources for s in item.split(",") if s.strip()] or None
        for source in wanted or ():
            if source not in SOURCE_NAMES:
                raise click.BadParameter(f"unknown source {source!r} (known: {', '.join(SOURCE_NAMES)})",
                                         param_hint="--sources")
        console = _console(quiet)
        result = run_build(recipe, inputs=list(inputs) or None, sources=wanted, out_dir=out_dir, name=name,
                           strict=strict, quiet=quiet, console=console, benchmarks=benchmarks, keep=keep,
                           drop=drop, workers=workers, executor=executor, address=address, dry_run=dry_run,
                           allow_empty=allow_empty, clean_cache=clean_cache)
    except LimaDataError as error:
        _fail(error)
        return
    if dry_run:
        plan = result.manifest
        if as_json:
            click.echo(json.dumps(plan, ensure_ascii=False, indent=2))
            return
        for source, shards in plan["shards"].items():
            click.echo(f"{source}: {len(shards)} file(s)")
            for shard in shards:
                click.echo(f"  {shard['path']}  ({shard['kind']}{', ' + shard['domain'] if shard['domain'] else ''})")
        click.echo(f"skipped (no source claims them): {len(plan['skipped'])} file(s)")
        for path in plan["skipped"]:
            click.echo(f"  {path}")
        return
    console.print(funnel_table(result.manifest))
    console.print(counts_table(result.manifest))
    from .report.html import build_report  # matplotlib is imported here, after the build, not at start-up

    try:
        console.print(f"report: {build_report(result.path)}")  # the same file `lima-data report` writes
    except LimaDataError as error:
        _fail(error)
        return
    click.echo(str(result.path))


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--examples", "examples", default=3, show_default=True, metavar="N",
              help="Rejected candidates shown per source and drop reason, in the terminal and in the HTML alike.")
@click.option("--per-reason", "examples", type=int, hidden=True, help="Old name of --examples.")
@click.option("--reference", type=click.Path(exists=True, path_type=Path), metavar="FILE|DIR",
              help="A set to compare with: LIMA's train.jsonl in GAIR's layout, or another manifest folder.")
@click.option("--no-html", is_flag=True, help="Only print to the terminal.")
@_verbosity
def report(manifest, examples, reference, no_html, quiet, verbose):
    """Print the funnel of MANIFEST (a manifests/<name> folder) and a few rejects per drop reason, and write
    MANIFEST/report/report.html (the same file every build writes): one self-contained page with a table of
    contents, a summary with a funnel figure per source, then per source its kept examples, its measured values
    (kept versus dropped, thresholds marked) and why each drop happened (the matched text highlighted); a
    before/after trace of the cleaning steps, dedup clusters and timings.

    \b
    Example:
      lima-data report manifests/lima --reference lima/train.jsonl --examples 5
    """
    from .report import print_report
    from .report.html import build_report

    _setup(quiet, verbose)
    try:
        print_report(manifest, Console(quiet=quiet), examples=examples)
        if not no_html:
            click.echo(str(build_report(manifest, reference=reference, examples=examples)))
    except LimaDataError as error:
        _fail(error)


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--what", type=click.Choice(["kept", "rejects", "candidates"]), default="kept", show_default=True,
              help="Manifest rows, rejected candidates, or both.")
@click.option("--source", default=None, help="Only this source.")
@click.option("--reason", default=None, help="Only rejects with this reason (or of this filter).")
@click.option("--domain", default=None, help="Only this site / category / subreddit.")
@click.option("--split", type=click.Choice(["train", "dev", "test"]), default=None, help="Only this split.")
@click.option("--id", "row_id", default=None, help="Show this one id in full.")
@click.option("--offset", default=0, show_default=True, help="Skip this many matches (paging).")
@click.option("--limit", default=20, show_default=True, help="Show at most this many matches.")
@click.option("--json", "as_json", is_flag=True, help="Print the matching rows as JSON lines on stdout (with "
                                                      "their split, or their filter and reason) instead of a table.")
@_verbosity
def inspect(manifest, what, source, reason, domain, split, row_id, offset, limit, as_json, quiet, verbose):
    """List and page the rows of MANIFEST, its rejected candidates, or both; filter by source, reason, domain or
    split; --id shows one row or candidate in full.

    \b
    Examples:
      lima-data inspect manifests/lima --what rejects --reason too_long --limit 5
      lima-data inspect manifests/lima --id stackexchange/beer.stackexchange.com/181
    """
    from .report import inspect_rows, iter_rows

    _setup(quiet, verbose)
    try:
        _check_known(manifest, source, reason)
        if as_json:
            matched = 0
            for row in iter_rows(manifest, "candidates" if row_id else what):
                if row_id is not None and row["id"] != row_id:
                    continue
                if not ((source is None or row.get("source") == source)
                        and (reason is None or reason in (row.get("reason"), row.get("filter")))
                        and (domain is None or row.get("domain") == domain)
                        and (split is None or row.get("split") == split)):
                    continue
                matched += 1
                if matched > offset and matched <= offset + limit:
                    click.echo(json.dumps(row, ensure_ascii=False))
            if row_id is not None and not matched:
                raise LimaDataError(f"{manifest}: no row or candidate with id {row_id!r}")
            return
        inspect_rows(manifest, Console(), what=what, source=source, reason=reason, domain=domain, split=split,
                     row_id=row_id, offset=offset, limit=limit)
    except LimaDataError as error:
        _fail(error)


def _check_known(manifest: Path, source: str | None, reason: str | None) -> None:
    """Raise a usage error when --source or --reason names nothing the manifest knows, listing what it knows."""
    from .manifest import load_manifest

    data = load_manifest(manifest)
    funnel = data.get("funnel", {})
    sources = sorted(set(data.get("sources", [])) | set(funnel))
    if source is not None and source not in sources:
        raise click.BadParameter(f"unknown source {source!r} (this manifest has: {', '.join(sources)})",
                                 param_hint="--source")
    if reason is not None:
        known = sorted({stage["filter"] for f in funnel.values() for stage in f.get("stages", [])}
                       | {r for f in funnel.values() for stage in f.get("stages", []) for r in stage.get("dropped", {})})
        if reason not in known:
            raise click.BadParameter(f"unknown reason or filter {reason!r} (this manifest has: {', '.join(known)})",
                                     param_hint="--reason")


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["gair", "parquet", "hf", "messages"]), default=None,
              help="gair: LIMA's {conversations, source} JSONL (train and test); parquet: one file per split and a "
                   "dataset card; hf: a datasets DatasetDict (load_from_disk); messages: the manifest's own JSONL "
                   "and card. Required unless --push-to-hub.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Output folder (outside the manifest). Default: exports/<manifest name>/<format> beside the "
                   "folder that holds the manifest.")
@_alias("out_old", "--out", type=click.Path(path_type=Path))
@click.option("--push-to-hub", "repo", default=None, metavar="REPO",
              help="Upload the Parquet splits and the dataset card to this Hugging Face dataset repository "
                   "(user/name; token from HF_TOKEN or `hf auth login`).")
@click.option("--private", is_flag=True, help="With --push-to-hub: create the repository private.")
@_verbosity
def export(manifest, fmt, output, out_old, repo, private, quiet, verbose):
    """Write MANIFEST's splits in another layout (splits without rows are left out; dev is `validation` in the
    parquet and hf layouts), or push them to the Hugging Face Hub.

    \b
    Examples:
      lima-data export manifests/lima --format hf            # -> exports/lima/hf
      lima-data export manifests/lima --format gair -o lima-gair/
      lima-data export manifests/lima --push-to-hub me/lima-se --private
    """
    from .export import export_manifest, push_to_hub

    _setup(quiet, verbose)
    output = _pick(output, out_old, "--output", "--out")
    try:
        if repo is None and fmt is None:
            raise click.UsageError("give --format (or --push-to-hub REPO)")
        if fmt is not None:
            click.echo(str(export_manifest(manifest, fmt, output, quiet=quiet)))
        if repo is not None:
            plan = push_to_hub(manifest, repo, private=private)
            click.echo(f"https://huggingface.co/datasets/{plan['repo']}")
    except LimaDataError as error:
        _fail(error)


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@_verbosity
def validate(manifest, quiet, verbose):
    """Check MANIFEST: row schema, sha256 and row counts against manifest.json, duplicate ids. Exits 1 when
    anything is wrong, listing each problem with its file and line."""
    from .export import validate_manifest

    _setup(quiet, verbose)
    try:
        problems = validate_manifest(manifest)
    except LimaDataError as error:
        _fail(error)
        return
    for problem in problems:
        click.echo(problem)
    if problems:
        click.secho(f"{len(problems)} problem(s)", fg="red", err=True)
        sys.exit(1)
    if not quiet:
        click.secho("valid", fg="green", err=True)


@main.command()
@click.argument("manifest", required=False, type=click.Path(path_type=Path))
@_alias("manifest_old", "--manifest", type=click.Path(path_type=Path))
@click.option("--model", help="A Hugging Face model folder (or a config.json for a randomly initialised model); "
                              "with --plan also a preset: llama-7b, llama-13b, llama-33b, llama-65b.")
@click.option("--tokenizer", help="Tokenizer folder. Default: the model folder.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Run folder: checkpoints/, export/, metrics.jsonl.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A TOML or JSON file of training settings (the options below override it).")
@click.option("--epochs", type=int, help="Default 15 (LIMA).")
@click.option("--lr", type=float, help="Initial learning rate. Default 1e-5 (LIMA), decaying linearly to --final-lr.")
@click.option("--final-lr", type=float, help="Default 1e-6 (LIMA).")
@click.option("--global-batch", type=int, help="Examples per optimizer step over all GPUs. Default 32 (LIMA).")
@click.option("--micro-batch", type=int, help="Examples per GPU per forward pass. Default 1.")
@click.option("--max-length", type=int, help="Tokens; longer texts are trimmed. Default 2048 (LIMA).")
@click.option("--residual-dropout", type=float, help="Top layer's rate. Default 0.3, or 0.2 under 30B parameters.")
@click.option("--grad-clip", type=float, help="Clip the gradient norm (off by default).")
@click.option("--no-activation-checkpointing", is_flag=True, default=None, help="Keep all activations (faster, more memory).")
@click.option("--fp32", is_flag=True, default=None, help="Compute in fp32 instead of bf16.")
@click.option("--save-every-steps", type=int, help="Also save a resume checkpoint every N steps.")
@click.option("--export-epochs", help="Comma-separated epochs exported as Hugging Face checkpoints. Default 5-10.")
@click.option("--seed", type=int)
@click.option("--resume", is_flag=True, default=None, help="Continue from the last complete checkpoint in --output.")
@click.option("--max-steps", type=int, help="Stop after N optimizer steps (smoke runs).")
@click.option("--nproc-per-node", type=int, default=1, show_default=True, help="Workers (GPUs) on this node.")
@click.option("--nnodes", type=int, default=1, show_default=True)
@click.option("--node-rank", type=int, default=0, show_default=True)
@click.option("--rdzv-endpoint", help="HOST:PORT of the rendezvous for several nodes.")
@click.option("--plan", "plan_only", is_flag=True, help="Print memory per GPU for the model, GPUs and options, then stop.")
@click.option("--gpu-memory", type=float, help="GiB per GPU for the plan. Default: this machine's first GPU.")
@click.option("--force", is_flag=True, help="Start even if the plan says it will not fit.")
@click.option("--from-scratch", is_flag=True, default=None,
              help="Allow a model without weight files (random initialisation); otherwise that is an error.")
@click.option("--overwrite", is_flag=True, default=None,
              help="Remove another run's checkpoints and exports from --output and start again.")
@click.option("--allow-modified-manifest", is_flag=True, default=None,
              help="Train even when train/dev.jsonl differ from the sha256 in manifest.json.")
@click.option("--dev-generations", type=int, help="Dev prompts sampled from each export after training. Default 3.")
@click.option("--attn-implementation", type=click.Choice(["sdpa", "eager", "flash_attention_2"]),
              help="Attention kernel. Default sdpa; flash_attention_2 needs the flash-attn package.")
@click.option("--cpu-offload", is_flag=True, default=None,
              help="Keep sharded fp32 weights, gradients and AdamW states in host memory (FSDP2 CPUOffloadPolicy).")
@click.option("--log-every", type=int, help="A progress line every N steps (0: none). Default 1.")
@_verbosity
def train(manifest, manifest_old, quiet, verbose, model, tokenizer, output, config_file, epochs, lr, final_lr, global_batch, micro_batch,
          max_length, residual_dropout, grad_clip, no_activation_checkpointing, fp32, save_every_steps,
          export_epochs, seed, resume, max_steps, nproc_per_node, nnodes, node_rank, rdzv_endpoint, plan_only,
          gpu_memory, force, from_scratch, overwrite, allow_modified_manifest, dev_generations,
          attn_implementation, cpu_offload, log_every):
    """Fine-tune a LLaMA-family model on MANIFEST (a manifests/<name> folder: train and dev splits) with FSDP and LIMA's recipe (15 epochs, AdamW 0.9/0.95, weight
    decay 0.1, lr 1e-5 -> 1e-6 linear, no warmup, 64 examples per step under 30B parameters and 32 above, 2,048 tokens, residual dropout rising to
    0.3 / 0.2 with depth, EOT after every utterance, loss on the assistant's tokens).

    \b
    Examples:
      lima-data train --plan --model llama-65b --nproc-per-node 8 --gpu-memory 80
      lima-data train manifests/lima --model /models/llama-7b -o runs/7b --nproc-per-node 8
      lima-data train manifests/lima --model /models/llama-7b -o runs/7b --resume
    """
    _setup(quiet, verbose)
    manifest = _pick(manifest, manifest_old, "MANIFEST", "--manifest")
    try:
        from .train.config import TrainConfig
        from .train.plan import plan
    except ImportError:
        _fail(LimaDataError("training needs the train extra: pip install 'lima-data[train]'"))
        return
    gpus = nproc_per_node * nnodes
    try:
        config = TrainConfig.load(
            config_file, manifest=str(manifest) if manifest else None, model=model, tokenizer=tokenizer,
            output=str(output) if output else None, epochs=epochs, lr=lr, final_lr=final_lr,
            global_batch=global_batch, micro_batch=micro_batch, max_length=max_length,
            residual_dropout=residual_dropout, grad_clip=grad_clip,
            activation_checkpointing=False if no_activation_checkpointing else None, bf16=False if fp32 else None,
            save_every_steps=save_every_steps, seed=seed, resume=resume, max_steps=max_steps,
            export_epochs=[int(e) for e in export_epochs.split(",")] if export_epochs else None,
            from_scratch=from_scratch, overwrite=overwrite, allow_modified_manifest=allow_modified_manifest,
            dev_generations=dev_generations, attn_implementation=attn_implementation, cpu_offload=cpu_offload,
            log_every=log_every)
        if not config.model:
            raise click.UsageError("--model is required")
        if gpu_memory is None:
            try:
                import torch
            except ImportError:
                raise LimaDataError("training needs the train extra: pip install 'lima-data[train]'") from None
            if torch.cuda.is_available():
                gpu_memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        estimate = None
        if gpu_memory is not None:
            estimate = plan(config.model, gpus, gpu_memory, micro_batch=config.micro_batch,
                            max_length=config.max_length, activation_checkpointing=config.activation_checkpointing,
                            global_batch=config.global_batch, cpu_offload=config.cpu_offload,
                            gpus_per_node=nproc_per_node, keep_checkpoints=config.keep_checkpoints,
                            exports=len(config.export_epochs) + 1, bf16=config.bf16)
        if plan_only:
            if estimate is None:
                raise click.UsageError("--plan needs --gpu-memory GiB on a machine without a GPU")
            _print_plan(estimate)
            sys.exit(0 if estimate["fits"] else 1)
        if estimate is not None and not estimate["fits"] and not force:
            _print_plan(estimate)
            raise LimaDataError("this plan does not fit in GPU memory (see above); use more GPUs, or --force")
        if not config.manifest:
            raise click.UsageError("MANIFEST is required (the first argument)")
        from .train.launch import launch

        summary = launch(config, nproc_per_node=nproc_per_node, nnodes=nnodes, node_rank=node_rank,
                         rdzv_endpoint=rdzv_endpoint)
        if summary is not None:
            if summary.get("interrupted"):
                _fail(LimaDataError(f"{config.output}: interrupted ({summary['interrupted']}) at step "
                                    f"{summary['steps']}; checkpoint saved, continue with --resume"))
            last = f"; last loss {summary['losses'][-1]:.4f}" if summary["losses"] else ""
            click.echo(f"{summary['steps']} steps{last}; exported: {', '.join(summary['exported']) or 'none'}")
    except (LimaDataError, ValueError) as error:
        _fail(LimaDataError(describe(error) or str(error)))


def _print_plan(estimate: dict) -> None:
    console = Console()
    table = __import__("rich.table", fromlist=["Table"]).Table(
        title=f"{estimate['model']}: {estimate['parameters'] / 1e9:.1f}B parameters on {estimate['gpus']} GPU(s) "
              f"of {estimate['gpu_memory_gib']:g} GiB", title_justify="left")
    table.add_column("per GPU")
    table.add_column("GiB", justify="right")
    for part, gib in estimate["parts_gib"].items():
        table.add_row(part, f"{gib:.2f}")
    table.add_row("[b]total[/]", f"[b]{estimate['total_gib']:.2f}[/]")
    table.add_row("usable", f"{estimate['limit_gib']:.2f}")
    console.print(table)
    offload = "on: fp32 weights, gradients and AdamW states in host memory" if estimate.get("cpu_offload") \
        else "off (--cpu-offload moves 16 bytes per parameter / GPUs to host memory)"
    console.print(f"global batch {estimate['global_batch']} examples; CPU offload {offload}")
    console.print(f"host memory per node ~{estimate['host_per_node_gib']:g} GiB; disk ~{estimate['disk_gib']:g} GiB "
                  f"(checkpoints and exports); dev generations after training need "
                  f"{estimate['dev_generation_gib']:g} GiB on one GPU"
                  + ("" if estimate["dev_generation_fits"] else " (skipped: use `lima-data generate`)"))
    for problem in estimate.get("problems", []):
        console.print(f"[red]{problem}[/]")
    needs = f"needs at least {estimate['min_gpus']} GPUs" if estimate["min_gpus"] else "no GPU count fits"
    verdict = "fits" if estimate["fits"] else f"does NOT fit: {needs}"
    console.print(f"[{'green' if estimate['fits'] else 'red'}]{verdict}[/]")


@main.command()
@click.argument("manifest", required=False, type=click.Path(path_type=Path))
@_alias("manifest_old", "--manifest", type=click.Path(path_type=Path))
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="An exported checkpoint (runs/<name>/export/epoch-NN).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "dev", "test"]))
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="JSONL of {id, prompt, generation}. Default: stdout.")
@_alias("out_old", "--out", type=click.Path(path_type=Path))
@click.option("--limit", type=int, default=None, help="Only the first N prompts.")
@click.option("--max-new-tokens", type=int, default=2048, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True, help="Prompts per generate() call.")
@_verbosity
def generate(manifest, manifest_old, checkpoint, split, output, out_old, limit, max_new_tokens, device, seed,
             batch_size, quiet, verbose):
    """Sample replies to MANIFEST's prompts from an exported checkpoint with LIMA's settings (nucleus p 0.9,
    temperature 0.7, repetition penalty 1.2), stopping at EOT.

    \b
    Example:
      lima-data generate manifests/lima --checkpoint runs/7b/export/epoch-05 -o generations.jsonl
    """
    _setup(quiet, verbose)
    manifest = _pick(manifest, manifest_old, "MANIFEST", "--manifest")
    out = _pick(output, out_old, "--output", "--out")
    if manifest is None:
        raise click.UsageError("MANIFEST is required (the first argument)")
    problem = _checkpoint_problem(checkpoint)
    if problem:
        _fail(LimaDataError(f"{checkpoint}: {problem}"))
        return
    try:
        import torch

        from .files import write_jsonl
        from .manifest import read_split
        from .train.config import TrainConfig
        from .train.export import generate_rows
    except ImportError:
        _fail(LimaDataError("generation needs the train extra: pip install 'lima-data[train]'"))
        return
    try:
        rows = read_split(manifest, split)[:limit]
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        config = TrainConfig(max_new_tokens=max_new_tokens, seed=seed, generation_batch=batch_size)
        try:
            generated = generate_rows(checkpoint, rows, config, device=device)
        except (OSError, ValueError, KeyError) as exc:
            raise LimaDataError(f"{checkpoint}: cannot load the checkpoint: {str(exc).splitlines()[0]}") from None
    except LimaDataError as error:
        _fail(error)
        return
    if out is None:
        for row in generated:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    write_jsonl(out, generated)
    click.echo(str(out))


def _checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` is not an exported checkpoint (``None`` when it looks like one): it must be a folder with
    config.json, weights (*.safetensors or *.bin) and a tokenizer (tokenizer.json or tokenizer_config.json)."""
    if not folder.exists():
        return "no such folder"
    if not folder.is_dir():
        return "not a folder (give an exported checkpoint folder, e.g. runs/<name>/export/epoch-05)"
    if not (folder / "config.json").is_file():
        hint = " (a resume checkpoint? give one of runs/<name>/export/epoch-NN)" if any(folder.glob("*.distcp")) else ""
        return f"not an exported checkpoint: no config.json{hint}"
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        return "not an exported checkpoint: no weights (*.safetensors)"
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        return "not an exported checkpoint: no tokenizer (tokenizer.json)"
    return None


@main.command()
@click.argument("generations", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--base-url", required=True, envvar="LIMA_JUDGE_BASE_URL", show_envvar=True,
              help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1 (vLLM) or https://api.openai.com/v1.")
@click.option("--model", required=True, envvar="LIMA_JUDGE_MODEL", show_envvar=True, help="The judge model's name.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True, metavar="VAR",
              help="Environment variable holding the API key (unset: no key is sent, as a local vLLM needs none).")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for judgments.jsonl and summary.json. Default: judgments/<A>[-vs-<B>].")
@click.option("--limit", type=int, default=None, help="Only the first N generations (or pairs).")
@click.option("--workers", type=int, default=4, show_default=True, help="Requests in flight at once.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds per request.")
@_verbosity
def judge(generations, base_url, model, api_key_env, output, limit, workers, timeout, quiet, verbose):
    """Score `lima-data generate` output with an LLM judge behind an OpenAI-compatible endpoint.

    \b
    One file (system A): LIMA's 1-6 helpfulness rating of each generation; mean with a 95% bootstrap interval.
    Two files (A, B): pairwise preference on the prompts they share, each pair asked in both orders (a win
    needs both); win / tie / loss of A with 95% Wilson intervals.

    \b
    Examples:
      lima-data judge runs/lima/gen-test.jsonl --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-72B-Instruct
      lima-data judge lima.jsonl alpaca.jsonl --base-url https://api.openai.com/v1 --model gpt-4o -o judged/ab
    """
    _setup(quiet, verbose)
    import os

    from rich.progress import Progress
    from rich.table import Table

    from . import judge as J

    if len(generations) > 2:
        _fail(LimaDataError("judge takes one generation file (a rating) or two (a comparison)"))
    try:
        systems = [J.read_generations(path) for path in generations]
        if output is None:
            output = Path("judgments") / "-vs-".join(path.stem for path in generations)
        endpoint = J.Endpoint(base_url, model, os.environ.get(api_key_env) or None, timeout=timeout)
        console = _console(quiet)
        with Progress(console=console, disable=quiet, transient=True) as progress:
            if len(systems) == 1:
                rows = systems[0][:limit]
                bar = progress.add_task("judging", total=len(rows))
                judgments = J.judge_likert(endpoint, rows, workers=workers, progress=lambda: progress.advance(bar))
                summary = J.summarize_likert(judgments)
            else:
                pairs = J.pair_rows(*systems)[:limit]
                bar = progress.add_task("judging", total=2 * len(pairs))
                judgments = J.judge_pairwise(endpoint, pairs, workers=workers, progress=lambda: progress.advance(bar))
                summary = J.summarize_pairwise(judgments)
        endpoint.close()
    except LimaDataError as error:
        _fail(error)
        return
    summary.update({"systems": [str(p) for p in generations], "judge_model": model, "base_url": base_url})
    J.write_results(output, judgments, summary)
    if not quiet:
        table = Table(title=f"judge {model}: " + " vs ".join(p.name for p in generations), title_justify="left")
        if summary["mode"] == "likert":
            for column in ("judged", "mean", "95% CI", "unparsed"):
                table.add_column(column, justify="right")
            table.add_row(str(summary["judged"]), f"{summary['mean']:.2f}",
                          f"{summary['ci95'][0]:.2f}-{summary['ci95'][1]:.2f}", str(summary["unparsed"]))
        else:
            for column in ("A", "count", "rate", "95% CI"):
                table.add_column(column, justify="right" if column != "A" else "left")
            for key in ("win", "tie", "loss", "win_or_tie"):
                entry = summary[key]
                table.add_row(key.replace("_", " or "), str(entry["count"]), f"{entry['rate']:.1%}",
                              f"{entry['ci95'][0]:.1%}-{entry['ci95'][1]:.1%}")
        Console().print(table)
    click.echo(str(output), err=quiet)


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--step", type=int, help="The checkpoint's step. Default: the latest complete checkpoint.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Export folder. Default: RUN/export/step-<N>.")
@_verbosity
def convert(run, step, output, quiet, verbose):
    """Turn a training checkpoint of RUN (a `lima-data train` output folder) into a Hugging Face export (bf16
    safetensors shards, tokenizer with EOT, generation config), one tensor at a time, with no GPU."""
    _setup(quiet, verbose)
    try:
        from .train.trainer import Checkpoints
        from .train.weights import TEMPLATE, export_checkpoint_folder
    except ImportError:
        _fail(LimaDataError("conversion needs the train extra: pip install 'lima-data[train]'"))
        return
    try:
        checkpoints = Checkpoints(run, keep=0)
        if step is None:
            latest = checkpoints.latest()
            if latest is None:
                raise LimaDataError(f"{run}: no complete checkpoint in {checkpoints.root}")
            step = int(latest.name.split("-")[1])
        path = checkpoints.path(step)
        if not (path / "COMPLETE").exists():
            raise LimaDataError(f"{path}: no complete checkpoint of step {step}")
        problem = checkpoints.verify(path)
        if problem:
            raise LimaDataError(f"{path}: damaged checkpoint ({problem})")
        out = export_checkpoint_folder(path, output or run / "export" / f"step-{step:08d}", run / TEMPLATE)
    except LimaDataError as error:
        _fail(error)
        return
    click.echo(str(out))


if __name__ == "__main__":
    main()


@main.command()
@click.option("--show", "show", metavar="NAME|PATH", default=None,
              help="Print this recipe resolved: includes merged, filters_from applied, defaults filled.")
@click.option("--schema", is_flag=True, help="Print the JSON Schema of a recipe file (for editors).")
@click.option("--format", "fmt", type=click.Choice(["toml", "json"]), default="toml", show_default=True,
              help="How --show prints the recipe.")
@_verbosity
def recipe(show, schema, fmt, quiet, verbose):
    """Show a resolved recipe (--show NAME) or the recipe JSON Schema (--schema), on stdout.

    \b
    lima-data recipe --show lima                 the lima preset with its includes applied, as TOML
    lima-data recipe --show my.toml --format json
    lima-data recipe --schema > recipe.schema.json
    """
    from .recipe import load_recipe, recipe_schema

    _setup(quiet, verbose)
    if schema == (show is not None):
        raise click.UsageError("give one of --show NAME or --schema")
    if schema:
        click.echo(json.dumps(recipe_schema(), indent=2))
        return
    data = load_recipe(show).data
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        import tomli_w

        click.echo(tomli_w.dumps(data), nl=False)
