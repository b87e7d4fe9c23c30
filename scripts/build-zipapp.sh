#!/usr/bin/env bash
# Builds dist/sartoris.pyz: one file holding Sartoris and every dependency, runnable as `python3 sartoris.pyz`
# or `./sartoris.pyz` with a Python of the same minor version as the one that built it (cryptography's cffi
# backend is compiled per Python version) and nothing else installed.
#
#   scripts/build-zipapp.sh [-o OUTPUT]          (or ZIPAPP_OUT=OUTPUT; default dist/sartoris.pyz)
#
# PYTHON picks the interpreter (default python3): it sets the pyz's Python version. Built with shiv, which
# unpacks the dependencies once per build into a cache folder on first run; our own __main__.py picks that
# folder so a clean, empty, missing or read-only HOME still works (order: $SHIV_ROOT,
# $XDG_CACHE_HOME/sartoris/zipapp, ~/.cache/sartoris/zipapp when HOME exists (a missing HOME is never created),
# then a private $TMPDIR/sartoris-zipapp-<uid>). A build's first run there removes what other builds of the same
# file name unpacked, unless a running sartoris holds it (.<name>_<build>_in_use, a shared lock each run takes).
#
# What goes in is the work tree's copy of the package (tracked and untracked-but-not-ignored files), plus a
# generated sartoris/_build.py carrying the commit, "-dirty" when the packed files differ from that commit.
# The build is reproducible: the same sources and dependency versions give the same bytes (timestamps come
# from SOURCE_DATE_EPOCH, default the commit's time). Dependencies are resolved at build time; set
# PIP_CONSTRAINT to pin them.
set -euo pipefail

SHIV_VERSION=1.0.8  # pinned: our __main__.py hands over to shiv's bootstrap module, an internal interface
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
OUT=${ZIPAPP_OUT:-$ROOT/dist/sartoris.pyz}

die() { echo "build-zipapp: $*" >&2; exit 2; }
say() { echo "build-zipapp: $*" >&2; }

