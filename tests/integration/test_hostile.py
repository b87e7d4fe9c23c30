"""Hostile input on the real fleet: messages, hosts files, --hosts paths and a .gitmodules crafted to run commands,
and a host that floods its output. A payload that ran would leave a file named pwned*; none ever may.

Payloads write to absolute paths under the test's folder, and (where a relative path is the point) to the current
folder of whoever runs them: the controller runs in a folder of the test's own, a host's commands run in its deploy
root or its home, so every place a payload could have landed is searched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, Deployment, Run
from faults import checkout_hook, live_tree, store, write_script
from sample_repo import UNREACHABLE_UPSTREAM, commit_change, git, make_upstream

pytestmark = pytest.mark.integration

MARK = "pwned"


def _sartoris(deployment: Deployment, cwd: Path, *args: str) -> Run:
    """The real command line with --config, run from `cwd` (so a relative payload on this side lands there)."""
    cwd.mkdir(parents=True, exist_ok=True)
    return deployment.sartoris(*args, cwd=cwd, with_config=True)


def _marks(deployment: Deployment, tmp_path: Path, hosts: list[str]) -> list[Path]:
    """Every pwned* file where a payload could have run: the test's folder, the hosts' roots, the hosts' home."""
    places = [tmp_path, deployment.fleet.directory / "home", *(deployment.fleet.host_root(h) for h in hosts)]
    return [path for place in places for path in place.rglob(f"{MARK}*") if not _is_payload_text(path)]


def _is_payload_text(path: Path) -> bool:
    """A path that carries a payload in its own name (a hostile submodule path) is not a mark left by one."""
    return "touch" in str(path)


