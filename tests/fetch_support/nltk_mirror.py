"""A local nltk data index (file:// URLs) with one small package, to exercise nltk's real downloader.

The package holds placeholder files, not the real punkt_tab model: the test checks how fetch
installs and records a package, not tokenization. nltk 3.9+ verifies size, sha256 and the unzipped
size from the index, so those are computed from the bytes written here.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path


def make_mirror(root: Path, package: str = "punkt_tab", subdir: str = "tokenizers") -> str:
    """Write index.xml + <package>.zip under root; return the index URL."""
    root.mkdir(parents=True, exist_ok=True)
    members = {f"{package}/english/collocations.tab": b"mr.\tsmith\n", f"{package}/README": b"placeholder\n"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    archive = root / f"{package}.zip"
    archive.write_bytes(buf.getvalue())
    data = archive.read_bytes()
    index = root / "index.xml"
    index.write_text(
        '<?xml version="1.0"?>\n<nltk_data><packages>\n'
        f'<package id="{package}" name="{package}" subdir="{subdir}" url="{archive.as_uri()}" '
        f'size="{len(data)}" unzipped_size="{sum(len(v) for v in members.values())}" '
        f'checksum="{hashlib.md5(data).hexdigest()}" sha256_checksum="{hashlib.sha256(data).hexdigest()}" unzip="1"/>\n'
        "</packages><collections/></nltk_data>\n",
        encoding="utf-8",
    )
    return index.as_uri()
