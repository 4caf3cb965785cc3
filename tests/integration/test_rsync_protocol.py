"""The rsync protocol end to end through the CLI, locally and over the suite's sshd."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import dry_summary, write_config
from trees import tree, write_tree

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "src/flepimop_sync/data/sample_model_output"


def make_source(root: Path) -> Path:
    files = {
        "model_output/USA/r1/hnpi/global/final/000000001.r1.hnpi.parquet": b"hnpi",
        "model_output/USA/r1/snpi/global/final/000000001.r1.snpi.parquet": b"snpi",
        "model_output/USA/r1/seed/global/final/000000001.r1.seed.csv": b"seed",
        "model_output/USA/r1/llik/global/final/000000001.r1.llik.parquet": b"llik" * 100,
        "model_output/USA/r1/hosp/global/final/000000001.r1.hosp.parquet": b"hosp",
        "model_output/USA/r1/manifest.json": b"{}",
        "config.yml": b"name: x\n",
    }
    return write_tree(root, files)


@pytest.fixture
def work(tmp_path):
    src = make_source(tmp_path / "src")
    return tmp_path, src


RESUME = ["*hnpi*", "*snpi*", "*seed*", "- *"]


def test_local_push_with_filter_prints_summary(work, run_cli):
    tmp, src = work
    cfg = write_config(tmp / "c.yml", {"resume": {"type": "rsync", "source": f"{src}/model_output",
                                                  "target": f"{tmp}/dst", "filters": RESUME}})
    (tmp / "dst").mkdir()
    done = run_cli(["sync", cfg])
    assert done.returncode == 0, done.stderr
    got = tree(tmp / "dst")
    assert sorted(got) == [
        "model_output/USA/r1/hnpi/global/final/000000001.r1.hnpi.parquet",
        "model_output/USA/r1/seed/global/final/000000001.r1.seed.csv",
        "model_output/USA/r1/snpi/global/final/000000001.r1.snpi.parquet",
    ]
    assert "done: 3 file(s)" in done.stdout
    # no empty directories are created for unselected subtrees
    assert not (tmp / "dst/model_output/USA/r1/llik").exists()


def test_resync_transfers_nothing(work, run_cli):
    tmp, src = work
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{tmp}/dst/",
                                             "mkpath": True}})
    first = run_cli(["sync", "--json", cfg])
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["transferred"]["files"] == 7
    second = run_cli(["sync", "--json", cfg])
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["transferred"] == {"files": 0, "bytes": 0}


# source text (relative to tmp), target, expected landing prefix in target
TRAILING = [
    ("src/model_output", "dst", "dst/model_output/USA"),
    ("src/model_output/", "dst", "dst/USA"),
    ("src/model_output", "dst/", "dst/model_output/USA"),
    ("src/model_output/", "dst/", "dst/USA"),
]


@pytest.mark.parametrize("source,target,landing", TRAILING)
def test_trailing_slash_decides_where_files_land(work, run_cli, source, target, landing):
    tmp, _ = work
    (tmp / "dst").mkdir()
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": source, "target": target}})
    done = run_cli(["sync", cfg], cwd=tmp)
    assert done.returncode == 0, done.stderr
    assert (tmp / landing / "r1/manifest.json").is_file()


def test_dry_run_moves_nothing_and_shows_selection(work, run_cli):
    tmp, src = work
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{tmp}/dst/",
                                             "filters": ["- llik/"], "mkpath": True}})
    done = run_cli(["sync", "-n", "-v", cfg])
    assert done.returncode == 0, done.stderr
    assert not (tmp / "dst").exists()
    assert "selected 6 file(s)" in done.stdout and "would transfer 6 " in done.stdout
    assert "model_output/USA/r1/manifest.json" in done.stdout
    assert "llik" not in done.stdout.replace("- llik/", "")


def test_verbose_shows_exact_command(work, run_cli):
    tmp, src = work
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{tmp}/dst/",
                                             "filters": ["- llik/"], "mkpath": True}})
    done = run_cli(["sync", "-v", cfg])
    assert done.returncode == 0, done.stderr
    assert "+ rsync -a --prune-empty-dirs --mkpath" in done.stderr
    assert "'--filter=- llik/'" in done.stderr


def test_missing_target_parent_needs_mkpath(work, run_cli):
    tmp, src = work
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{tmp}/a/b/c/"}})
    done = run_cli(["sync", cfg])
    assert done.returncode == 1
    assert "rsync exit" in done.stderr and "--mkpath" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp / "a").exists()
    done = run_cli(["sync", "--mkpath", cfg])
    assert done.returncode == 0, done.stderr
    assert (tmp / "a/b/c/config.yml").is_file()


def test_override_and_append_options(work, run_cli):
    tmp, src = work
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{tmp}/dst/"}})
    done = run_cli(["sync", "--mkpath", "-s", "+ model_output/USA/r1", "-t", "+ runs/r1/", cfg])
    assert done.returncode == 0, done.stderr
    assert (tmp / "dst/runs/r1/manifest.json").is_file()
    assert not (tmp / "dst/runs/r1/model_output").exists()


def test_filter_override_prefix_suffix(work, run_cli):
    tmp, src = work
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{tmp}/dst/",
                                             "mkpath": True, "filters": ["+ *.csv", "- *"]}})
    done = run_cli(["sync", "-a", "+ manifest.json", "-e", "+ config.yml", cfg])
    assert done.returncode == 0, done.stderr
    # '- *' comes before the suffix rule, so config.yml stays excluded: first match wins
    assert sorted(tree(tmp / "dst")) == ["model_output/USA/r1/manifest.json",
                                         "model_output/USA/r1/seed/global/final/000000001.r1.seed.csv"]
    done = run_cli(["sync", "-f", "+ config.yml", cfg])
    assert done.returncode == 0
    assert "config.yml" in tree(tmp / "dst")
    done = run_cli(["sync", "--no-filter", "--json", cfg])
    assert done.returncode == 0
    assert sorted(tree(tmp / "dst")) == sorted(tree(src))


def test_push_and_pull_over_ssh(work, run_cli, sshd):
    tmp, src = work
    remote_dir = tmp / "remote"
    cfg = write_config(tmp / "c.yml", {"hpc": {"type": "rsync", "source": f"{src}/model_output",
                                               "target": f"{sshd.alias}:{remote_dir}/",
                                               "filters": ["- llik/"]}})
    done = run_cli(["sync", "--mkpath", cfg], env=sshd.env)
    assert done.returncode == 0, done.stderr
    assert sorted(tree(remote_dir)) == sorted(
        k for k in tree(src) if k.startswith("model_output/") and "/llik/" not in k)
    # pull it back with --reverse into an empty local copy of the source
    back = tmp / "back"
    cfg2 = write_config(tmp / "c2.yml", {"hpc": {"type": "rsync", "source": f"{back}/model_output",
                                                 "target": f"{sshd.alias}:{remote_dir}/"}})
    done = run_cli(["sync", "--reverse", "--mkpath", cfg2], env=sshd.env)
    assert done.returncode == 0, done.stderr
    assert tree(back / "model_output") == tree(remote_dir / "model_output")
    # re-sync over ssh moves nothing
    done = run_cli(["sync", "--json", cfg], env=sshd.env)
    assert json.loads(done.stdout)["transferred"]["files"] == 0


def test_rsh_protocol_key_and_dry_run_over_ssh(work, run_cli, sshd, base_env):
    tmp, src = work
    remote_dir = tmp / "remote2"
    remote_dir.mkdir()
    (remote_dir / "a.csv").write_text("1")
    (remote_dir / "sub dir").mkdir()
    (remote_dir / "sub dir/b.csv").write_text("22")
    (remote_dir / "sub dir/c.txt").write_text("333")
    env = {k: v for k, v in base_env.items() if k != "RSYNC_RSH"}
    cfg = write_config(tmp / "c.yml", {"pull": {"type": "rsync", "source": f"{sshd.alias}:{remote_dir}/",
                                                "target": f"{tmp}/local/", "rsh": sshd.rsh,
                                                "filters": ["+ *.csv", "- *"]}})
    done = run_cli(["sync", "-n", "-v", cfg], env=env)
    assert done.returncode == 0, done.stderr
    assert "selected 2 file(s)" in done.stdout and "would transfer 2 " in done.stdout
    assert not (tmp / "local").exists()
    done = run_cli(["sync", "--mkpath", cfg], env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(tree(tmp / "local")) == ["a.csv", "sub dir/b.csv"]


def test_unreachable_host_is_explained(work, run_cli, sshd):
    tmp, src = work
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": f"{src}/",
                                             "target": "nosuchalias:/tmp/x/"}})
    # the test ssh config's catch-all Host * points at a dead loopback port: no DNS, no traffic out
    done = run_cli(["sync", cfg], env=sshd.env)
    assert done.returncode == 1
    # rsync reports a failed ssh connection as 255 or 12, depending on timing
    assert ("rsync exit 255" in done.stderr or "rsync exit 12" in done.stderr) and "ssh" in done.stderr
    assert "Traceback" not in done.stderr


HOSTILE_NAMES = ["with space", "quote'single", 'quote"double', "dollar$(touch CANARY)", "back`touch CANARY`tick",
                 "semi;touch CANARY", "star*glob", "-dash-leading", "ünïcödé"]


def test_hostile_paths_are_literal(tmp_path, run_cli):
    for name in HOSTILE_NAMES:
        src = tmp_path / name / "src"
        (src / name).mkdir(parents=True)
        (src / name / f"{name}.csv").write_text(name)
        cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{tmp_path}/{name}/src/",
                                                      "target": f"{tmp_path}/{name}/dst/", "mkpath": True,
                                                      "filters": [f"+ {name}.csv"]}})
        done = run_cli(["sync", cfg], cwd=tmp_path)
        assert done.returncode == 0, (name, done.stderr)
        assert (tmp_path / name / "dst" / name / f"{name}.csv").read_text() == name
    assert not list(tmp_path.rglob("CANARY"))
    assert not (Path.cwd() / "CANARY").exists()


def test_embedded_default_runs(tmp_path, run_cli):
    repo = Path(__file__).resolve().parents[2]
    cfg = tmp_path / "example.yml"
    cfg.write_text((repo / "config/sync_example.yml").read_text().replace(
        "src/flepimop_sync/data", str(repo / "src/flepimop_sync/data")))
    done = run_cli(["sync", cfg], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = tree(tmp_path / "example_output")
    assert got and all(any(k in p for k in ("hnpi", "snpi", "seed")) for p in got)
    assert "done:" in done.stdout
    assert os.path.isdir(tmp_path / "example_output/model_output")


def test_progress_on_a_terminal(tmp_path, base_env):
    """Attached to a terminal, rsync's overall progress reaches the user (and the summary follows)."""
    import os
    import pty
    import subprocess
    import sys

    src = tmp_path / "big"
    src.mkdir()
    (src / "blob.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{tmp_path}/dst/",
                                                  "mkpath": True}})
    master, slave = pty.openpty()
    env = dict(base_env, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "flepimop_sync", "sync", str(cfg)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=120)
    os.close(master)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, terminal
    assert "100%" in terminal, terminal  # rsync --info=progress2
    assert "done: 1 file(s), 8.0 MiB" in out.decode()


