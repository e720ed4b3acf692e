"""Put the WordNet 3.0 database where nltk finds it, from Debian's `wordnet-base` packages.

nltk's ``meteor_score`` (the METEOR that Hugging Face ``evaluate`` wraps) matches synonyms through
WordNet; nltk ships no data and its downloader fetches from a host that is not a package registry.
Debian's ``wordnet-base`` and ``wordnet-sense-index`` hold the same WordNet 3.0 database as text files.
This takes them without root: from ``/usr/share/wordnet`` when both packages are installed, otherwise
with ``apt-get download`` + ``dpkg-deb -x`` into a temporary folder. The one file nltk's reader needs
that Debian leaves out, ``lexnames`` (the 45 lexicographer file numbers), is written from the table in
the package's own ``lexnames(5WN)`` manual page. ``make`` runs it for the project's virtualenv:

    python -m zoo.evaluation.wordnet .venv/share/nltk_data    # -> .venv/share/nltk_data/corpora/wordnet
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGES = ("wordnet-base", "wordnet-sense-index")
SYSTEM_ROOT = Path("/")
MANPAGE = Path("usr/share/man/man5/lexnames.5WN.gz")
DATABASE = Path("usr/share/wordnet")
CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
NEEDED = ("data.noun", "index.noun", "noun.exc", "data.verb", "data.adj", "data.adv", "index.sense")


def lexnames_from_manpage(text: str) -> str:
    """The ``lexnames`` file: ``NN<TAB>name<TAB>category`` for each row of the manual page's table."""
    rows = re.findall(r"^(\d\d)\t([a-z]+\.[A-Za-z]+)\s*\t", text, flags=re.MULTILINE)
    if [int(n) for n, _ in rows] != list(range(45)):
        raise SystemExit(f"unexpected lexnames(5WN) table: {len(rows)} rows")
    return "".join(f"{n}\t{name}\t{CATEGORY[name.split('.')[0]]}\n" for n, name in rows)


def _download(package: str, workdir: Path) -> None:
    """``apt-get download``; with no (or a stale) package list, ``apt-get update`` first when root."""
    command = ["apt-get", "download", package]
    if subprocess.run(command, cwd=workdir, capture_output=True).returncode == 0:
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"`apt-get download {package}` failed ({done.stderr.strip()[-300:]}); run `apt-get update` as root, "
            f"or install {' '.join(PACKAGES)} and run this again"
        )


def _unpacked_packages(workdir: Path) -> Path:
    """``apt-get download`` the packages into ``workdir`` and unpack them into one root; returns it."""
    root = workdir / "root"
    for package in PACKAGES:
        _download(package, workdir)
        deb = next(workdir.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def _installed_on_system() -> bool:
    return (
        all((SYSTEM_ROOT / DATABASE / name).is_file() for name in NEEDED)
        and (SYSTEM_ROOT / MANPAGE).is_file()
    )


def install(nltk_data: Path) -> Path:
    """Copy the database into ``nltk_data/corpora/wordnet`` (with ``lexnames``); returns that folder."""
    target = nltk_data / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = SYSTEM_ROOT if _installed_on_system() else _unpacked_packages(Path(tmp))
        for path in (root / DATABASE).iterdir():
            shutil.copy2(path, target / path.name)
        manpage = gzip.decompress((root / MANPAGE).read_bytes()).decode("utf-8", "replace")
    (target / "lexnames").write_text(lexnames_from_manpage(manpage))
    missing = [name for name in NEEDED if not (target / name).is_file()]
    if missing:
        raise SystemExit(f"WordNet in {target} is incomplete: missing {missing}")
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(f"WordNet 3.0 (Debian {', '.join(PACKAGES)}) installed in {install(Path(sys.argv[1]))}")
