"""Publishing while the first connections open, without a fleet: the deploy host's real git (SlotCheckout) and, for
the asyncio side, a stand-in connector and hosts (a unit test: the integration suite runs it on the real fleet).

What must hold: no push starts once the run is stopped and the new tag is deleted again; a release never silently
loses its submodules; the connections opened early are closed when the publish fails or is interrupted; a host's
time counts its own connect and fetch, not the wait for the publish."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import git as gitpython
import pytest
from sample_repo import git, make_checkout

from sartoris import deploy, repo
from sartoris.config import parse_config
from sartoris.errors import PublishError, RefusedError
from sartoris.inventory import parse_host
from sartoris.policy import FailureBudget
from sartoris.remote import NOT_RUN, SCRIPT_END, HostCommand, RemoteRelease, fetch_command, switch_command
from sartoris.repo import Release, SlotCheckout
from sartoris.results import Phase
from sartoris.rollout import _Fetcher
from sartoris.transport import CommandResult, ConnectError

# --- the deploy host's git -------------------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> SlotCheckout:
    return SlotCheckout(make_checkout(tmp_path / "deploy", 0, files=5, submodules=2), 60)


def published_refs(url: Path) -> list[str]:
    return git(url, "for-each-ref", "--format=%(refname)").split() if url.exists() else []


def test_a_stopped_run_starts_no_push(checkout: SlotCheckout, tmp_path: Path) -> None:
    """A publish whose run was already stopped pushes nothing: no ref reaches the publish target."""
    release = checkout.tag_release("t1", "release")
    stop = threading.Event()
    stop.set()
    with pytest.raises(PublishError, match="interrupted"):
        checkout.publish(release, str(tmp_path / "publish.git"), stop)
    assert published_refs(tmp_path / "publish.git") == []


def test_a_stop_ends_the_push_in_flight_with_what_it_started(checkout: SlotCheckout, tmp_path: Path) -> None:
    """A stop (Ctrl-C or SIGTERM to Sartoris alone) while a push is held by the target's pre-receive hook ends
    that push, its receive-pack and the hook (which ignores SIGTERM, so SIGKILL after the grace) within seconds,
    instead of waiting out the hook; no ref lands."""
    release = checkout.tag_release("t1", "release")
    target = tmp_path / "publish.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(target)], check=True)
    holding, hook_pid = tmp_path / "holding", tmp_path / "hook.pid"
    hook = target / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ntrap '' TERM\necho $$ > {hook_pid}\ntouch {holding}\nexec sleep 60\n")
    hook.chmod(0o755)
    stop = threading.Event()

    def stop_once_held() -> None:
        deadline = time.monotonic() + 30
        while not holding.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()

    stopper = threading.Thread(target=stop_once_held)
    stopper.start()
    began = time.monotonic()
    try:
        with pytest.raises(PublishError, match="stopped: interrupted"):
            checkout.publish(release, str(target), stop)
    finally:
        stopper.join()
    assert holding.exists() and time.monotonic() - began < 10
    assert published_refs(target) == []
    hook_process = Path(f"/proc/{hook_pid.read_text().strip()}/stat")
    deadline = time.monotonic() + 5
    while hook_process.exists() and ") Z " not in hook_process.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not hook_process.exists() or ") Z " in hook_process.read_text(), "the target's hook outlived the push"


def test_a_stop_between_pushes_starts_no_further_push(
    checkout: SlotCheckout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the first submodule commit is pushed: neither the second nor the tag is (the tag goes last, so
    the publish target never holds a tag whose submodule commits it lacks)."""
    release = checkout.tag_release("t1", "release")
    stop, pushed = threading.Event(), []
    push_submodule = SlotCheckout._push_submodule

    def push_then_stop(
        self: SlotCheckout,
        module: repo.SubmoduleSpec,
        listed: tuple[repo.SubmoduleSpec, ...],
        url: str,
        stop_event: threading.Event | None,
        env: dict[str, str],
    ) -> None:
        push_submodule(self, module, listed, url, stop_event, env)
        pushed.append(module.path)
        stop.set()

    monkeypatch.setattr(SlotCheckout, "_push_submodule", push_then_stop)
    with pytest.raises(PublishError, match="interrupted"):
        checkout.publish(release, str(tmp_path / "publish.git"), stop)
    assert len(release.submodules) == 2 and len(pushed) == 1
    refs = published_refs(tmp_path / "publish.git")
    assert len(refs) == 1 and refs[0].startswith("refs/sartoris/submodules/"), refs