def test_non_terminal_output_has_no_progress(work, run_cli):
    tmp, src = work
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{tmp}/dst/",
                                             "mkpath": True}})
    done = run_cli(["sync", "-v", cfg])
    assert done.returncode == 0
    assert "--info=progress2" not in done.stderr and "%" not in done.stdout


def test_remote_dry_run_lists_unicode_names_in_a_c_locale(tmp_path, run_cli, sshd):
    """rsync --list-only escapes each byte of a UTF-8 name in the C locale; the selection must not care."""
    remote_dir = tmp_path / "uni"
    (remote_dir / "ünï").mkdir(parents=True)
    (remote_dir / "ünï/fé.csv").write_text("x")
    (remote_dir / "ünï/other.txt").write_text("y")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{sshd.alias}:{remote_dir}/",
                                                  "target": f"{tmp_path}/local/", "filters": ["+ fé.csv"]}})
    env = {k: v for k, v in sshd.env.items() if not k.startswith("LC_") and k != "LANG"}
    env["LC_ALL"] = "C"
    done = run_cli(["sync", "-n", "-v", cfg], env=env)
    assert done.returncode == 0, done.stderr
    assert "selected 1 file(s)" in done.stdout and "would transfer 1 " in done.stdout, done.stdout
    assert "ünï/fé.csv" in done.stdout