while (($#)); do
    case $1 in
        -o|--output) (($# >= 2)) || die "$1 needs a path"; OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,19s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (usage: build-zipapp.sh [-o OUTPUT])" ;;
    esac
done
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac

command -v "$PYTHON" >/dev/null || die "no Python at PYTHON=$PYTHON"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PYTHON is older than Python 3.11"

# --- the build tools (shiv, setuptools) in a venv of their own, kept between builds -----------------------
tools_key=$("$PYTHON" -c 'import hashlib, sys
print(f"py{sys.version_info[0]}.{sys.version_info[1]}-" + hashlib.sha256(sys.base_prefix.encode()).hexdigest()[:8])')
TOOLS=$ROOT/build/zipapp-tools/$tools_key
mkdir -p "$ROOT/build/zipapp-tools"
(
    flock 9  # two builds at once (make zipapp beside the test suite) must not both create the venv
    if [ ! -e "$TOOLS/.shiv-$SHIV_VERSION" ]; then
        say "creating build tools in ${TOOLS#"$ROOT"/}"
        rm -rf "$TOOLS"
        "$PYTHON" -m venv "$TOOLS"
        "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check \
            "shiv==$SHIV_VERSION" "setuptools>=68" wheel
        touch "$TOOLS/.shiv-$SHIV_VERSION"
    fi
) 9>"$ROOT/build/zipapp-tools/.lock"

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/sartoris-zipapp.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
SRC=$STAGE/src
mkdir -p "$SRC"

# --- stage the sources and stamp the commit ---------------------------------------------------------------
PACKED=(pyproject.toml README.md sartoris)
commit=unknown
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    while IFS= read -r -d '' file; do
        [ -f "$ROOT/$file" ] || continue  # a tracked file deleted in the work tree
        [ "$file" = sartoris/_build.py ] && continue
        mkdir -p "$SRC/$(dirname "$file")"
        cp -p "$ROOT/$file" "$SRC/$file"
    done < <(git -C "$ROOT" ls-files -z --cached --others --exclude-standard -- "${PACKED[@]}")
    commit=$(git -C "$ROOT" rev-parse --short HEAD)
    if [ -n "$(git -C "$ROOT" --no-optional-locks status --porcelain -- "${PACKED[@]}")" ]; then
        commit=$commit-dirty
    fi
    : "${SOURCE_DATE_EPOCH:=$(git -C "$ROOT" log -1 --format=%ct HEAD)}"
else
    cp -p "$ROOT/pyproject.toml" "$ROOT/README.md" "$SRC/"
    mkdir -p "$SRC/sartoris"
    find "$ROOT/sartoris" -maxdepth 1 -type f -name '*.py' ! -name _build.py -exec cp -p {} "$SRC/sartoris/" \;
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-315532800}
cat >"$SRC/sartoris/_build.py" <<EOF
"""Written by scripts/build-zipapp.sh into the copy of Sartoris packed in the zipapp; never in a checkout."""

COMMIT = "$commit"
EOF

# --- install Sartoris and its dependencies into a site-packages of their own ------------------------------
SITE=$STAGE/site-packages
say "installing sartoris ($commit) and its dependencies with $("$TOOLS/bin/python" -V)"
"$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile --no-build-isolation \
    --target "$SITE" "$SRC"
# Nothing the zipapp runs needs these, and each would make two builds of the same sources differ:
# console scripts carry the build venv's path, direct_url.json the staging folder's.
rm -rf "${SITE:?}/bin"
find "$SITE" \( -name __pycache__ -o -name direct_url.json \) -prune -exec rm -rf {} +
find "$SITE" -path '*.dist-info/RECORD' -exec sed -i -e '/\/direct_url\.json,/d' -e '/^\(\.\.\/\)*bin\//d' {} +

# --- pack ------------------------------------------------------------------------------------------------
# --compile-pyc: the first run, which unpacks, also compiles every dependency (2.2 s instead of 1.3 s here, once
# per build). Python would cache the bytecode of what it imports by itself, except under PYTHONDONTWRITEBYTECODE
# (set in many container images): there every start compiled asyncssh, cryptography's wrappers, GitPython and
# Typer again, 0.68 s per command instead of 0.34 s.
"$TOOLS/bin/shiv" --site-packages "$SITE" --entry-point sartoris.launch:run --python '/usr/bin/env python3' \
    --reproducible --compile-pyc --output-file "$STAGE/shiv.pyz" >/dev/null

# shiv's own __main__.py unpacks into ~/.shiv and fails with a traceback when HOME cannot be written (a system
# user's /nonexistent, a read-only HOME). Ours (scripts/zipapp_main.py) picks a folder that works (see the
# header), then hands over to shiv's bootstrap unchanged.
cp "$ROOT/scripts/zipapp_main.py" "$STAGE/__main__.py"
"$TOOLS/bin/python" - "$STAGE/shiv.pyz" "$STAGE/__main__.py" "$STAGE/sartoris.pyz" <<'EOF'
"""Copy shiv's archive entry by entry (same order, times and modes), swapping in our __main__.py."""
import os
import shutil
import sys
import zipfile

source, main_py, target = sys.argv[1:]
with open(source, "rb") as f:
    shebang = f.readline()
with zipfile.ZipFile(source) as zin, open(target, "wb") as out:
    out.write(shebang)
    with zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            if info.filename == "__main__.py":
                with open(main_py, "rb") as f:
                    zout.writestr(info, f.read())
            else:
                with zin.open(info) as src, zout.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst)
shutil.copymode(source, target)
EOF

mkdir -p "$(dirname "$OUT")"
mv -f "$STAGE/sartoris.pyz" "$OUT.tmp.$$"
mv -f "$OUT.tmp.$$" "$OUT"  # atomic within the output folder: a running copy never sees half a file
say "$OUT ($(du -h "$OUT" | cut -f1), sartoris $commit)"
