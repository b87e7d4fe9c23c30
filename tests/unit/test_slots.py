"""Tests for sartoris.slots: which slot an operator means by the folder they stand in, and version links."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sartoris.config import Config, parse_config
from sartoris.errors import StateError, UsageError
from sartoris.slots import VersionLink, infer_slot, link_slot, list_slots


def config_at(folder: Path, checkout_root: str) -> Config:
    folder.mkdir(parents=True, exist_ok=True)
    text = (
        "[deploy]\nname = \"mw\"\nremote_root = \"/srv/mw\"\npublish_url = \"/srv/git/php-slot{slot}.git\"\n"
        f"checkout_root = \"{checkout_root}\"\n"
    )
    return parse_config(text, folder / "sartoris.toml")


@pytest.fixture
def checkouts(tmp_path: Path) -> Path:
    """Two slot working copies and a version link to the first."""
    root = tmp_path / "co"
    for slot in (0, 1):
        (root / f"php-slot{slot}" / "includes").mkdir(parents=True)
    os.symlink("php-slot0", root / "php-1.20wmf1")
    return root


def test_a_stale_pwd_never_outvotes_the_real_folder(checkouts: Path) -> None:
    """A script starting Sartoris in php-slot1 with $PWD left at php-slot0 means slot 1."""
    config = config_at(checkouts, ".")
    assert infer_slot(config, checkouts / "php-slot1" / "includes", str(checkouts / "php-slot0")) == 1


def test_a_version_link_names_its_slot(checkouts: Path) -> None:
    """A folder inside a version link (php-1.20wmf1 -> php-slot0) means the linked slot, through $PWD or resolved."""
    config = config_at(checkouts, ".")
    inside = checkouts / "php-1.20wmf1" / "includes"
    assert infer_slot(config, inside, str(inside)) == 0
    assert infer_slot(config, inside.resolve(), None) == 0


def test_checkout_root_with_dot_dot_and_links(checkouts: Path, tmp_path: Path) -> None:
    """checkout_root written as `../co`, or reached through a link, still places the folder."""
    config = config_at(tmp_path / "etc", "../co")
    assert infer_slot(config, checkouts / "php-slot1", None) == 1
    assert infer_slot(config, checkouts / "php-slot1", str(checkouts / "php-slot1")) == 1
    os.symlink(checkouts, tmp_path / "deploy")
    linked = config_at(tmp_path / "etc2", str(tmp_path / "deploy"))
    assert infer_slot(linked, checkouts / "php-slot1" / "includes", None) == 1


def test_outside_every_slot_with_two_slots_is_a_usage_error(checkouts: Path, tmp_path: Path) -> None:
    """Outside every slot, with two slots to choose from, Sartoris does not guess: a usage error asks for --slot N."""
    config = config_at(checkouts, ".")
    with pytest.raises(UsageError, match="pass --slot N"):
        infer_slot(config, tmp_path, str(tmp_path))


def test_outside_every_slot_with_one_slot_means_that_slot(tmp_path: Path) -> None:
    """Outside every slot, with only one slot on the deploy host, that slot is meant."""
    (tmp_path / "co" / "php-slot3").mkdir(parents=True)
    config = config_at(tmp_path / "co", ".")
    assert infer_slot(config, tmp_path, None) == 3


def test_the_only_slot_is_not_taken_for_a_folder_of_another_project(tmp_path: Path) -> None:
    """`SARTORIS_CONFIG=b/sartoris.toml sartoris sync` run inside project A's slot (A's sartoris.toml above it) fell
    back to B's only slot and deployed B; so did a project whose checkout_root has `{slot}`, and one named by git
    config. A folder in a slot of the project its own config names (its repository's git config, its nearest
    sartoris.toml; a `{slot}` checkout_root counts as holding it) now needs --slot. A folder in no slot of another
    project, or under another config of the same slots (checkout_root however spelt, and slot_prefix), still means
    the only slot."""
    def project(name: str, root: str = "co") -> Config:
        made = config_at(tmp_path / name, root)
        made.path.write_text(f'[deploy]\nname = "{name}"\nremote_root = "/srv/{name}"\npublish_url = "/srv/g.git"\n'
                             f'checkout_root = "{root}"\n')
        return made

    b = project("b")
    (tmp_path / "b" / "co" / "php-slot0").mkdir(parents=True)
    project("a")
    (tmp_path / "a" / "co" / "php-slot1").mkdir(parents=True)
    project("c", "s{slot}")
    (tmp_path / "c" / "s0" / "php-slot0").mkdir(parents=True)
    for folder, other in (("a/co/php-slot1", "a"), ("c/s0/php-slot0", "c")):
        refused = rf"{folder} is in another project \(.*/{other}/sartoris.toml\), not in a slot of .*/b/co .*--slot N"
        with pytest.raises(UsageError, match=refused):
            infer_slot(b, tmp_path / folder, None)
    assert infer_slot(b, tmp_path, None) == 0
    assert infer_slot(b, tmp_path / "a", None) == 0  # under A's config, in none of its slots
    (tmp_path / "b" / "conf").mkdir()
    codfw = parse_config(b.path.read_text().replace('"co"', '"../co"'), tmp_path / "b" / "conf" / "codfw.toml")
    assert infer_slot(codfw, tmp_path / "b" / "co", None) == 0  # another config of B's slots, its root spelt otherwise
    parsoid = tmp_path / "b" / "co" / "parsoid-slot0"  # a project of its own in B's checkout_root, by its prefix
    parsoid.mkdir()
    (tmp_path / "b" / "parsoid.toml").write_text(b.path.read_text() + 'slot_prefix = "parsoid-slot"\n')
    subprocess.run(["git", "init", "-q", str(parsoid)], check=True)
    subprocess.run(["git", "-C", str(parsoid), "config", "sartoris.config", "../../parsoid.toml"], check=True)
    with pytest.raises(UsageError, match=r"is in another project \(.*/b/parsoid.toml\)"):
        infer_slot(b, parsoid, None)
    slot2 = tmp_path / "d" / "co" / "php-slot2"  # project D names its config by git config, no sartoris.toml above
    slot2.mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "d.toml").write_text(
        f'[deploy]\nname = "d"\nremote_root = "/srv/d"\npublish_url = "/srv/g.git"\ncheckout_root = "{slot2.parent}"\n'
    )
    subprocess.run(["git", "init", "-q", str(slot2)], check=True)
    subprocess.run(["git", "-C", str(slot2), "config", "sartoris.config", str(tmp_path / "etc" / "d.toml")], check=True)
    with pytest.raises(UsageError, match=r"is in another project \(.*/etc/d.toml\)"):
        infer_slot(b, slot2, None)


def test_a_link_into_another_projects_slot_or_an_unreadable_config_needs_the_slot(tmp_path: Path) -> None:
    """`cd ~/work/b` (a link to project B's php-slot0, under A's sartoris.toml) with A in use: the nearest config
    through the link was A's own, so B's folder meant A's only slot; the real path's nearest config counts too. A
    config being edited (unreadable) above the folder may be another project's: the fallback asks for --slot."""
    def project(name: str) -> Config:
        made = config_at(tmp_path / name, "co")
        made.path.write_text(f'[deploy]\nname = "{name}"\nremote_root = "/srv/{name}"\npublish_url = "/g.git"\n'
                             'checkout_root = "co"\n')
        (tmp_path / name / "co" / "php-slot0").mkdir(parents=True)
        return made

    a, b = project("a"), project("b")
    (tmp_path / "a" / "work").mkdir()
    os.symlink(tmp_path / "b" / "co" / "php-slot0", tmp_path / "a" / "work" / "b")
    real = (tmp_path / "b" / "co" / "php-slot0").resolve()
    with pytest.raises(UsageError, match=r"is in another project \(.*/b/sartoris.toml\)"):
        infer_slot(a, real, str(tmp_path / "a" / "work" / "b"))
    b.path.write_text("[deploy\n")  # half-edited
    with pytest.raises(UsageError, match=r"names a config that cannot be read \(.*/b/sartoris.toml\).*--slot N"):
        infer_slot(a, real, None)