# -- issue 12: paths as users write them, honest dry runs ----------------------------------------
@pytest.mark.parametrize("where", ["local", "ssh-push", "ssh-pull"])
def test_dry_run_after_a_complete_sync_says_zero(work, run_cli, sshd, where):
    tmp, src = work
    remote = tmp / "remote"
    ends = {"local": (f"{src}/", f"{tmp}/dst/"),
            "ssh-push": (f"{src}/", f"{sshd.alias}:{remote}/"),
            "ssh-pull": (f"{sshd.alias}:{src}/", f"{tmp}/dst/")}[where]
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": ends[0], "target": ends[1],
                                             "filters": ["- llik/"]}})
    first = run_cli(["sync", "-n", "--json", cfg], env=sshd.env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["would_transfer"]["files"] == 6
    assert not (tmp / "dst").exists() and not remote.exists()
    assert run_cli(["sync", cfg], env=sshd.env).returncode == 0
    again = run_cli(["sync", "-n", cfg], env=sshd.env)
    assert again.returncode == 0, again.stderr
    assert dry_summary(again).startswith("selected 6 file(s) (") and "would transfer 0 (0 B), delete 0" in \
        dry_summary(again)
    # one changed file: exactly that one, with its size from rsync itself
    (src / "config.yml").write_bytes(b"name: changed\n")
    changed = run_cli(["sync", "-n", "--json", cfg], env=sshd.env)
    assert json.loads(changed.stdout)["would_transfer"] == {"files": 1, "bytes": len(b"name: changed\n")}


def test_dry_run_report_and_commands_go_to_stdout(work, run_cli):
    tmp, src = work
    (tmp / "dst").mkdir()
    (tmp / "dst/stale.parquet").write_text("deleted by --delete")
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{tmp}/dst/",
                                             "filters": ["- llik/"]}})
    done = run_cli(["sync", "-n", "-v", "--delete", cfg])
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "commands a real run would execute:" in out
    # the real run's argv: the transfer, then the deletion of exactly the listed files (issue 15: rsync's
    # own --delete would remove directories no dry run lists)
    assert "rsync -a --prune-empty-dirs --stats '--filter=- llik/'" in out
    assert "--delete-missing-args" in out
    assert "would delete: stale.parquet" in out
    assert "would transfer 6 (" in dry_summary(done) and "delete 1" in dry_summary(done)
    assert "warning" not in done.stderr and (tmp / "dst/stale.parquet").exists()


