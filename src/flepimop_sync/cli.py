"""Command line: parsing and printing only (option rules such as --no-filter with -f/-a/-e are
checked by ``SyncOptions``; -p/-s/-t given twice are refused here, ``_once``), and ``flepimop``'s other commands handed to flepiMoP's own CLI
(``FlepimopGroup``: our ``flepimop`` script stands in for gempyor's, so ``flepimop
batch-calibrate ...`` still runs gempyor's command, its output and exit status its own).

Exit codes (numbered once, in ``errors``; ``run_command`` is the one place an outcome becomes
one):

    0    success (or a dry run)
    1    a step failed at run time, or a safety check halted (nothing was changed)
    2    usage or configuration error (nothing was run)
    130  interrupted (SIGINT), 143 terminated (SIGTERM), 129 hung up (SIGHUP: the terminal
         or ssh session closed); children were stopped, a rerun resumes

Every failure is one line on stderr (``error: ...``); only a bug says "internal error".

This module must stay light: it never imports snakemake or boto3, and defers the
config/plan machinery until a command actually runs.
"""

from __future__ import annotations

import signal
import sys
from typing import Sequence

import click

# (light: errors and mechanism import nothing of the package at import time)
from .errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, show_value, signal_exit
from .mechanism import Engine

SYNC_EPILOG = """\b
Examples:
  flepimop sync config.yml                      # the first protocol in config.yml
  flepimop sync -p resume -n -v config.yml      # dry run: show the selection and commands
  flepimop sync -p s3push -t '+ 20240501_120000' config.yml   # append to the target
  flepimop sync -p hpc --reverse config.yml     # bring files back the other way
  flepimop sync -f '+ *.csv' -f '- *' config.yml               # override the filters
  flepimop sync -a '- llik/' config.yml         # prepend a rule to the config's filters
  flepimop sync --json -p resume base.yml site.yml             # merge configs; JSON result

\b
Filters (first match wins; see the README):
  '- P' exclude, '+ P' or 'P' include, 's X' include paths containing X.
  '*' stops at '/', '**' crosses it, a leading '/' anchors, a trailing '/' means a directory.
  A list with no '-' rule (or with an 's' rule) ends with an implicit '- **'.
  A -s that replaces the source takes only what -a/-e include (the protocol's excludes still apply).

\b
Exit codes: 0 ok, 1 a step failed or a safety check halted, 2 usage/config error,
130/143/129 interrupted (SIGINT/SIGTERM/SIGHUP).
"""


