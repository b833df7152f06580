"""What the code server knows of modules: content hashes, versions, and loading new code.

Hashes are of the bytes a module was compiled from, never of bytecode timestamps: a file
rewritten within the same second with the same size is still a different file. Loading
compiles those exact bytes into a fresh module object, so the old one can be put back.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import importlib.util
import linecache
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "ModuleInfo",
    "behaviour_modules",
    "content_hash",
    "defined_in",
    "file_of",
    "info",
    "install",
    "module_hash",
    "module_vsn",
    "note_behaviour",
    "read_source",
    "snapshot",
    "target_class",
]

# the content hash of each module object's source (an old module keeps its own)
_hashes: weakref.WeakKeyDictionary[ModuleType, str] = weakref.WeakKeyDictionary()
_behaviour_modules: set[str] = set()


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """A loaded behaviour module: its name, version, source file and content hash."""

    name: str
    vsn: str
    path: str | None
    hash: str | None


def content_hash(data: bytes) -> str:
    """The content hash of a module's source (sha256, hex)."""
    return hashlib.sha256(data).hexdigest()


def file_of(module: ModuleType) -> Path | None:
    """The source file `module` was loaded from, or None (built in, or made at run time)."""
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) or getattr(module, "__file__", None)
    if not isinstance(origin, str) or not origin.endswith(".py"):
        return None
    return Path(origin)


def read_source(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read()


def module_hash(name: str) -> str | None:
    """The content hash of the code module `name` runs (None: no source to hash). Read once
    per module object, when first asked (a behaviour asks as its class is defined).

    Args:
        name: A module name, as in `sys.modules`.

    Returns:
        The hash in hex, or None (not loaded, no `.py` source, or unreadable).
    """
    module = sys.modules.get(name)
    if module is None:
        return None
    known = _hashes.get(module)
    if known is not None:
        return known
    path = file_of(module)
    if path is None:
        return None
    try:
        digest = content_hash(read_source(path))
    except OSError:
        return None
    _hashes[module] = digest
    return digest


def module_vsn(module: ModuleType) -> str:
    """A module's version: its `__vsn__` when it sets one, else its content hash (16 hex
    digits), else its name."""
    vsn = getattr(module, "__vsn__", None)
    if isinstance(vsn, str):
        return vsn
    digest = module_hash(module.__name__)
    return digest[:16] if digest is not None else module.__name__


def note_behaviour(cls: type) -> None:
    """Record that `cls`'s module defines a behaviour class (GenServer and the others call
    this as a subclass is defined), and hash the module while its source is what runs.

    Args:
        cls: The behaviour class just defined.
    """
    _behaviour_modules.add(cls.__module__)
    module_hash(cls.__module__)


def behaviour_modules() -> set[str]:
    return {name for name in _behaviour_modules if name in sys.modules}


def info(name: str) -> ModuleInfo:
    module = sys.modules[name]
    path = file_of(module)
    return ModuleInfo(
        name, module_vsn(module), None if path is None else str(path), module_hash(name)
    )


def install(name: str, path: Path, data: bytes) -> tuple[ModuleType, ModuleType]:
    """Compile `data` as the new code of module `name` and put it in `sys.modules` (and on
    its package); `(old, new)`. If running it raises, the old module is put back and the
    exception goes on."""
    old = sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=getattr(old, "__path__", None)
    )
    if spec is None:
        raise ImportError(f"cannot load {name} from {path}", name=name, path=str(path))
    new = importlib.util.module_from_spec(spec)
    prefix = f"{name}."
    for key, module in list(sys.modules.items()):  # a package keeps its loaded submodules
        if key.startswith(prefix) and "." not in key[len(prefix) :]:
            setattr(new, key[len(prefix) :], module)
    code = compile(data, str(path), "exec", dont_inherit=True)
    _hashes[new] = content_hash(data)
    linecache.cache.pop(str(path), None)  # tracebacks show the new lines, not cached old ones
    put(name, new)
    try:
        exec(code, new.__dict__)
    except BaseException:
        put(name, old)
        raise
    return old, new


def put(name: str, module: ModuleType) -> None:
    """Make `module` the one `import name` finds, and its package's attribute."""
    sys.modules[name] = module
    package, _, child = name.rpartition(".")
    parent = sys.modules.get(package) if package else None
    if parent is not None:
        setattr(parent, child, module)


def target_class(cls: type) -> type:
    """The class a process running `cls` switches to at a code change: the class of the same
    name in the module now loaded under `cls.__module__`; `cls` itself when that module is
    the one `cls` comes from.

    Args:
        cls: The class the process runs.

    Returns:
        The class to switch to.

    Raises:
        LookupError: Newer code no longer defines it.
    """
    module = sys.modules.get(cls.__module__)
    found: Any = module
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type):
        return found
    if module is None or "<locals>" in cls.__qualname__ or defined_in(cls, module):
        return cls
    raise LookupError(f"the new code of {cls.__module__} defines no class {cls.__qualname__}")


def defined_in(cls: type, module: ModuleType, unknown: bool = True) -> bool:
    """True when `cls` was made by running `module` (not an older copy of it); `unknown`
    when the class has no function to tell by."""
    for value in vars(cls).values():
        func = getattr(value, "__func__", value)
        globals_ = getattr(func, "__globals__", None)
        if globals_ is not None:
            return globals_ is vars(module)
    return unknown


def snapshot(state: Any) -> Any:
    """A copy of `state` to roll back to: a deep copy, whose parts that cannot be copied (a
    socket, say) are kept as they are: a code_change that changes those in place cannot be
    undone. The event loop is never copied.

    Args:
        state: A process's state.

    Returns:
        The copy.
    """
    memo: dict[int, Any] = {}
    try:
        loop = asyncio.get_running_loop()
        memo[id(loop)] = loop
    except RuntimeError:
        pass
    try:
        return copy.deepcopy(state, memo)
    except Exception:
        return _by_part(state)


def _by_part(value: Any) -> Any:
    """A copy of the containers of `value` with each part copied on its own."""
    kind = type(value)
    if kind is dict:
        return {key: _by_part(item) for key, item in value.items()}
    if kind is list:
        return [_by_part(item) for item in value]
    if kind is tuple:
        return tuple(_by_part(item) for item in value)
    try:
        return copy.deepcopy(value)
    except Exception:
        return value