@pytest.mark.parametrize("remote", [False, True], ids=["local", "ssh"])
def test_missing_target_last_level_is_created_like_plain_rsync(work, run_cli, sshd, remote):
    """Plain `rsync -a src dst` creates dst (one level); deeper missing levels need --mkpath,
    and the dry run fails exactly where the real run does."""
    tmp, src = work
    base = tmp / "out"
    base.mkdir()
    prefix = f"{sshd.alias}:" if remote else ""
    ok = write_config(tmp / "ok.yml", {"p": {"type": "rsync", "source": f"{src}/model_output",
                                             "target": f"{prefix}{base}/new"}})
    deep = write_config(tmp / "deep.yml", {"p": {"type": "rsync", "source": f"{src}/model_output",
                                                 "target": f"{prefix}{base}/a/b"}})
    for args in (["-n"], []):
        done = run_cli(["sync", *args, deep], env=sshd.env)
        assert done.returncode == 1, (args, done.stderr)
        assert "--mkpath" in done.stderr and "Traceback" not in done.stderr
        assert not (base / "a").exists()
    dry = run_cli(["sync", "-n", ok], env=sshd.env)
    assert dry.returncode == 0, dry.stderr
    assert not (base / "new").exists()
    done = run_cli(["sync", ok], env=sshd.env)
    assert done.returncode == 0, done.stderr
    assert sorted(tree(base)) == sorted(f"new/{k}" for k in tree(src) if k.startswith("model_output/"))


