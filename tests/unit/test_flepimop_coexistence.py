"""`flepimop` hands subcommands it does not own to flepiMoP's own CLI (found through its
'flepimop' console-script entry point), and explains when flepiMoP is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")

FAKE_FLEPIMOP = '''
import click

@click.group()
def cli():
    """flepiMoP's CLI (stand-in)."""

@cli.command("batch-calibrate")
@click.option("-c", "--config")
@click.argument("extra", nargs=-1)
def batch_calibrate(config, extra):
    click.echo(f"upstream batch-calibrate config={config} extra={list(extra)}")
    if config == "crash.yml":
        raise ValueError("boom inside flepiMoP")
    raise SystemExit(3 if config == "fail.yml" else 0)


@cli.command("simulate")
def simulate():
    """Forward simulate a model (stand-in)."""
'''


def _fake_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    dist = site / "gempyor_standin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gempyor-standin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[console_scripts]\nflepimop = gempyor_standin:cli\n")
    (site / "gempyor_standin.py").write_text(FAKE_FLEPIMOP)
    return site


def _run(args, pythonpath):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath))
    return subprocess.run([sys.executable, "-m", "flepimop_sync", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_unknown_subcommand_is_forwarded_to_flepimop(tmp_path):
    site = _fake_site(tmp_path)
    done = _run(["batch-calibrate", "-c", "model.yml", "--", "x"], [SRC, str(site)])
    assert done.returncode == 0, done.stderr
    assert "upstream batch-calibrate config=model.yml extra=['x']" in done.stdout


def test_forwarded_exit_code_is_kept(tmp_path):
    site = _fake_site(tmp_path)
    done = _run(["batch-calibrate", "-c", "fail.yml"], [SRC, str(site)])
    assert done.returncode == 3, (done.stdout, done.stderr)


def test_our_sync_is_not_forwarded(tmp_path):
    site = _fake_site(tmp_path)
    done = _run(["sync", "--help"], [SRC, str(site)])
    assert done.returncode == 0 and "CONFIG_FILES" in done.stdout


def test_without_flepimop_the_error_is_clear():
    done = _run(["batch-calibrate", "-c", "model.yml"], [SRC])
    assert done.returncode == 2
    assert "flepiMoP's own CLI is not installed" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_exception_inside_flepimop_keeps_its_own_output_and_status(tmp_path):
    site = _fake_site(tmp_path)
    done = _run(["batch-calibrate", "-c", "crash.yml"], [SRC, str(site)])
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" in done.stderr and "ValueError: boom inside flepiMoP" in done.stderr
    assert "internal error" not in done.stderr and "please report" not in done.stderr


def test_a_usage_error_inside_flepimop_is_its_own(tmp_path):
    site = _fake_site(tmp_path)
    done = _run(["batch-calibrate", "--no-such-option"], [SRC, str(site)])
    assert done.returncode == 2 and "No such option" in done.stderr, done.stderr


def test_help_lists_flepimops_commands_when_it_forwards(tmp_path):
    site = _fake_site(tmp_path)
    done = _run(["--help"], [SRC, str(site)])
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == {"batch-calibrate", "simulate", "sync"}
    assert "Forward simulate a model (stand-in). (flepiMoP)" in done.stdout


def test_help_without_flepimop_lists_ours():
    done = _run(["--help"], [SRC])
    assert done.returncode == 0
    assert [line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()] == ["sync"]
