"""Which untracked or ignored paths putting a repository back at a commit would overwrite or remove (the listings
git gives, over a real folder where a wholly untracked folder is looked into)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sartoris.untracked import named, overwritten_by


@pytest.mark.parametrize(
    ("added", "untracked", "expected"),
    [
        pytest.param(["a.php"], ["a.php"], ["a.php"], id="file-over-file"),
        pytest.param(["a.php"], ["a.php/"], ["a.php"], id="file-over-folder"),
        pytest.param(["d/x.php"], ["d"], ["d"], id="folder-over-file"),
        pytest.param(["d/e/x.php"], ["d/e"], ["d/e"], id="deeper-folder-over-file"),
        pytest.param(["d"], ["d/mine.txt", "d/sub/"], ["d/mine.txt", "d/sub"], id="file-over-a-tracked-folder"),
        pytest.param(["d/x.php"], ["d/"], [], id="into-an-untracked-folder-with-room"),
        pytest.param(["d/x.php"], ["other.txt", "e/"], [], id="elsewhere"),
        pytest.param([], ["a.php"], [], id="nothing-added"),
    ],
)
def test_what_stands_in_the_way(tmp_path: Path, added: list[str], untracked: list[str], expected: list[str]) -> None:
    """A file or folder at a path the commit writes, or at a folder it writes into, is in the way; one beside them
    is not."""
    for entry in untracked:
        where = tmp_path / entry
        where.parent.mkdir(parents=True, exist_ok=True)
        where.mkdir() if entry.endswith("/") else where.write_text("mine\n")
    assert overwritten_by(tmp_path, added, untracked) == expected


def test_inside_an_untracked_folder_what_stands_on_the_way_counts(tmp_path: Path) -> None:
    """git lists a wholly untracked folder once: inside it, a file where the commit puts a file or a folder, or a
    symbolic link where it puts a folder, is in the way; the folder itself, with room for the file, is not."""
    (tmp_path / "d/e").mkdir(parents=True)
    (tmp_path / "d/e/x.php").write_text("mine\n")
    (tmp_path / "d/f").write_text("mine\n")
    (tmp_path / "d/link").symlink_to("e")
    added = ["d/e/x.php", "d/f/y.php", "d/link/z.php", "d/e/free.php", "d/g/free.php"]
    assert overwritten_by(tmp_path, added, ["d/"]) == ["d/e/x.php", "d/f", "d/link"]


def test_a_refusal_names_a_few_then_how_many_more() -> None:
    """Five paths are named, then how many more; a path with a control character is quoted."""
    assert named(["a", "b"]) == "a, b"
    assert named([f"p{n}" for n in range(8)]) == "p0, p1, p2, p3, p4 and 3 more"
    assert named(["a\nb"]) == "'a\\nb'"