def test_dry_run_fails_where_the_real_run_fails_over_ssh(work, run_cli, sshd):
    tmp, src = work
    cases = [
        ("unreachable host", f"{src}/", "nosuchalias:/tmp/x/", ("rsync exit 255", "rsync exit 12")),
        ("missing remote source", f"{sshd.alias}:{tmp}/missing/", f"{tmp}/dst/", ("rsync exit 23",)),
        ("missing remote target parent", f"{src}/", f"{sshd.alias}:{tmp}/no/such/", ("--mkpath",)),
    ]
    for name, source, target, fragments in cases:
        cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": source, "target": target}})
        for args in (["-n"], []):
            done = run_cli(["sync", *args, cfg], env=sshd.env)
            assert done.returncode == 1, (name, args, done.stderr)
            assert any(f in done.stderr for f in fragments), (name, args, done.stderr)
    assert not (tmp / "dst").exists() and not (tmp / "no").exists()


def test_tilde_and_environment_variables_in_ends(work, run_cli, base_env):
    tmp, src = work
    home = tmp / "home"
    (home / "ghi").mkdir(parents=True)
    (home / "ghi/a.csv").write_text("a")
    cwd = tmp / "cwd"
    cwd.mkdir()
    env = dict(base_env, HOME=str(home), RUN="r1")
    cfg = write_config(tmp / "c.yml", {
        "p": {"type": "rsync", "source": "~/ghi", "target": "~/x", "mkpath": True},
        "v": {"type": "rsync", "source": "${HOME}/ghi/", "target": "$HOME/runs/$RUN", "mkpath": True},
        "unset": {"type": "rsync", "source": "~/ghi/", "target": "out/$NO_SUCH_VARIABLE"},
        "user": {"type": "rsync", "source": "~/ghi/", "target": "~no_such_user_flepimop/x"},
    })
    done = run_cli(["sync", "-p", "p", cfg], env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert tree(home / "x") == {"ghi/a.csv": b"a"}
    done = run_cli(["sync", "-p", "v", cfg], env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert tree(home / "runs/r1") == {"a.csv": b"a"}
    done = run_cli(["sync", "-p", "p", "--target", "~/y", "--mkpath", cfg], env=env, cwd=cwd)
    assert done.returncode == 0 and (home / "y/ghi/a.csv").is_file(), done.stderr
    for name, fragment in (("unset", "$NO_SUCH_VARIABLE"), ("user", "no_such_user_flepimop")):
        done = run_cli(["sync", "-p", name, cfg], env=env, cwd=cwd)
        assert done.returncode == 2, done.stderr
        assert fragment in done.stderr and f"protocol '{name}'" in done.stderr and "key 'target'" in done.stderr
    assert not list(cwd.iterdir()), "nothing may be created in the working directory (no '~' directory)"


NESTED = [
    ("target inside the source", "src/", "src/model_output/copy"),
    ("no slash: lands inside itself", "src", "."),
    ("source inside the destination", "src/model_output/", "src/"),
    ("through '..'", "src/", "src/model_output/../x"),
    ("through a symlink", "src/", "link/inner"),
]


@pytest.mark.parametrize("name,source,target", NESTED, ids=[n[0] for n in NESTED])
def test_target_and_source_nested_are_refused(work, run_cli, name, source, target):
    tmp, src = work
    (tmp / "link").symlink_to(src)
    before = tree(src)
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": source, "target": target, "mkpath": True}})
    for args in (["-n"], []):
        done = run_cli(["sync", *args, cfg], cwd=tmp)
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert "inside" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert tree(src) == before


def test_x_x_landing_is_pointed_out_once(work, run_cli):
    tmp, src = work
    (tmp / "dst/model_output").mkdir(parents=True)
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": "src/model_output",
                                             "target": "dst/model_output"}})
    for args in (["-n"], []):
        done = run_cli(["sync", *args, cfg], cwd=tmp)
        assert done.returncode == 0, done.stderr
        warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1, done.stderr
        assert "model_output/model_output" in warnings[0] and "'src/model_output/'" in warnings[0]
    assert (tmp / "dst/model_output/model_output/USA/r1/manifest.json").is_file()
    fixed = write_config(tmp / "f.yml", {"p": {"type": "rsync", "source": "src/model_output/",
                                               "target": "dst/model_output"}})
    done = run_cli(["sync", fixed], cwd=tmp)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr


