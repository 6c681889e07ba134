"""Locate the QUIP command-line programs (`quip`, `gap_fit`) that ship inside the quippy-ase wheel.

The `quip` executable of the quippy-ase wheels 0.10.2 and 0.10.3 crashes at start-up (SIGSEGV): the wheel
repair step left a read-only LOAD segment sharing its first page with the end of a writable one, so the
loader maps that page read-only and the first relocation write faults. :func:`quip_executable` returns a
working program: the shipped one if it starts, otherwise a copy with that one segment flag corrected
(the page becomes writable; nothing else changes), kept in a cache folder and run with the wheel's
libraries on ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import struct
import subprocess
import tempfile

_PT_LOAD = 1
_PF_W = 2


def wheel_program(name: str) -> pathlib.Path:
    """Return the path of the native program ``name`` inside the installed quippy package."""
    import quippy

    return pathlib.Path(quippy.__path__[0]) / name


def wheel_library_path() -> str:
    """Return the folders holding the shared libraries of the quippy-ase wheel, ``:``-separated."""
    import quippy

    package = pathlib.Path(quippy.__path__[0])
    folders = [package, package.parent / 'quippy_ase.libs']
    return ':'.join(str(folder) for folder in folders if folder.is_dir())


def _starts(path: pathlib.Path, env: dict | None = None) -> bool:
    """Return whether the program starts (prints QUIP's greeting) instead of crashing."""
    try:
        result = subprocess.run(
            [str(path)], capture_output=True, timeout=60, env=env, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode >= 0 and b'libAtoms' in result.stdout + result.stderr


def repair_overlapping_segments(data: bytes) -> tuple[bytes, int]:
    """Make a LOAD segment writable when it starts on the page where a writable LOAD segment ends.

    Pure function on the bytes of a 64-bit little-endian ELF file; returns the new bytes and how many
    segments were changed.
    """
    buffer = bytearray(data)
    if buffer[:4] != b'\x7fELF' or buffer[4] != 2 or buffer[5] != 1:
        raise ValueError('not a 64-bit little-endian ELF file')
    phoff = struct.unpack_from('<Q', buffer, 0x20)[0]
    phentsize, phnum = struct.unpack_from('<HH', buffer, 0x36)
    loads = []
    for index in range(phnum):
        offset = phoff + index * phentsize
        ptype, pflags = struct.unpack_from('<II', buffer, offset)
        vaddr = struct.unpack_from('<Q', buffer, offset + 16)[0]
        memsz = struct.unpack_from('<Q', buffer, offset + 40)[0]
        if ptype == _PT_LOAD:
            loads.append((offset, pflags, vaddr, memsz))
    changed = 0
    for (_, prev_flags, prev_vaddr, prev_memsz), (offset, flags, vaddr, _) in zip(loads, loads[1:]):
        shares_page = (prev_vaddr + prev_memsz - 1) // 4096 == vaddr // 4096
        if prev_flags & _PF_W and shares_page and not flags & _PF_W:
            struct.pack_into('<I', buffer, offset + 4, flags | _PF_W)
            changed += 1
    return bytes(buffer), changed


def quip_executable(cache: str | pathlib.Path | None = None) -> tuple[str, dict[str, str]]:
    """Return a working `quip` program and the environment variables it needs.

    :param cache: folder for the repaired copy (default: a folder in the system's temporary directory).
    :raises RuntimeError: if neither the shipped program nor a repaired copy starts.
    """
    shipped = wheel_program('quip')
    if _starts(shipped):
        return str(shipped), {}
    folder = pathlib.Path(cache or pathlib.Path(tempfile.gettempdir()) / 'aiida-mlpot-quip')
    folder.mkdir(parents=True, exist_ok=True)
    repaired = folder / 'quip'
    env = {'LD_LIBRARY_PATH': wheel_library_path()}
    full_env = {**os.environ, **env}
    if not repaired.is_file() or not _starts(repaired, full_env):
        data, changed = repair_overlapping_segments(shipped.read_bytes())
        if not changed:
            raise RuntimeError(f'{shipped} does not start and has no segment layout this repair knows')
        partial = folder / 'quip.partial'
        partial.write_bytes(data)
        shutil.copymode(shipped, partial)
        partial.replace(repaired)
        if not _starts(repaired, full_env):
            raise RuntimeError(f'{shipped} does not start, nor does the repaired copy {repaired}')
    return str(repaired), env


def quip_evaluate(xml_path: str | pathlib.Path, frames: list, workdir: str | pathlib.Path) -> list:
    """Evaluate ``frames`` (ase.Atoms) with the `quip` program and the GAP ``xml_path``; return quip's frames.

    The returned Atoms carry quip's energy (``get_potential_energy()``) and its forces in ``arrays['force']``.
    An independent check of the quippy calculator: same library, but quip's own reading and output.
    """
    import io

    from ase.io import read, write

    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    clean = []
    for atoms in frames:
        copy = atoms.copy()
        copy.calc = None
        for key in [k for k in copy.arrays if k not in ('numbers', 'positions')]:
            del copy.arrays[key]
        copy.info = {}
        clean.append(copy)
    write(workdir / 'quip_input.xyz', clean, format='extxyz')
    quip, env = quip_executable()
    result = subprocess.run(
        [quip, 'E=T', 'F=T', 'atoms_filename=quip_input.xyz', f'param_filename={xml_path}'],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    text = '\n'.join(line[3:] for line in result.stdout.splitlines() if line.startswith('AT '))
    return read(io.StringIO(text), index=':', format='extxyz')
