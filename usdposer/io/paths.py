"""Files an asset refers to (glTF buffers and images, MJCF includes and skins) are read only from inside the asset's
own folder: ``data:`` URIs and relative paths that stay inside it are fine; absolute paths, ``..`` escapes (also
through symbolic links or %-encoding) and URL schemes are refused with one line naming the reference."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

from usdposer.errors import InputError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def resolve_inside(source: str | Path, ref: str, what: str, root: str | Path | None = None) -> Path:
    """The file ``ref`` (a relative URI or path written in ``source``) resolved against ``source``'s folder.

    Raises InputError when it names a URL, an absolute path or a file outside ``root`` (default: ``source``'s
    folder). Existence is the caller's to check (its message knows what the file is for)."""
    source = Path(source)
    base = Path(root) if root is not None else source.parent
    text = urllib.parse.unquote(str(ref))
    if _SCHEME.match(text) and not re.match(r"^[A-Za-z]:[\\/]", text):
        raise InputError(f"{source}: {what} {ref!r} is a URL; usdposer reads only files beside the asset "
                         "(download it and refer to it by a relative path)")
    if "\0" in text:
        raise InputError(f"{source}: {what} {ref!r} is not a valid path; fix the reference")
    p = Path(text)
    if p.is_absolute() or text.startswith(("\\", "/")) or re.match(r"^[A-Za-z]:", text):
        raise InputError(f"{source}: {what} {ref!r} is an absolute path, outside the asset's folder; "
                         "refer to files beside the asset by relative paths")
    full = (source.parent / p).resolve()
    if not full.is_relative_to(base.resolve()):
        raise InputError(f"{source}: {what} {ref!r} points outside the asset's folder; "
                         "keep the files it needs beside it")
    return full