REMOTE_GLOB_DIRS = ["a[1]", "a*", "a?", "a]b", "a b[c]"]


@pytest.mark.parametrize("name", REMOTE_GLOB_DIRS)
def test_remote_source_with_glob_characters_is_literal(tmp_path, run_cli, sshd, name):
    """The remote rsync glob-expands the paths it sends: 'hpc:runs[1]/' read 'runs1/' before."""
    remote = tmp_path / "remote"
    for d, files in ((name, {"keep[1].csv": "lit", "drop.txt": "no"}), ("a1", {"decoy.csv": "decoy"}),
                     ("ab", {"decoy2.csv": "decoy"}), ("a b1", {"decoy3.csv": "decoy"})):
        (remote / d).mkdir(parents=True, exist_ok=True)
        for f, text in files.items():
            (remote / d / f).write_text(text)
    local = tmp_path / "local"
    local.mkdir()
    (local / "gone.csv").write_text("selected, missing at the source: deleted")
    (local / "mine.txt").write_text("not selected: kept")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{sshd.alias}:{remote}/{name}/",
                                                  "target": f"{local}/", "filters": ["+ *.csv", "- *"]}})
    dry = run_cli(["sync", "-n", "--delete", "--json", cfg], env=sshd.env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["selection"] == ["keep[1].csv"]
    assert json.loads(dry.stdout)["would_delete"] == ["gone.csv"]
    done = run_cli(["sync", "--delete", cfg], env=sshd.env)
    assert done.returncode == 0, done.stderr
    assert tree(local) == {"keep[1].csv": b"lit", "mine.txt": b"not selected: kept"}


# Issue 12 point 5: the dry run warns (stderr) about an include rule that matches nothing at the
# source -- the run index of `-f '+ $FLEPI_RUN_INDEX'` mistyped -- and stays quiet otherwise.
# (option -f values, FLEPI_RUN_INDEX, the rule texts the warnings name)
UNMATCHED_WARNINGS = [
    (["+ $FLEPI_RUN_INDEX"], "r1", []),
    (["+ $FLEPI_RUN_INDEX"], "r2", ["+ r2"]),
    (["+ *.csv", "s no-such-text"], "x", ["s no-such-text"]),
    (["- llik/", "- no-such-dir/"], "x", []),
]


@pytest.mark.parametrize("rules,index,named", UNMATCHED_WARNINGS)
def test_dry_run_warns_about_includes_that_match_nothing(work, run_cli, base_env, rules, index, named):
    tmp, src = work
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{tmp}/dst/"}})
    args = ["sync", "-n", *[a for rule in rules for a in ("-f", rule)], cfg]
    done = run_cli(args, env={**base_env, "FLEPI_RUN_INDEX": index})
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "matches no file or directory" in line]
    assert [w.split("'")[1] for w in warned] == named
    assert "matches no file" not in done.stdout and not (tmp / "dst").exists()



