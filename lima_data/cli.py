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
    lima-data report manifests/sample             the funnel and rejected candidates by reason
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
@click.option("--quiet", "-q", is_flag=True, help="No progress bars, warnings or tables.")
def build(recipe_name, inputs, sources, name, out_dir, seed, strict, benchmarks, quiet):
    """Read dumps, run the recipe's filters, select by quotas, write a manifest and its report.

    Writes manifests/<name>/ (train.jsonl, dev.jsonl, test.jsonl in the chat "messages" layout, manifest.json,
    report/ with stats and every rejected candidate), atomically: an interrupted build leaves no half-written
    manifest. Same inputs and seed give byte-identical JSONL.

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
                           strict=strict, quiet=quiet, console=console, benchmarks=benchmarks)
    except LimaDataError as error:
        _fail(error)
        return
    console.print(funnel_table(result.manifest))
    console.print(counts_table(result.manifest))
    click.echo(str(result.path))


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--per-reason", default=2, show_default=True, help="Rejected candidates shown per drop reason.")
def report(manifest, per_reason):
    """Print the funnel of MANIFEST (a manifests/<name> folder) and a few rejects per drop reason."""
    from .report import print_report

    try:
        print_report(manifest, Console(), per_reason=per_reason)
    except LimaDataError as error:
        _fail(error)


if __name__ == "__main__":
    main()
