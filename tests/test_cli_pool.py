"""`mds pool ...` through the real Typer app (CliRunner) and, for exit paths, the console entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from mds.cli import app
from tests.fixtures.bad_videos import write_bad_files
from tests.fixtures.clips import write_clip

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def mds(url: str, *args: str, input: str | None = None):
    return runner.invoke(app, ["--db", url, "pool", *args], input=input)


def run_main(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from mds.cli import main; sys.argv = ['mds', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=120, check=False)


def test_add_ls_show_stats_rm(db_url: str, tmp_path: Path) -> None:
    for i in range(3):
        write_clip(tmp_path / "v" / f"clip{i}.mp4", seed=i)
    r = mds(db_url, "add", str(tmp_path / "v"), "--split", "source", "--meta", "tags=[\"a\"]", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["added"], out["failed"], out["ingested"]) == (3, 0, 3)

    r = mds(db_url, "add", str(tmp_path / "v" / "*.mp4"))
    assert r.exit_code == 0 and "unchanged 3" in r.stdout

    r = mds(db_url, "ls", "--json")
    rows = json.loads(r.stdout)
    assert [x["name"] for x in rows] == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    assert rows[0]["split"] == "source" and rows[0]["meta"] == {"tags": ["a"]}
    r = mds(db_url, "ls")
    assert r.exit_code == 0 and "clip1.mp4" in r.stdout and "h264" in r.stdout and "videos 1-3 of 3" in r.stdout

    r = mds(db_url, "show", "clip1.mp4", "--json")
    assert json.loads(r.stdout)["codec"] == "h264"
    r = mds(db_url, "show", str(rows[0]["id"]))
    assert r.exit_code == 0 and "clip0.mp4" in r.stdout and "meta.tags" in r.stdout

    r = mds(db_url, "stats", "--json")
    st = json.loads(r.stdout)
    assert st["videos"] == 3 and st["by_split"] == {"source": 3}
    r = mds(db_url, "stats")
    assert r.exit_code == 0 and "3 videos" in r.stdout

    r = mds(db_url, "rm", "clip0.mp4", "--json")
    assert json.loads(r.stdout)["removed"] == [rows[0]["id"]]
    r = mds(db_url, "rm", "--split", "source", input="n\n")
    assert r.exit_code != 0
    assert len(json.loads(mds(db_url, "ls", "--json").stdout)) == 2
    r = mds(db_url, "rm", "--split", "source", "--yes")
    assert r.exit_code == 0 and "removed 2 videos" in r.stdout
    assert json.loads(mds(db_url, "ls", "--json").stdout) == []


def test_import_manifest_cli(db_url: str, tmp_path: Path) -> None:
    write_clip(tmp_path / "a.mp4")
    m = tmp_path / "m.jsonl"
    m.write_text(
        json.dumps({"path": "a.mp4", "mos": 3.5, "split": "test", "title": "A", "pred_base": 2.5}) + "\n"
        + json.dumps({"path": "b.mp4", "mos": "bad"}) + "\n"
        + "{broken\n"
    )  # fmt: skip
    r = mds(db_url, "import", str(m), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["added"] == 1 and out["failed"] == 2
    assert {e["error_type"] for e in out["errors"]} == {"bad_value", "bad_json"}
    r = mds(db_url, "import", str(m))
    assert r.exit_code == 0 and "unchanged 1" in r.stdout and "bad_json" in r.stderr
    r = mds(db_url, "import", str(m), "--strict")
    assert r.exit_code == 1 and "--strict" in r.stderr
    r = mds(db_url, "errors", "--json")
    assert len(json.loads(r.stdout)) == 6
    v = json.loads(mds(db_url, "show", "a.mp4", "--json").stdout)
    assert v["labels"][0]["mos"] == 3.5 and v["predictions"][0]["evaluator"] == "import:base"

    meta_only = tmp_path / "meta.csv"
    meta_only.write_text("uri,category\n/far/away.mp4,Sports\n")
    r = mds(db_url, "import", str(meta_only), "--no-probe", "--dataset", "remote", "--json")
    assert json.loads(r.stdout)["added"] == 1
    assert json.loads(mds(db_url, "show", "/far/away.mp4", "--json").stdout)["dataset"] == "remote"


def test_exit_code_when_nothing_ingested(db_url: str, tmp_path: Path) -> None:
    bad = write_bad_files(tmp_path)
    r = mds(db_url, "add", str(bad["unreadable"]), str(bad["no_video_stream"]), str(tmp_path / "absent.mp4"))
    assert r.exit_code == 1
    assert "nothing could be ingested" in r.stderr and "no_video_stream" in r.stderr and "missing_path" in r.stderr
    assert "failed 3" in r.stdout


def test_one_line_errors_from_the_console_script(db_url: str, tmp_path: Path) -> None:
    p = run_main("--db", db_url, "pool", "import", str(tmp_path / "absent.csv"))
    assert p.returncode == 1 and p.stderr.strip().count("\n") == 0
    assert "manifest not found" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "m.csv").write_text("title\nx\n")
    p = run_main("--db", db_url, "pool", "import", str(tmp_path / "m.csv"))
    assert p.returncode == 1 and "no path column" in p.stderr and "Traceback" not in p.stderr
    p = run_main("--db", db_url, "pool", "show", "nope")
    assert p.returncode == 1 and "no video" in p.stderr
    bad = write_bad_files(tmp_path / "bad")
    p = run_main("--db", db_url, "pool", "add", "-q", str(bad["empty_file"]))
    assert p.returncode == 1 and "empty_file" in p.stderr


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mds.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0 and 'pool' in r.output, r.output\n"
        "r = CliRunner().invoke(app, ['pool', '--help'])\n"
        "assert r.exit_code == 0 and 'import' in r.output, r.output\n"
        "import json; print(json.dumps(sorted(sys.modules)))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    loaded = set(json.loads(p.stdout.strip().splitlines()[-1]))
    assert "mds.cli.pool" in loaded
    assert not loaded & {"torch", "transformers", "open_clip", "faiss", "av", "peft"}


def test_global_options_may_follow_the_subcommand() -> None:
    from mds.cli import hoist_global_options

    argv = ["pool", "ls", "--db", "sqlite:///x.db", "--json", "--debug", "--project=p", "--", "--db"]
    assert hoist_global_options(argv) == [
        "--db", "sqlite:///x.db", "--debug", "--project=p", "pool", "ls", "--json", "--", "--db",
    ]
