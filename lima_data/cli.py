"""The ``lima-data`` command line (click)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from .errors import LimaDataError

SOURCE_NAMES = ("stackexchange", "wikihow", "reddit", "natural_instructions", "authored")


def _console(quiet: bool = False) -> Console:
    return Console(stderr=True, quiet=quiet)


def _fail(error: LimaDataError) -> None:
    """Print ``error: <message>`` on stderr, unwrapped (paths stay copyable), and exit with status 1."""
    click.secho("error: ", fg="red", err=True, nl=False)
    click.echo(str(error), err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lima-data")
def main() -> None:
    """Build LIMA-style supervised fine-tuning sets from community dumps, and inspect them.

    \b
    lima-data build                               build the bundled sample into manifests/sample
    lima-data build --input DUMPS --recipe lima   LIMA's full recipe on your dumps
    lima-data report manifests/sample             the funnel, rejects by reason, and an HTML report
    lima-data inspect manifests/sample --what rejects --reason too_long
    lima-data export manifests/sample --format hf
    lima-data validate manifests/sample
    """


@main.command()
@click.option("--recipe", "recipe_name", default=None, metavar="NAME|PATH",
              help="Bundled recipe name (sample, lima) or a TOML file. Default: 'sample' without --input, "
                   "'lima' with it.")
@click.option("--input", "-i", "inputs", multiple=True, type=click.Path(exists=True, path_type=Path),
              metavar="PATH", help="A dump file or a folder of them, any source: Stack Exchange .7z / Posts.xml, "
                                   "wikiHow pages / CSVs / JSONL, Pushshift .zst / NDJSON / top-post CSV, "
                                   "natural-instructions task JSON, your authored JSONL. Files are recognised by "
                                   "name and content. Repeat for more. Default: the recipe's own inputs.")
@click.option("--sources", default=None, metavar="LIST",
              help=f"Comma-separated sources to build (of: {', '.join(SOURCE_NAMES)}). Default: all in the recipe.")
@click.option("--name", default=None, help="Manifest folder name. Default: the recipe's name.")
@click.option("--out", "out_dir", default="manifests", show_default=True, type=click.Path(path_type=Path),
              help="Folder that receives <name>/.")
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
@click.option("--quiet", "-q", is_flag=True, help="No progress bars, warnings or tables.")
def build(recipe_name, inputs, sources, name, out_dir, seed, strict, benchmarks, keep, drop, workers, executor,
          address, quiet):
    """Read dumps, run the recipe's filters, select by quotas, write a manifest and its report.

    Writes manifests/<name>/ (train.jsonl, dev.jsonl, test.jsonl in the chat "messages" layout, manifest.json,
    report/ with stats and every rejected candidate), atomically: an interrupted build leaves no half-written
    manifest. Same inputs and seed give byte-identical JSONL, with any number of workers. Finished shards are
    cached in <out>/.lima-cache: a killed build run again does only what was left.

    \b
    Examples:
      lima-data build
      lima-data build --recipe lima --input dumps/ --name lima
      lima-data build --sources stackexchange,wikihow --input dumps/ --name se-wikihow
    """
    from .build import build as run_build
    from .recipe import load_recipe
    from .report import counts_table, funnel_table

    try:
        recipe = load_recipe(recipe_name or ("lima" if inputs else "sample"), seed=seed)
        wanted = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
        for source in wanted or ():
            if source not in SOURCE_NAMES:
                raise click.BadParameter(f"unknown source {source!r} (known: {', '.join(SOURCE_NAMES)})",
                                         param_hint="--sources")
        console = _console(quiet)
        result = run_build(recipe, inputs=list(inputs) or None, sources=wanted, out_dir=out_dir, name=name,
                           strict=strict, quiet=quiet, console=console, benchmarks=benchmarks, keep=keep,
                           drop=drop, workers=workers, executor=executor, address=address)
    except LimaDataError as error:
        _fail(error)
        return
    console.print(funnel_table(result.manifest))
    console.print(counts_table(result.manifest))
    click.echo(str(result.path))


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--per-reason", default=2, show_default=True, help="Rejected candidates shown per drop reason.")
@click.option("--reference", type=click.Path(exists=True, path_type=Path), metavar="FILE|DIR",
              help="A set to compare with: LIMA's train.jsonl in GAIR's layout, or another manifest folder.")
@click.option("--no-html", is_flag=True, help="Only print to the terminal.")
def report(manifest, per_reason, reference, no_html):
    """Print the funnel of MANIFEST (a manifests/<name> folder) and a few rejects per drop reason, and write
    MANIFEST/report/report.html: one self-contained page with the funnel, the composition against the quotas,
    histograms of every measured value with the thresholds, dedup clusters, timings and rejected examples.

    \b
    Example:
      lima-data report manifests/lima --reference lima/train.jsonl
    """
    from .report import print_report
    from .report.html import build_report

    try:
        print_report(manifest, Console(), per_reason=per_reason)
        if not no_html:
            click.echo(str(build_report(manifest, reference=reference, per_reason=max(per_reason, 3))))
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
def inspect(manifest, what, source, reason, domain, split, row_id, offset, limit):
    """List and page the rows of MANIFEST, its rejected candidates, or both; filter by source, reason, domain or
    split; --id shows one row or candidate in full.

    \b
    Examples:
      lima-data inspect manifests/lima --what rejects --reason too_long --limit 5
      lima-data inspect manifests/lima --id stackexchange/beer.stackexchange.com/181
    """
    from .report import inspect_rows

    try:
        inspect_rows(manifest, Console(), what=what, source=source, reason=reason, domain=domain, split=split,
                     row_id=row_id, offset=offset, limit=limit)
    except LimaDataError as error:
        _fail(error)


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["gair", "parquet", "hf", "messages"]), required=True,
              help="gair: LIMA's {conversations, source} JSONL; parquet: one file per split; hf: a datasets "
                   "DatasetDict (load_from_disk); messages: the manifest's own JSONL.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder. Default: MANIFEST/export/<format>.")
def export(manifest, fmt, out):
    """Write MANIFEST's train / dev / test splits in another layout."""
    from .export import export_manifest

    try:
        click.echo(str(export_manifest(manifest, fmt, out or Path(manifest) / "export" / fmt)))
    except LimaDataError as error:
        _fail(error)


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
def validate(manifest):
    """Check MANIFEST: row schema, sha256 and row counts against manifest.json, duplicate ids. Exits 1 when
    anything is wrong, listing each problem with its file and line."""
    from .export import validate_manifest

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
    click.secho("valid", fg="green", err=True)


