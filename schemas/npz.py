"""Reading the authors' `.npz` files (np.savez of dicts, object arrays) without letting a pickle run code.

The authors load their files with `np.load(allow_pickle=True)`, which unpickles anything: a tampered file
would run code. Here an object array is unpickled through an allow-list of what an array of dicts, lists and
strings needs, and every other array is read by numpy with pickles refused. By hand because numpy's loader
has only an on/off switch for pickles, no allow-list. Shared by the wheel metric (metrics/wheel.py) and the
import backend's readers (backends/import_files.py).
"""

from __future__ import annotations

import ast
import io
import pickle
import zipfile
from pathlib import Path
from typing import IO, Any


class _AllowListUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "list"),
        ("builtins", "dict"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing {module}.{name}: the authors' npz files hold only arrays, dicts, lists and strings"
            )
        return super().find_class(module, name)


def read_npy(blob: IO[bytes]) -> Any:
    """One `.npy` stream as an ndarray: an object array (dtype `|O`) unpickled through the allow-list
    (pickle.UnpicklingError naming a class outside it), any other array by numpy with pickles refused."""
    import numpy as np

    data = io.BytesIO(blob.read())
    major, _ = np.lib.format.read_magic(data)
    length = int.from_bytes(data.read(2 if major == 1 else 4), "little")
    header = ast.literal_eval(data.read(length).decode("utf-8" if major >= 3 else "latin1"))
    if header.get("descr") == "|O":
        value = _AllowListUnpickler(data, encoding="latin1").load()
        if isinstance(value, np.ndarray):
            return value
        # A stream that pickles a bare object (a dict, a list) instead of an array: held as numpy would hold it, a
        # 0-d object array, so that every caller may ask for its dtype and shape.
        wrapped = np.empty((), dtype=object)
        wrapped[()] = value
        return wrapped
    data.seek(0)
    return np.lib.format.read_array(data, allow_pickle=False)


def read_npz(path: str | Path) -> dict[str, Any]:
    """Every array of an `.npz` by its key, each read as `read_npy` does. zipfile.BadZipFile when the file is not
    an archive; pickle.UnpicklingError when an object array holds a class outside the allow-list."""
    with zipfile.ZipFile(path) as archive:
        arrays = {}
        for member in archive.namelist():
            if member.endswith(".npy"):
                with archive.open(member) as blob:
                    arrays[member.removesuffix(".npy")] = read_npy(blob)
        return arrays
