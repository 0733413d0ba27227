"""Putting verified export files in place: whole, together, and over an old file only when asked.

Exports to other runtimes are written and verified in a scratch folder of the system's
temporary folder, so that an export interrupted at any point, even killed, leaves nothing
beside its target. Only verified files are copied next to their targets under hidden
temporary names (the same file system, so that the last step is a rename) and renamed.
"""

import os
import shutil
import uuid


def check_target(path, overwrite, name="`path`"):
    """Raises before any export work when `path` cannot receive a file: a folder, a missing
    parent folder, or an existing file without `overwrite`."""
    if os.path.isdir(path):
        raise ValueError(f"{name}={path!r} is a folder; the export writes a file.")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{name}={path!r}: its folder {parent!r} does not exist.")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(
            f"{path!r} exists; pass overwrite=True to replace it with the verified export."
        )


def put_in_place(files, overwrite):
    """Moves verified files to their targets, all of them or none.

    Args:
        files: `[(source, target), ...]`. The last target is the one a runtime opens (an
            OpenVINO `.xml`, whose `.bin` comes before it): it lands last, so that no reader
            finds it before the files it needs.
        overwrite: whether existing targets may be replaced; without it an existing target
            (even one made while the export ran) raises `FileExistsError` and nothing moves.
            One file replaces the old one in one rename; several are first moved aside, in
            reverse order (the opened file first, so that no reader pairs an old file with a
            new one), and moved back if the move fails halfway.
    """
    token = uuid.uuid4().hex[:8]
    parts, aside, landed = [], [], []
    try:
        for source, target in files:
            parts.append(_hidden(target, f"part-{token}"))
            shutil.copyfile(source, parts[-1])
        if overwrite and len(files) > 1:  # one file is replaced in one rename
            for _, target in reversed(files):
                if os.path.lexists(target):
                    aside.append((_hidden(target, f"old-{token}"), target))
                    os.rename(target, aside[-1][0])
        for part, (_, target) in zip(parts, files):
            if overwrite:
                os.replace(part, target)
            else:
                _rename_without_replacing(part, target)
            landed.append(target)
    except BaseException:
        # Interrupted or refused halfway (Ctrl-C, SIGTERM, a target that appeared): the new
        # files that landed are taken back, as none is usable without the others, and the
        # old ones return.
        for target in landed:
            os.remove(target)
        for old, target in reversed(aside):
            os.rename(old, target)
        aside = []
        raise
    finally:
        for part in parts:
            if os.path.lexists(part):
                os.remove(part)
        for old, _ in aside:
            os.remove(old)


def _hidden(target, suffix):
    folder, base = os.path.split(os.path.abspath(target))
    return os.path.join(folder, f".{base}.{suffix}")


def _rename_without_replacing(part, target):
    # A hard link fails if the target exists, where a rename would replace it.
    try:
        os.link(part, target)
    except FileExistsError:
        raise FileExistsError(
            f"{target!r} appeared while the export ran; pass overwrite=True to replace it."
        ) from None
    except OSError:  # a file system without hard links
        if os.path.lexists(target):
            raise FileExistsError(
                f"{target!r} appeared while the export ran; pass overwrite=True to replace it."
            ) from None
        os.rename(part, target)
        return
    os.remove(part)