# --- messages ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("$(touch {mark})", id="command-substitution"),
        pytest.param('`touch {mark}` it\'s "quoted"; touch {mark} && touch {mark}', id="backticks-quotes"),
        pytest.param("first line\n$(touch {mark})\n'single' \"double\" \\ | & < > `touch {mark}`", id="newlines"),
        pytest.param("--upload-pack=touch {mark}", id="option-like"),
    ],
)
def test_a_hostile_message_is_kept_as_text(deployment: Deployment, tmp_path: Path, template: str) -> None:
    """-m with shell syntax: the sync works, the tag's message on the deploy host and on the hosts is exactly the
    text, the history keeps it, and nothing ran."""
    message = template.format(mark=tmp_path / MARK)
    hosts = deployment.fleet.hosts[0:2]
    deployment.group("pair", hosts)
    run = _sartoris(deployment, tmp_path / "cwd", "sync", "--slot", str(deployment.slot), "--hosts", "pair", "-m",
                    message, "--json")  # fmt: skip
    assert run.code == 0, run.stderr
    tag = run.json()["tag"]
    assert git(deployment.checkout, "for-each-ref", "--format=%(contents)", f"refs/tags/{tag}") == message
    on_host = subprocess.run(
        ["git", "--git-dir", str(store(deployment, hosts[0])), "for-each-ref", "--format=%(contents)",
         f"refs/tags/{tag}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert on_host.rstrip("\n") == message
    history = _sartoris(deployment, tmp_path / "cwd", "log", "--slot", str(deployment.slot), "--json")
    assert history.json()["entries"][0]["message"] == message
    assert _marks(deployment, tmp_path, hosts) == []


# --- a hostile .gitmodules -----------------------------------------------------------------------------------


def _add_submodule(deployment: Deployment, tmp_path: Path, name: str, path: str, url: str) -> str:
    """Commit a submodule with this .gitmodules name, path and URL (checked out, so it can be published)."""
    upstream = make_upstream(tmp_path / "evil-upstream", 3, "Evil")
    git(deployment.checkout, "clone", "--quiet", str(upstream), path)
    commit = git(deployment.checkout / path, "rev-parse", "HEAD")
    git(deployment.checkout, "config", "--file", ".gitmodules", "--", f"submodule.{name}.path", path)
    git(deployment.checkout, "config", "--file", ".gitmodules", "--", f"submodule.{name}.url", url)
    git(deployment.checkout, "update-index", "--add", "--cacheinfo", f"160000,{commit},{path}")
    git(deployment.checkout, "add", ".gitmodules")
    git(deployment.checkout, "commit", "--quiet", "--message", "add a hostile submodule")
    return commit


@pytest.mark.parametrize(
    ("name", "path", "url"),
    [
        pytest.param("x$(touch {mark})", "extensions/Evil", f"{UNREACHABLE_UPSTREAM}/Evil.git", id="name"),
        pytest.param(
            "Evil",
            f"extensions/x;touch {MARK}-path;$(touch {MARK}-subst)`touch {MARK}-tick`",
            f"{UNREACHABLE_UPSTREAM}/Evil.git",
            id="path",
        ),
        pytest.param("Evil", "extensions/Evil", "ext::sh -c touch% {mark}", id="url-ext"),
        pytest.param("Evil", "extensions/Evil", "--upload-pack=touch {mark}", id="url-option"),
        pytest.param("--upload-pack=touch {mark}", "extensions/Evil", "-u touch {mark}", id="name-and-url-options"),
    ],
)
def test_a_hostile_gitmodules_runs_nothing(
    deployment: Deployment, tmp_path: Path, name: str, path: str, url: str
) -> None:
    """A .gitmodules whose submodule name, path or URL is shell or git-option syntax: whatever the outcome (a clean
    failure is fine), nothing ran on the deploy host or any host, and no traceback."""
    mark = tmp_path / MARK
    hosts = deployment.fleet.hosts[2:4]
    deployment.group("pair", hosts)
    commit = _add_submodule(deployment, tmp_path, name.format(mark=mark), path, url.format(mark=mark))
    run = _sartoris(deployment, tmp_path / "cwd", "sync", "--slot", str(deployment.slot), "--hosts", "pair", "--json")
    assert "Traceback" not in run.stderr
    assert run.code in (0, 4, 5), run.stderr
    if run.code == 4:
        assert run.stderr.strip().count("\n") == 0, run.stderr
    else:
        report = run.json()
        for host in report["hosts"]:
            assert host["ok"] or (host["error"] and "\n" not in host["error"]), host
        if run.code == 0:  # deployed: the hostile submodule is there, at its commit, from our store
            evil = live_tree(deployment, hosts[0]) / path
            assert git(evil, "rev-parse", "HEAD") == commit
    assert _marks(deployment, tmp_path, hosts) == []


# --- hosts files and --hosts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{host} ; touch {mark}", id="semicolon"),
        pytest.param("-oProxyCommand=touch {mark}", id="proxycommand"),
        pytest.param("-oProxyCommand={script}", id="proxycommand-no-space"),
        pytest.param("$(touch {mark})", id="command-substitution"),
        pytest.param("`touch {mark}`", id="backticks"),
        pytest.param("{host}:22$(touch {mark})", id="port-substitution"),
        pytest.param("root;touch${{IFS}}{mark}@{host}", id="user-injection"),
        pytest.param("{host}|touch {mark}", id="pipe"),
    ],
)
def test_a_hostile_hosts_line_is_refused_before_anything_runs(
    deployment: Deployment, tmp_path: Path, template: str
) -> None:
    """A hosts-file line that is not a host: exit 2, one stderr line naming the file, no tag, nothing ran."""
    mark = tmp_path / MARK
    script = write_script(tmp_path / "evil.sh", f"touch {mark}\n")
    host = deployment.fleet.hosts[4]
    line = template.format(host=host, mark=mark, script=script)
    deployment.group("evil", [host, line])
    run = _sartoris(deployment, tmp_path / "cwd", "sync", "--slot", str(deployment.slot), "--hosts", "evil")
    assert run.code == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "evil" in run.stderr and "Traceback" not in run.stderr
    assert git(deployment.checkout, "tag") == ""
    assert deployment.host_head(host) is None
    status = _sartoris(deployment, tmp_path / "cwd", "status", "--slot", str(deployment.slot), "--hosts", "evil")
    assert status.code == 2 and status.stderr.count("\n") == 1
    assert _marks(deployment, tmp_path, [host]) == []


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("$(touch {mark})", id="command-substitution"),
        pytest.param("-oProxyCommand=touch {mark}", id="option"),
        pytest.param("../../../../../../etc/passwd", id="not-a-hosts-file"),
    ],
)
def test_a_hostile_hosts_selector_is_refused(deployment: Deployment, tmp_path: Path, template: str) -> None:
    """--hosts naming no group and no hosts file (or a file that is not one): exit 2, one line, nothing ran."""
    selector = template.format(mark=tmp_path / MARK)
    run = _sartoris(deployment, tmp_path / "cwd", "sync", "--slot", str(deployment.slot), f"--hosts={selector}")
    assert run.code == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert git(deployment.checkout, "tag") == ""
    assert _marks(deployment, tmp_path, []) == []