def test_a_release_never_silently_loses_its_submodules(
    checkout: SlotCheckout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing the slot's own tree fails loudly, and so does a submodule's git killed by a signal (Ctrl-C): an
    empty list would publish the release without its submodule commits (a submodule whose repository lacks the
    commit is refused too: test_nested_submodules)."""
    with pytest.raises(RefusedError, match="cannot list the files"):
        checkout.submodules_at("0" * 40)
    run_git = repo._run_git

    def killed_in_a_submodule(gitrepo: gitpython.Repo, timeout: float, *args: str) -> str:
        if args[0] == "ls-tree" and "extensions" in str(gitrepo.working_tree_dir):
            raise gitpython.GitCommandError(["git", *args], -2, b"")
        return run_git(gitrepo, timeout, *args)

    monkeypatch.setattr(repo, "_run_git", killed_in_a_submodule)
    with pytest.raises(RefusedError, match="submodule extensions/"):
        checkout.submodules_at(checkout.head_commit())


def test_a_rejected_push_says_why_not_only_that_it_failed(checkout: SlotCheckout, tmp_path: Path) -> None:
    """git's own error line says only "failed to push some refs": the server's reason comes from its rejected
    line, here a tag of that name already published for another commit."""
    url = str(tmp_path / "publish.git")
    checkout.publish(checkout.tag_release("t1", "release"), url)
    checkout.delete_tag("t1")
    git(checkout.path, "commit", "--quiet", "--allow-empty", "--message", "another")
    with pytest.raises(PublishError, match=r"failed: \[rejected\] +t1 -> t1 \(already exists\)"):
        checkout.publish(checkout.tag_release("t1", "release"), url)


def test_a_published_submodule_commit_outlives_gc_here(
    checkout: SlotCheckout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submodule commit made on the deploy host only, published, then left behind (reset) survives gc there:
    the publish gave it a ref in the submodule's repository, as the tag does for the slot's own commit, so a
    rollback can publish it again. The ref is made once; a later publish starts no process for it."""
    module = checkout.path / "extensions" / "Ext0"
    (module / "hack.php").write_text("<?php // a live hack\n")
    git(module, "add", "hack.php")
    git(module, "commit", "--quiet", "--message", "hack")
    hack = git(module, "rev-parse", "HEAD")
    git(checkout.path, "commit", "--quiet", "--all", "--message", "pin the hack")
    release = checkout.tag_release("t1", "release")
    checkout.publish(release, str(tmp_path / "publish.git"))
    git(module, "reset", "--quiet", "--hard", "HEAD~1")
    git(module, "reflog", "expire", "--expire=now", "--all")
    git(module, "gc", "--quiet", "--prune=now")
    git(module, "cat-file", "-e", f"{hack}^{{commit}}")  # still here
    run_git, calls = repo._run_git, []

    def counted(gitrepo: gitpython.Repo, timeout: float, *args: str) -> str:
        calls.append(args[0])
        return run_git(gitrepo, timeout, *args)

    monkeypatch.setattr(repo, "_run_git", counted)
    checkout.publish(release, str(tmp_path / "again.git"))
    assert "update-ref" not in calls  # packed by that gc, and still found


def test_a_sha256_working_copy_is_tagged_and_published_into_a_sha256_repository(tmp_path: Path) -> None:
    """GitPython cannot read SHA-256 refs, so a SHA-256 working copy was refused as having "no commit yet", and its
    missing publish target was made SHA-1, which then refused every push. Now it publishes like any other, and a
    host checks the release out (the host side always handled SHA-256)."""
    work = tmp_path / "php-slot0"
    git(tmp_path, "init", "--quiet", "--object-format=sha256", str(work))
    (work / "index.php").write_text("<?php\n")
    git(work, "add", "index.php")
    git(work, "commit", "--quiet", "--message", "one")
    checkout = SlotCheckout(work, 60)
    assert checkout.head_commit() == git(work, "rev-parse", "HEAD") and len(checkout.head_commit()) == 64
    release = checkout.tag_release("t1", "release")
    url = tmp_path / "publish.git"
    checkout.publish(release, str(url))
    assert git(url, "rev-parse", "--show-object-format") == "sha256"
    assert git(url, "rev-parse", "t1^{commit}") == release.commit
    host = RemoteRelease(str(tmp_path / "host" / "php-slot0"), str(url), release.tag, release.commit)
    (tmp_path / "host").mkdir()
    for script in (fetch_command(host), switch_command(host)):
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    assert git(tmp_path / "host" / "php-slot0", "rev-parse", "HEAD") == release.commit


def test_listing_fails_before_the_tag_is_made(checkout: SlotCheckout, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the submodules cannot be listed, tag_release fails before making the tag, so no tag is left behind."""

    def fail(commit: str) -> tuple[repo.SubmoduleSpec, ...]:
        raise RefusedError("cannot list")

    monkeypatch.setattr(checkout, "submodules_at", fail)
    with pytest.raises(RefusedError):
        checkout.tag_release("t1", "release")
    assert git(checkout.path, "tag") == ""


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "sync"])
def test_a_clone_without_its_submodules_is_refused_before_anything_is_made(
    checkout: SlotCheckout, tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: bool,
    cli_main: Callable[[list[str]], int],
) -> None:
    """A working copy cloned without --recurse-submodules: the dry run approved it, and the sync then created the
    publish repository and failed saying to run `git submodule absorbgitdirs`. Both now refuse it (exit 4) with
    the day-one fix, before a tag or a publish repository is made."""
    project = tmp_path / "fresh"
    project.mkdir()
    subprocess.run(["git", "clone", "-q", str(checkout.path), str(project / "php-slot0")], check=True)
    (project / "hosts").mkdir()
    (project / "hosts" / "web").write_text("127.0.0.1:1\n")
    (project / "known_hosts").write_text("")
    (project / "sartoris.toml").write_text(
        '[deploy]\nname = "app"\nremote_root = "/srv/app"\npublish_url = "publish/php-slot{slot}.git"\n'
        'hosts = ["web"]\n[ssh]\nknown_hosts = "known_hosts"\n'
    )
    command = ["--config", str(project / "sartoris.toml"), "sync", "--slot", "0", *(["--dry-run"] if dry_run else [])]
    code = cli_main(command)
    err = capsys.readouterr().err
    assert code == 4 and "is not initialised" in err and "git submodule update --init --recursive" in err, err
    assert git(project / "php-slot0", "tag") == "" and not (project / "publish").exists()


# --- publishing while connecting --------------------------------------------------------------------------------

RELEASE = Release("t1", "a" * 40, ())
HOSTS = [parse_host(f"10.0.0.{n}") for n in range(1, 4)]
_RELEASE = RemoteRelease("/srv/app/php-slot0", "/srv/p.git", "t1", "a" * 40)  # what a _Fetcher fetches


class StandInConnector:
    """Records what the run asked of the connector."""

    def __init__(self) -> None:
        self.opened_early: list[str] = []
        self.closed = 0

    def open_early(self, hosts: list[object]) -> None:
        self.opened_early += [str(h) for h in hosts]

    async def close(self) -> None:
        self.closed += 1


REQUEST = deploy.SyncRequest(0, tuple(HOSTS), "m", concurrency=100, budget=FailureBudget(count=0))


async def publish_then_deploy(publish: deploy.Publish, connector: StandInConnector) -> object:
    """A run's publish and rollout; only publishes that fail or are interrupted reach it (no rollout runs)."""
    return await deploy._publish_and_deploy(
        None, REQUEST, publish, HOSTS, (), None, connector, None, lambda tag: None  # type: ignore[arg-type]
    )


async def test_connections_open_before_the_publish_ends_and_stay_open() -> None:
    """The first hosts' connections open while the publish runs, and stay open after it for the rollout to use."""
    connector, seen_while_publishing = StandInConnector(), []

    def publish(stop: deploy.PublishStop) -> Release:
        seen_while_publishing.extend(connector.opened_early)
        stop.commit()
        return RELEASE

    assert await deploy._publish_while_connecting(publish, connector, HOSTS) == RELEASE  # type: ignore[arg-type]
    assert seen_while_publishing == [str(h) for h in HOSTS] and connector.closed == 0


async def test_a_failed_publish_closes_the_early_connections() -> None:
    """A failed publish closes the connections opened early for it: no rollout will take them."""
    connector = StandInConnector()

    def publish(stop: deploy.PublishStop) -> Release:
        raise PublishError("push to x failed: rejected")

    with pytest.raises(PublishError):
        await publish_then_deploy(publish, connector)
    assert connector.closed == 1


async def test_an_interrupt_tells_the_publish_to_stop_waits_for_it_and_closes() -> None:
    """Ctrl-C (the run's task cancelled) while git runs: the publish is told to stop and is waited for (it deletes
    its tag itself), then the early connections are closed and the interrupt goes on."""
    connector, started, saw_stop = StandInConnector(), threading.Event(), []

    def publish(stop: deploy.PublishStop) -> Release:
        started.set()
        saw_stop.append(stop.requested.wait(timeout=10))
        time.sleep(0.2)  # the git command in flight ends
        stop.commit()  # raises: the stop came first
        return RELEASE

    run = asyncio.ensure_future(publish_then_deploy(publish, connector))
    while not started.is_set():
        await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert saw_stop == [True] and connector.closed == 1


async def test_an_interrupt_just_after_the_publish_completed_lets_the_run_record_it() -> None:
    """Ctrl-C lands after the publish committed but before the loop saw it return: the release stands (it is
    published), and the run carries on only to meet the interrupt at its next wait, so the rollout records it."""
    connector, committed, may_return = StandInConnector(), threading.Event(), threading.Event()

    def publish(stop: deploy.PublishStop) -> Release:
        stop.commit()
        committed.set()
        may_return.wait(timeout=10)
        return RELEASE

    async def run_then_wait() -> tuple[Release, str]:
        release = await deploy._publish_while_connecting(publish, connector, HOSTS)  # type: ignore[arg-type]
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            return release, "interrupted at the next wait"
        return release, "not interrupted"

    run = asyncio.ensure_future(run_then_wait())
    while not committed.is_set():
        await asyncio.sleep(0.01)
    run.cancel()
    await asyncio.sleep(0.05)
    may_return.set()
    assert await run == (RELEASE, "interrupted at the next wait")
    assert connector.closed == 0  # the rollout closes them, after recording the run


def test_a_stop_after_the_last_push_deletes_the_tag(checkout: SlotCheckout, tmp_path: Path) -> None:
    """The run was stopped while the last push ran: the tag is deleted again, as for a failed publish."""
    config = parse_config(
        f'[deploy]\nname = "app"\nremote_root = "/srv/app"\npublish_url = "{tmp_path}/publish.git"\n',
        tmp_path / "sartoris.toml",
    )
    stop = deploy.PublishStop()
    publish = SlotCheckout.publish

    def publish_then_stop(
        self: SlotCheckout, release: Release, url: str, event: threading.Event | None, connect_timeout: float
    ) -> None:
        publish(self, release, url, event, connect_timeout)
        assert stop.request() is False  # not committed yet: the publish must undo its tag

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SlotCheckout, "publish", publish_then_stop)
        with pytest.raises(PublishError, match="interrupted"):
            deploy._tag_and_publish(config, 0, checkout, "t1", "release", stop)
    assert git(checkout.path, "tag") == ""


# --- a host's time ------------------------------------------------------------------------------------------------


class IdleSession:
    """A session opened `connect_seconds` before, answering at once (by default, a script that ran to its end)."""

    def __init__(self, connect_seconds: float, stdout: str = f"{SCRIPT_END}\n") -> None:
        self.connect_seconds = connect_seconds
        self.stdout = stdout

    async def run(self, command: str, timeout: float, stdin: str = "") -> CommandResult:
        return CommandResult(0, self.stdout, "")

    def close(self) -> None:
        pass


class OneHostConnector:
    def __init__(self, outcome: IdleSession | ConnectError) -> None:
        self.outcome = outcome

    async def connect(self, host: object) -> IdleSession:
        await asyncio.sleep(0.3)  # the fetch waited this long for a connection opened (or failed) long before
        if isinstance(self.outcome, ConnectError):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize("outcome", [IdleSession(2.0), ConnectError("connection refused", 2.0)], ids=["ok", "failed"])
async def test_a_hosts_time_is_its_connect_and_fetch_not_the_wait(outcome: IdleSession | ConnectError) -> None:
    """A host's time, fetched or failed to connect, counts its own connect and fetch, not the wait for the publish."""
    config = parse_config('[deploy]\nname = "app"\nremote_root = "/srv/app"\npublish_url = "/srv/p.git"\n',
                          Path("/etc/sartoris/sartoris.toml"))
    fetcher = _Fetcher(config, OneHostConnector(outcome), HostCommand("sh -s", "true"), _RELEASE)  # type: ignore[arg-type]
    fetched = await fetcher.fetch(HOSTS[0])
    assert fetched.result.ok is isinstance(outcome, IdleSession)
    assert 2.0 <= fetched.result.seconds < 2.25


async def test_a_fetch_whose_script_never_ran_is_a_failed_fetch() -> None:
    """Exit 0 with no last line: the host's shell ran nothing (its stdin was read or replaced), so nothing was
    fetched and the host must not be switched."""
    config = parse_config('[deploy]\nname = "app"\nremote_root = "/srv/app"\npublish_url = "/srv/p.git"\n',
                          Path("/etc/sartoris/sartoris.toml"))
    connector = OneHostConnector(IdleSession(0.0, stdout=""))
    fetcher = _Fetcher(config, connector, HostCommand("sh -s", "true"), _RELEASE)  # type: ignore[arg-type]
    fetched = await fetcher.fetch(HOSTS[0])
    assert (fetched.result.ok, fetched.result.phase, fetched.result.error) == (False, Phase.FETCH, NOT_RUN)