def _options(f):
    decorators = [
        click.argument("config_files", nargs=-1, required=True, type=click.Path(dir_okay=False)),
        # (multiple=True only so that a repeat is seen and refused, by _once: click keeps the last one silently)
        click.option("-p", "--protocol", multiple=True, metavar="NAME",
                     help="Protocol to run (default: the first in the config)."),
        click.option("-s", "--source", multiple=True, metavar="PATH",
                     help="Replace the source, or append to it with '+ sub/dir'."),
        click.option("-t", "--target", multiple=True, metavar="PATH",
                     help="Replace the target, or append to it with '+ sub/dir'."),
        click.option("-f", "--filter", "filters", multiple=True, metavar="RULE",
                     help="Filter rule replacing the config's filters (repeatable)."),
        click.option("-a", "--fprefix", multiple=True, metavar="RULE", help="Rule put before the filters (repeatable)."),
        click.option("-e", "--fsuffix", multiple=True, metavar="RULE", help="Rule put after the filters (repeatable)."),
        click.option("--no-filter", is_flag=True, help="Ignore the config's filters: sync everything."),
        click.option("--reverse", is_flag=True, help="Swap the direction (files go back where they came from)."),
        click.option("--mkpath", is_flag=True, help="Create the target's missing parent directories."),
        click.option("--delete", is_flag=True,
                     help="Delete target files missing from the source (only files the filters select)."),
        click.option("--engine", type=click.Choice([e.value for e in Engine]), default=None,
                     help="s3sync: the tool that moves the files (default: the protocol's 'engine', else aws; "
                          "rclone is the fast engine, pip install 'flepimop-sync[fast]')."),
        click.option("-n", "--dry-run", is_flag=True, help="Contact both ends; show what would be transferred and deleted; change nothing."),
        click.option("-v", "--verbose", "verbosity", count=True,
                     help="-v shows the exact commands, -vv per-file detail, -vvv debug."),
        click.option("--json", "json_output", is_flag=True, help="Print the plan and result as JSON on stdout."),
        click.option("--plan", "print_plan", is_flag=True,
                     help="Print the resolved plan (ends, filters, argv) as JSON and run nothing."),
        click.option("--snakemake-rules", is_flag=True,
                     help="Print Snakemake rules for every protocol in the config and run nothing."),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


#: The options that name one thing (a protocol, an end): given twice, one would be dropped silently
#: (a second, mistyped -t would send the files somewhere else), so a repeat is a usage error.
SINGLE_OPTIONS = {"protocol": "-p/--protocol", "source": "-s/--source", "target": "-t/--target"}


def _once(values: tuple[str, ...], name: str) -> str | None:
    """The value of an option of ``SINGLE_OPTIONS`` (None when not given); a repeat is a usage error
    (exit 2, before anything is read or run)."""
    if len(values) > 1:
        shown = ", ".join(show_value(v) for v in values)
        raise click.UsageError(f"{SINGLE_OPTIONS[name]} given {len(values)} times ({shown}); give it once")
    return values[0] if values else None


@click.command(name="sync", epilog=SYNC_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@_options
def sync_command(config_files: tuple[str, ...], protocol: tuple[str, ...], source: tuple[str, ...],
                 target: tuple[str, ...],
                 filters: tuple[str, ...], fprefix: tuple[str, ...], fsuffix: tuple[str, ...], no_filter: bool,
                 reverse: bool, mkpath: bool, delete: bool, engine: str | None, dry_run: bool, verbosity: int, json_output: bool,
                 print_plan: bool, snakemake_rules: bool) -> None:
    """Synchronize files with a protocol from the `sync:` section of CONFIG_FILES.

    Several config files merge in order (a later protocol of the same name wins).
    Protocol types: rsync (local or host:path over ssh), s3sync (aws s3 sync; one
    end is s3://...) and git (safety checks, then pull from or push to the
    authoritative remote).
    """
    from .options import SyncOptions
    from .report import Reporter, dump_json

    if snakemake_rules:
        _refuse_with_snakemake_rules(click.get_current_context())
    options = SyncOptions(
        protocol=_once(protocol, "protocol"), source=_once(source, "source"), target=_once(target, "target"), filters=filters, fprefix=fprefix, fsuffix=fsuffix,
        no_filter=no_filter, reverse=reverse, mkpath=mkpath, delete=delete, dry_run=dry_run, verbosity=verbosity,
        engine=engine,
    )
    reporter = Reporter(verbosity=verbosity, json_mode=json_output or print_plan)
    if snakemake_rules:
        from .smk import render_rules

        click.echo(render_rules(config_files), nl=False)
        return
    if print_plan:
        from .api import plan_as_json

        click.echo(dump_json(plan_as_json(config_files, options)))
        return
    from .execute import sync

    result = sync(config_files, options, reporter)
    if json_output:
        click.echo(dump_json(result))


def _refuse_with_snakemake_rules(ctx: click.Context) -> None:
    """--snakemake-rules renders a rule for every protocol and runs nothing: an option given with
    it (a protocol, an end, a filter, a mode, an output format) could only be ignored, so it is
    refused, naming each one (a rule's options are keyword arguments of rule_params)."""
    from click.core import ParameterSource

    from .errors import UsageError

    given = [param for param in ctx.command.params
             if isinstance(param, click.Option) and param.name != "snakemake_rules"
             and ctx.get_parameter_source(param.name) not in (None, ParameterSource.DEFAULT)]
    if given:
        names = ", ".join("/".join(param.opts) for param in given)
        raise UsageError(f"--snakemake-rules takes only config files, not {names}: it prints the rules of every "
                         "protocol and runs nothing (give a rule its options as rule_params(...) keywords in "
                         "the Snakefile)")


def _say(line: str) -> None:
    """Print one line to stderr; a closed terminal (SIGHUP, EIO) or pipe must not turn an
    orderly exit into a traceback."""
    try:
        click.echo(line, err=True)
    except (OSError, ValueError):
        pass


def run_command(command: click.Command, args: Sequence[str] | None = None, prog_name: str | None = None) -> int:
    """Invoke a click command and map every outcome to an exit code (the one place)."""
    from .errors import SyncError, describe_os_error  # light module
    from .report import redact

    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=False)
        return EXIT_OK
    except SyncError as error:
        _say(f"error: {redact(str(error))}")
        return error.exit_code
    except click.exceptions.Abort:
        _say("error: aborted")
        return signal_exit(signal.SIGINT)
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.UsageError as error:  # one line, like every other error (click prints four)
        ctx = error.ctx
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = " ".join(error.format_message().split())
        _say(f"error: {redact(message)}{where}")
        return EXIT_USAGE
    except click.ClickException as error:
        _say(f"error: {redact(' '.join(error.format_message().split()))}")
        return error.exit_code
    except KeyboardInterrupt:
        _say("error: interrupted")
        return signal_exit(signal.SIGINT)
    except BrokenPipeError:
        return EXIT_FAILED
    except OSError as error:  # the environment (unreadable file, full disk...), not a bug
        _say(f"error: {redact(describe_os_error(error))}")
        return EXIT_FAILED
    except RecursionError:
        _say("error: input nested too deeply")
        return EXIT_USAGE
    except Exception as error:  # a bug, not a user error: still one line unless -vvv
        if any(a in ("-vvv", "-vvvv") for a in (args if args is not None else sys.argv[1:])):
            raise
        _say(f"error: internal error: {type(error).__name__}: {redact(' '.join(str(error).split()))} "
             "(rerun with -vvv for a traceback, and please report it)")
        return EXIT_FAILED


class FlepimopGroup(click.Group):
    """`flepimop`: our subcommands, and everything else handed to flepiMoP's own CLI."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        return _delegate_command(name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Ours, plus flepiMoP's when it is installed (so `flepimop --help` lists what it forwards)."""
        ours = super().list_commands(ctx)
        upstream = _flepimop_upstream()
        theirs = upstream.list_commands(ctx) if isinstance(upstream, click.Group) else []
        return sorted(set(ours) | set(theirs))


def _delegate_command(name: str) -> click.Command:
    """A command that forwards `flepimop NAME ...` to flepiMoP's CLI, or explains it is missing.

    flepiMoP's command runs as if its own `flepimop` script had been called (click's standalone
    mode): its output, its error messages, its tracebacks and its exit status are its own; no
    exception from flepiMoP's code is ever reported as an internal error of flepimop-sync.
    """
    upstream = _flepimop_upstream() if name else None
    theirs = upstream.get_command(click.Context(upstream), name) if isinstance(upstream, click.Group) else None
    short_help = f"{theirs.get_short_help_str()} (flepiMoP)".strip() if theirs is not None else None

    @click.command(name=name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                                "help_option_names": []}, short_help=short_help)
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def forward(args: tuple[str, ...]) -> None:
        from .errors import UsageError

        target = _flepimop_upstream()
        if target is None:
            raise UsageError(
                f"'flepimop {name}' is not a flepimop-sync command and flepiMoP's own CLI is not installed "
                "(install flepiMoP's gempyor package to get it; flepimop-sync provides: sync)"
            )
        try:
            target.main(args=[name, *args], prog_name="flepimop", standalone_mode=True)
            code = 0
        except SystemExit as exit_:  # standalone mode always ends here
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if exit_.code is not None and not isinstance(exit_.code, int):
                click.echo(exit_.code, err=True)
        except BaseException:  # what Python would print for flepiMoP's own script, and its status
            import traceback

            traceback.print_exc()
            code = 1
        if code:  # SystemExit, not click's Exit: our group runs non-standalone and would swallow it
            raise SystemExit(code)

    return forward


def _flepimop_upstream() -> click.Command | None:
    """flepiMoP's click group, found through its 'flepimop' console-script entry point."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="console_scripts", name="flepimop"):
        if ep.value.startswith("flepimop_sync."):
            continue
        try:
            obj = ep.load()
        except Exception:  # a broken install is the same as none for us
            continue
        if isinstance(obj, click.Command):
            return obj
    return None


@click.group(cls=FlepimopGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flepimop-sync", prog_name="flepimop-sync")
def flepimop() -> None:
    """flepiMoP commands. `sync` is provided by flepimop-sync; other commands
    (such as batch-calibrate) are handed to flepiMoP's own CLI when it is installed."""


flepimop.add_command(sync_command)


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of `flepimop` (and `python -m flepimop_sync`)."""
    sys.exit(run_command(flepimop, args, prog_name="flepimop"))


def sync_main(args: Sequence[str] | None = None) -> None:
    """Entry point of `flepimop-sync` (the sync command on its own)."""
    sys.exit(run_command(sync_command, args, prog_name="flepimop-sync"))