@main.command()
@click.option("--manifest", type=click.Path(path_type=Path), help="A manifests/<name> folder (train and dev splits).")
@click.option("--model", help="A Hugging Face model folder (or a config.json for a randomly initialised model); "
                              "with --plan also a preset: llama-7b, llama-13b, llama-33b, llama-65b.")
@click.option("--tokenizer", help="Tokenizer folder. Default: the model folder.")
@click.option("--output", type=click.Path(path_type=Path), help="Run folder: checkpoints/, export/, metrics.jsonl.")
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
def train(manifest, model, tokenizer, output, config_file, epochs, lr, final_lr, global_batch, micro_batch,
          max_length, residual_dropout, grad_clip, no_activation_checkpointing, fp32, save_every_steps,
          export_epochs, seed, resume, max_steps, nproc_per_node, nnodes, node_rank, rdzv_endpoint, plan_only,
          gpu_memory, force, from_scratch, overwrite, allow_modified_manifest, dev_generations,
          attn_implementation, cpu_offload, log_every):
    """Fine-tune a LLaMA-family model on a manifest with FSDP and LIMA's recipe (15 epochs, AdamW 0.9/0.95, weight
    decay 0.1, lr 1e-5 -> 1e-6 linear, no warmup, 32 examples per step, 2,048 tokens, residual dropout rising to
    0.3 / 0.2 with depth, EOT after every utterance, loss on the assistant's tokens).

    \b
    Examples:
      lima-data train --plan --model llama-65b --nproc-per-node 8 --gpu-memory 80
      lima-data train --manifest manifests/lima --model /models/llama-7b --output runs/7b --nproc-per-node 8
      lima-data train --manifest manifests/lima --model /models/llama-7b --output runs/7b --resume
    """
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
            raise click.UsageError("--manifest is required")
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
        _fail(LimaDataError(str(error)))


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
@click.option("--checkpoint", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An exported checkpoint (runs/<name>/export/epoch-NN).")
@click.option("--manifest", required=True, type=click.Path(path_type=Path))
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "dev", "test"]))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="JSONL of {id, prompt, generation}.")
@click.option("--limit", type=int, default=None, help="Only the first N prompts.")
@click.option("--max-new-tokens", type=int, default=2048, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True, help="Prompts per generate() call.")
def generate(checkpoint, manifest, split, out, limit, max_new_tokens, device, seed, batch_size):
    """Sample replies to a manifest's prompts from an exported checkpoint with LIMA's settings (nucleus p 0.9,
    temperature 0.7, repetition penalty 1.2), stopping at EOT."""
    try:
        import torch

        from .manifest import read_split
        from .train.config import TrainConfig
        from .train.export import generate_rows, write_jsonl
    except ImportError:
        _fail(LimaDataError("generation needs the train extra: pip install 'lima-data[train]'"))
        return
    rows = read_split(manifest, split)[:limit]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    config = TrainConfig(max_new_tokens=max_new_tokens, seed=seed, generation_batch=batch_size)
    write_jsonl(out, generate_rows(checkpoint, rows, config, device=device))
    click.echo(str(out))


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--step", type=int, help="The checkpoint's step. Default: the latest complete checkpoint.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Export folder. Default: RUN/export/step-<N>.")
def convert(run, step, output):
    """Turn a training checkpoint of RUN (a `lima-data train` output folder) into a Hugging Face export (bf16
    safetensors shards, tokenizer with EOT, generation config), one tensor at a time, with no GPU."""
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
