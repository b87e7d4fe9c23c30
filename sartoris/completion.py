"""Which shell `--install-completion` and `--show-completion` mean: the one named after them, else the one Sartoris
runs in; a shell Typer has no completion script for is bad usage, refused before any rc file is written."""

from __future__ import annotations

from sartoris.errors import UsageError

OPTIONS = ("--install-completion", "--show-completion")
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")  # those Typer has completion scripts for


def shell_optional(args: list[str], valued: set[str]) -> list[str]:
    """The top level's options with a bare --install-completion or --show-completion (nothing, or another option,
    after it) given an empty shell name, which means the shell this runs in: click has no option whose value may
    be left out. `valued`: the options that take the next word as their value."""
    args = list(args)
    at = 0
    while at < len(args) and args[at].startswith("-") and args[at] != "--":  # up to the command (or a stray word)
        if args[at] in OPTIONS and (at + 1 == len(args) or args[at + 1].startswith("-")):
            args[at] += "="
        elif args[at] in valued:
            at += 1  # its value, whatever it looks like
        at += 1
    return args


def shell_for(option: str, named: str) -> str:
    """The shell `option` is for: the one `named`, else the one this runs in; bad usage when Typer has no
    completion for it (Typer itself took any word for the shell it detected, and wrote that one's rc file)."""
    shell = named or _shell_running_this()
    if shell in SHELLS:
        return shell
    what = f"shell {named!r}" if named else f"the shell this runs in ({shell})" if shell else "an unknown shell"
    raise UsageError(f"{option}: no completion for {what}: name one of {', '.join(SHELLS)}")


def _shell_running_this() -> str | None:
    """The name of the shell that started Sartoris (as Typer detects it), or None where it cannot be told."""
    try:
        import shellingham  # type: ignore[import-untyped]  # Typer's own shell detection

        return str(shellingham.detect_shell()[0])
    except (ImportError, OSError):  # not installed (typer-slim), or no shell among the parent processes
        return None