# 'hpc:' is the remote home, as rsync reads it (never 'hpc:/', the remote root).  The remote login
# directory rsync resolves an empty path against is made a fresh directory of this test (the rsh
# changes into it before the remote rsync starts): the real home, with its busy files, is never read.
@pytest.mark.parametrize("direction", ["push", "pull", "reverse"])
def test_an_empty_remote_path_is_the_remote_home(tmp_path, run_cli, sshd, direction):
    import shutil
    import uuid

    name = f"flepimop-test-home-{uuid.uuid4().hex[:12]}"
    home, local = tmp_path / "home", tmp_path / "local"
    home.mkdir()
    local.mkdir()
    rsh = tmp_path / "rsh.sh"
    # a remote path that is absolute fails here, before rsync could read or write the remote root
    rsh.write_text(f'#!/bin/sh\nhost="$1"; shift\nfor last; do :; done\n'
                   f'case "$last" in /*) echo "remote path $last is absolute" >&2; exit 99;; esac\n'
                   f'exec {sshd.rsh} "$host" "cd {home} &&" "$@"\n')
    rsh.chmod(0o755)
    content = b"pushed" if direction == "push" else b"pulled"
    write_tree(local if direction == "push" else home, {f"{name}/f.txt": content})
    ends = ({"source": f"{sshd.alias}:", "target": f"{local}/"} if direction == "pull"
            else {"source": f"{local}/", "target": f"{sshd.alias}:"})
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", **ends, "rsh": str(rsh)}})
    try:
        done = run_cli(["sync", *(["--reverse"] if direction == "reverse" else []), cfg], env=sshd.env)
        assert done.returncode == 0, done.stderr
        assert tree(home) == tree(local) == {f"{name}/f.txt": content}
    finally:
        shutil.rmtree("/" + name, ignore_errors=True)


# -n -v lists rsync's deletion command exactly when the real run executes it: deletion in effect
# (--delete, or the protocol's delete on its configured pairing: plan.deletion), a directory
# source, and something to delete (the real run runs no deletion for an empty list).
# the protocol's delete, arguments, the target's files, listed (and run)?
DELETION_COMMAND = [
    (False, [], {"stale.csv": b"s"}, False),
    (False, ["--delete"], {"stale.csv": b"s"}, True),
    (True, [], {"stale.csv": b"s"}, True),
    (True, ["--reverse"], {"stale.csv": b"s"}, False),  # 'true': the configured direction only
    (False, ["--delete"], {}, False),  # nothing to delete
    (False, ["--delete", "-s", "{src}/config.yml"], {"stale.csv": b"s"}, False),  # a single file
    (True, ["-t", "{tmp}/other/"], {}, False),  # a replaced target: the protocol's delete is not applied
    (True, ["-t", "{tmp}/other/", "--delete"], {}, True),
    (True, ["-t", "+ sub"], {"sub/stale.csv": b"s"}, False),  # an append to one end moves the pairing
    (True, ["-s", "+ model_output/", "-t", "+ model_output/"], {"model_output/stale.csv": b"s"}, True),  # a part
]


@pytest.mark.parametrize("delete, args, files, listed", DELETION_COMMAND,
                         ids=[f"delete={d} {' '.join(a)} {sorted(f)}" for d, a, f, _ in DELETION_COMMAND])
def test_dry_run_lists_the_deletion_command_only_when_the_real_run_runs_it(work, run_cli, delete, args, files,
                                                                          listed):
    tmp, src = work
    write_tree(tmp / "dst", files)
    (tmp / "dst").mkdir(exist_ok=True)
    write_tree(tmp / "other", {"stale.csv": b"s"})
    cfg = write_config(tmp / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{tmp}/dst/",
                                             "delete": delete}})
    argv = [a.format(src=src, tmp=tmp) for a in args]
    dry = run_cli(["sync", "-n", "-v", *argv, cfg])
    assert dry.returncode == 0, dry.stderr
    commands = dry.stdout.split("commands a real run would execute:\n", 1)[1]
    assert ("--delete-missing-args" in commands) is listed, dry.stdout
    real = run_cli(["sync", "--json", *argv, cfg])
    assert real.returncode == 0, real.stderr
    result = json.loads(real.stdout)
    assert any("--delete-missing-args" in step for step in result["commands"]) is listed, result["commands"]
    assert bool(result.get("deleted")) is listed
