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
@click.option("--quiet", "-q", is_flag=True, help="No progress bars, warnings or tables.")
def build(recipe_name, inputs, sources, name, out_dir, seed, strict, benchmarks, keep, drop, quiet):
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
                           strict=strict, quiet=quiet, console=console, benchmarks=benchmarks, keep=keep,
                           drop=drop)
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


if __name__ == "__main__":
    main()