def test_a_hosts_file_path_with_spaces_and_shell_syntax_is_just_a_path(deployment: Deployment, tmp_path: Path) -> None:
    """--hosts given a file path with spaces, quotes and $( ) works as a path: the hosts in it are deployed."""
    hosts = deployment.fleet.hosts[5:7]
    odd = tmp_path / f"odd dir $(touch {MARK}) ; 'q' \"dq\"" / "my hosts `x`"
    deployment.fleet.write_group(odd, hosts)
    run = _sartoris(deployment, tmp_path / "cwd", "sync", "--slot", str(deployment.slot), "--hosts", str(odd), "--json")
    assert run.code == 0, run.stderr
    assert [h["host"] for h in run.json()["hosts"]] == hosts
    assert all(deployment.host_head(h) == deployment.head() for h in hosts)
    assert [p for p in _marks(deployment, tmp_path, hosts) if p.name == MARK] == []


# --- a host that floods its output ---------------------------------------------------------------------------

def test_output_that_is_not_utf8_is_read_as_text_not_a_lost_connection(deployment: Deployment, tmp_path: Path) -> None:
    """A hook on a host printing bytes that are not UTF-8 while the sync succeeds: that ended the connection (a
    decode error), so the host was reported failed and depooled though it switched. Now it is ok. (The store's
    hook, run by the fetch: a switch that succeeds shows no output of a build from a copy of the live tree.)"""
    hosts = deployment.fleet.hosts[11:13]
    deployment.group("pair", hosts)
    assert _sartoris(deployment, tmp_path / "cwd", "sync", "--slot", str(deployment.slot), "--hosts", "pair").code == 0
    hook = store(deployment, hosts[0]) / "hooks" / "reference-transaction"
    write_script(hook, "cat >/dev/null\nprintf '\\377\\376 latin-1 \\351\\n' >&2\n")
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'bytes';\n")
    run = _sartoris(deployment, tmp_path / "cwd", "sync", "--slot", str(deployment.slot), "--hosts", "pair", "--json")
    assert run.code == 0, run.stderr
    assert all(h["ok"] and not h["depooled"] for h in run.json()["hosts"])
    assert all(deployment.host_head(h) == new for h in hosts)


FLOOD_BYTES = 200 * 1000 * 1000
MAX_RSS_MB = 200
MAX_ERROR = 500


@pytest.mark.parametrize(
    "flood",
    [
        pytest.param("yes 'noise from a misbehaving host, line after line' | head -c {n} >&2", id="lines"),
        pytest.param("head -c {n} /dev/zero | tr '\\0' x >&2", id="one-endless-line"),
    ],
)
def test_a_host_flooding_its_output_cannot_exhaust_the_controller(
    deployment: Deployment, tmp_path: Path, flood: str
) -> None:
    """A host whose switch prints ~200 MB then fails: the sync finishes, that host fails with a short one-line
    error (the JSON stays small), the others switch, and the controller's peak memory stays bounded."""
    hosts = deployment.fleet.hosts[7:10]
    deployment.group("trio", hosts)
    deployment.configure(command_timeout=180, connect_timeout=4)
    run = _sartoris(deployment, tmp_path / "cwd", "sync", "--slot", str(deployment.slot), "--hosts", "trio")
    assert run.code == 0, run.stderr
    checkout_hook(deployment, hosts[0], flood.format(n=FLOOD_BYTES) + "\nprintf 'flood over\\n' >&2\nexit 1\n")
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    began = time.monotonic()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "sartoris.py"), "--config", str(deployment.config), "sync", "--slot",
             str(deployment.slot), "--hosts", "trio", "--max-failures", "1", "--json"],
            stdout=stdout, stderr=stderr, cwd=tmp_path,
        )  # fmt: skip
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            if process.poll() is None:
                process.kill()
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - began
    peak_mb = usage.ru_maxrss / 1024
    assert process.returncode == 5, err.read_text()[-2000:]
    report = json.loads(out.read_text())
    broken = next(h for h in report["hosts"] if h["host"] == hosts[0])
    assert not broken["ok"] and broken["phase"] == "checkout" and broken["depooled"]
    assert all(deployment.host_head(h) == new for h in hosts[1:])
    assert peak_mb < MAX_RSS_MB, f"the controller peaked at {peak_mb:.0f} MB ({seconds:.0f}s)"
    assert err.stat().st_size < 1024 * 1024
    assert len(broken["error"]) <= MAX_ERROR and "\n" not in broken["error"], (
        len(broken["error"]),
        broken["error"][:200],
    )
    assert out.stat().st_size < 16 * 1024