def test_a_users_git_config_names_no_folders_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's own git config (`git config --global sartoris.config`) names a default, not the project of every
    folder: with it naming another project, `--config mw.toml` from $HOME still means mw's only slot."""
    (tmp_path / "mw" / "co" / "php-slot0").mkdir(parents=True)
    mw = config_at(tmp_path / "mw", "co")
    mw.path.write_text('[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/g.git"\ncheckout_root = "co"\n')
    (tmp_path / "other.toml").write_text(mw.path.read_text().replace('"co"', '"elsewhere"'))
    (tmp_path / "gitconfig").write_text(f"[sartoris]\n\tconfig = {tmp_path / 'other.toml'}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    (tmp_path / "home").mkdir()
    assert infer_slot(mw, tmp_path / "home", None) == 0


def test_slots_link_moves_a_version_link_but_never_replaces_another_link(checkouts: Path, tmp_path: Path) -> None:
    """`slots link` moves a version link to another slot (atomically), also one written by hand with an absolute
    path; a link in checkout_root that points elsewhere (`etc -> /etc`) is not a version link: refused, left."""
    config = config_at(tmp_path / "conf", str(checkouts))
    assert link_slot(config, 1, "php-1.20wmf1") == VersionLink(checkouts / "php-1.20wmf1", moved_from=0)
    assert os.readlink(checkouts / "php-1.20wmf1") == "php-slot1"
    assert link_slot(config, 1, "php-1.20wmf1").moved_from is None  # already there: nothing moved
    os.symlink(str(checkouts / "php-slot0"), checkouts / "php-by-hand")
    assert link_slot(config, 1, "php-by-hand").moved_from == 0
    assert os.readlink(checkouts / "php-by-hand") == "php-slot1"
    os.symlink("/etc", checkouts / "etc")
    with pytest.raises(UsageError, match="not at a slot"):
        link_slot(config, 0, "etc")
    assert os.readlink(checkouts / "etc") == "/etc"


@pytest.mark.parametrize(
    "name", ["php-x\n", "php-" + "x" * 300, "php-slot01"], ids=["trailing-newline", "too-long", "a-slots-look-alike"]
)
def test_slots_link_refuses_a_name_no_operator_could_type_back(checkouts: Path, tmp_path: Path, name: str) -> None:
    """A name ending in a newline (which `$` in a pattern lets through), longer than a file name, or read like a slot
    folder (php-slot01, which is not slot 1's): exit 2, no link."""
    config = config_at(tmp_path / "conf", str(checkouts))
    with pytest.raises(UsageError, match="must be a plain name"):
        link_slot(config, 0, name)
    assert sorted(p.name for p in checkouts.iterdir()) == ["php-1.20wmf1", "php-slot0", "php-slot1"]


@pytest.mark.parametrize("name", ["../escape", "a/b", ".sartoris"])
def test_a_link_name_that_is_a_path_is_not_called_a_slot_name(checkouts: Path, tmp_path: Path, name: str) -> None:
    """`slots link 0 ../escape` was refused as "not a slot name"; the refusal now says what a name may hold."""
    config = config_at(tmp_path / "conf", str(checkouts))
    with pytest.raises(UsageError, match="starting with a letter or digit") as refused:
        link_slot(config, 0, name)
    assert "slot name" not in str(refused.value)


def test_slots_link_that_cannot_be_made_is_refused_in_one_line(checkouts: Path, tmp_path: Path) -> None:
    """The link cannot be made (the tests run as root, so instead of a read-only folder a directory sits where the
    temporary link goes, and unlink(2) fails): a StateError naming the link (exit 4, one line), not a traceback."""
    config = config_at(tmp_path / "conf", str(checkouts))
    (checkouts / ".php-1.21wmf1.sartoris-new").mkdir()
    with pytest.raises(StateError, match=r"cannot link .*php-1\.21wmf1 -> php-slot0"):
        link_slot(config, 0, "php-1.21wmf1")
    assert not (checkouts / "php-1.21wmf1").exists()


def test_slots_lists_a_link_to_a_version_link_under_its_slot(checkouts: Path) -> None:
    """`php-chain -> php-1.20wmf1 -> php-slot0` names slot 0 as commands run inside it infer, so `slots` lists it
    there too."""
    os.symlink("php-1.20wmf1", checkouts / "php-chain")
    os.symlink("loop-b", checkouts / "loop-a")  # a link loop is listed nowhere and breaks nothing
    os.symlink("loop-a", checkouts / "loop-b")
    config = config_at(checkouts.parent / "conf", str(checkouts))
    by_slot = {info.slot: info.links for info in list_slots(config, {})}
    assert by_slot == {0: ("php-1.20wmf1", "php-chain"), 1: ()}
    with pytest.raises(UsageError, match="refusing to replace it"):  # Python 3.13's resolve() names the loop
        link_slot(config, 0, "loop-a")


def test_a_zero_padded_folder_is_not_a_slot(checkouts: Path) -> None:
    """`php-slot01` is not slot 1's working copy (that is php-slot1): commands inside it do not deploy php-slot1,
    and `slots` does not list slot 1 twice."""
    (checkouts / "php-slot01").mkdir()
    config = config_at(checkouts, ".")
    with pytest.raises(UsageError, match="pass --slot N"):
        infer_slot(config, checkouts / "php-slot01", None)
    assert [info.slot for info in list_slots(config, {})] == [0, 1]


def test_a_link_leaving_checkout_root_names_no_slot_here(checkouts: Path, tmp_path: Path) -> None:
    """`php-other -> /elsewhere/php-slot0` is another deploy tree's working copy, not this checkout_root's slot 0:
    a command run inside it is not taken for slot 0, and `slots` does not list the link."""
    elsewhere = tmp_path / "elsewhere" / "php-slot0"
    elsewhere.mkdir(parents=True)
    os.symlink(str(elsewhere), checkouts / "php-other")
    config = config_at(checkouts, ".")
    inside = checkouts / "php-other"
    with pytest.raises(UsageError, match="pass --slot N"):
        infer_slot(config, inside, str(inside))
    assert {info.slot: info.links for info in list_slots(config, {})} == {0: ("php-1.20wmf1",), 1: ()}


def test_a_slot_folder_may_be_a_link_to_a_working_copy_elsewhere(tmp_path: Path) -> None:
    """`php-slot0 -> /data/php-slot0` (a bigger disk) is slot 0: listed by `slots` with the version link naming
    it, and inferred inside it, through the link (the shell's $PWD) and through the version link."""
    data = tmp_path / "data" / "php-slot0"
    data.mkdir(parents=True)
    root = tmp_path / "co"
    (root / "php-slot1").mkdir(parents=True)
    os.symlink(str(data), root / "php-slot0")
    os.symlink("php-slot0", root / "php-1.20wmf1")
    config = config_at(root, ".")
    assert {info.slot: info.links for info in list_slots(config, {})} == {0: ("php-1.20wmf1",), 1: ()}
    assert infer_slot(config, data, str(root / "php-slot0")) == 0
    assert infer_slot(config, data, str(root / "php-1.20wmf1")) == 0
    assert link_slot(config, 1, "php-1.20wmf1") == VersionLink(root / "php-1.20wmf1", moved_from=0)
