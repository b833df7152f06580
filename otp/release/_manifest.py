"""Release snapshots on disk: `_build/releases/<vsn>/` with the code (`lib/`) and a manifest
of its modules (content hashes) and applications, plus `RELEASES.json`, each version's status.

    _build/releases/RELEASES.json       {"name": ..., "releases": [{"vsn", "status", "note"}]}
    _build/releases/1.0.0/manifest.json {"name", "vsn", "spec", "modules", "applications"}
    _build/releases/1.0.0/lib/...       the project's packages, as they were built

Everything is msgspec JSON (never pickle). A manifest whose files do not match their hashes
is refused, naming the file.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from .._app import Application
from ..code._modules import content_hash
from ._spec import Load, Release, ReleaseError, RestartApplication, Update

__all__ = [
    "AppEntry",
    "Manifest",
    "ModuleEntry",
    "ReleaseState",
    "Releases",
    "build",
    "dependency_order",
    "import_graph",
    "importers",
    "read_manifest",
    "read_releases",
    "release_dir",
    "releases_lock",
    "write_releases",
]

Status = Literal["unpacked", "current", "permanent", "old"]
FORMAT: Final = 1


class ModuleEntry(msgspec.Struct, frozen=True):
    name: str
    path: str  # relative to lib/
    hash: str


class AppEntry(msgspec.Struct, frozen=True):
    name: str
    vsn: str
    description: str
    applications: list[str]
    env: dict[str, Any]
    # previous vsn -> steps, each {"update": module, "extra": x}, {"load": module} or
    # {"restart_application": name}
    appup: dict[str, list[dict[str, Any]]] = msgspec.field(default_factory=dict)


class Manifest(msgspec.Struct, frozen=True):
    name: str
    vsn: str
    spec: str  # "package.module:attr" of the Release, importable from lib/
    modules: list[ModuleEntry]
    applications: list[AppEntry]  # in start order
    built_at: float
    format: int = FORMAT

    def module_hashes(self) -> dict[str, str]:
        """The content hash of each module of the snapshot, by module name."""
        return {m.name: m.hash for m in self.modules}

    def app(self, name: str) -> AppEntry | None:
        """The entry of application `name`, or None when the release has none.

        Args:
            name: An application name.

        Returns:
            Its `AppEntry`, or None.
        """
        return next((a for a in self.applications if a.name == name), None)


class ReleaseState(msgspec.Struct):
    vsn: str
    status: Status
    note: str = ""


class Releases(msgspec.Struct):
    name: str
    releases: list[ReleaseState] = msgspec.field(default_factory=list)

    def get(self, vsn: str) -> ReleaseState | None:
        return next((r for r in self.releases if r.vsn == vsn), None)

    def with_status(self, status: Status) -> ReleaseState | None:
        return next((r for r in self.releases if r.status == status), None)

    def set(self, vsn: str, status: Status, note: str = "") -> None:
        state = self.get(vsn)
        if state is None:
            self.releases.append(ReleaseState(vsn, status, note))
        else:
            state.status, state.note = status, note


_manifest_decoder = msgspec.json.Decoder(Manifest)
_releases_decoder = msgspec.json.Decoder(Releases)


def release_dir(build_dir: Path, vsn: str) -> Path:
    return build_dir / "releases" / vsn


def _releases_file(build_dir: Path) -> Path:
    return build_dir / "releases" / "RELEASES.json"


def read_releases(build_dir: Path) -> Releases | None:
    path = _releases_file(build_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ReleaseError(("unreadable", str(path)), f"cannot read {path}: {exc}") from exc
    try:
        return _releases_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ReleaseError(("malformed", str(path)), f"{path} is malformed: {exc}") from exc


@contextlib.contextmanager
def releases_lock(build_dir: Path) -> Iterator[None]:
    """Hold RELEASES.json for a read-change-write (a build and a running node both write
    it; each reads it again under the lock)."""
    path = build_dir / "releases" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_releases(build_dir: Path, releases: Releases) -> None:
    """Write RELEASES.json whole or not at all (a rename over the old one)."""
    path = _releases_file(build_dir)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(releases), indent=2))
    os.replace(tmp, path)


def read_manifest(build_dir: Path, vsn: str, *, verify: bool = True) -> Manifest:
    """The manifest of release `vsn`; with `verify`, every module file is checked against
    its hash. A missing or broken release is a ReleaseError naming what is wrong."""
    where = release_dir(build_dir, vsn)
    path = where / "manifest.json"
    if not where.is_dir():
        raise ReleaseError(("unknown_release", vsn), f"no release {vsn!r}: {where} does not exist")
    try:
        manifest = _manifest_decoder.decode(path.read_bytes())
    except OSError as exc:
        raise ReleaseError(
            ("bad_release", vsn), f"release {vsn!r}: cannot read {path}: {exc}"
        ) from exc
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ReleaseError(
            ("bad_release", vsn), f"release {vsn!r}: {path} is malformed: {exc}"
        ) from exc
    if manifest.vsn != vsn:
        raise ReleaseError(
            ("bad_release", vsn), f"release {vsn!r}: its manifest says version {manifest.vsn!r}"
        )
    if verify:
        lib = where / "lib"
        for entry in manifest.modules:
            file = lib / entry.path
            try:
                digest = content_hash(file.read_bytes())
            except OSError as exc:
                raise ReleaseError(
                    ("missing_file", vsn, entry.path),
                    f"release {vsn!r}: module {entry.name} is missing ({file}: {exc.strerror})",
                ) from None
            if digest != entry.hash:
                raise ReleaseError(
                    ("hash_mismatch", vsn, entry.path),
                    f"release {vsn!r}: {file} does not match its manifest (module {entry.name} "
                    "was changed after the build)",
                )
    return manifest


# -- building -------------------------------------------------------------------------------


def build(spec: str, release: Release, root: Path, build_dir: Path) -> Manifest:
    """Snapshot the code of `release` (found at `spec`, "module:attr") into
    `<build_dir>/releases/<vsn>/`: the project's packages under `root` that are imported
    once the spec is, and a manifest. The first release built is the permanent one.

    Args:
        spec: The `"module:attr"` path of the release.
        release: The `Release` found there.
        root: The project's root directory.
        build_dir: The build directory (`_build`).

    Returns:
        The manifest written.

    Raises:
        ReleaseError: `("already_built", vsn)`, `("other_release", name)` (the build
            directory holds another release) or `("outside_project", spec)`.
    """
    target = release_dir(build_dir, release.vsn)
    if target.exists():
        raise ReleaseError(
            ("already_built", release.vsn),
            f"release {release.vsn!r} is already built at {target}: give the new one another "
            "version (a built release is what a running node goes back to)",
        )
    releases = read_releases(build_dir)
    if releases is not None and releases.name != release.name:
        raise ReleaseError(
            ("other_release", releases.name),
            f"{build_dir} holds releases of {releases.name!r}, not {release.name!r}",
        )
    apps = _applications(release)
    tops = _project_tops(root, build_dir)
    module_name = spec.partition(":")[0]
    if module_name.split(".")[0] not in tops:
        raise ReleaseError(
            ("outside_project", spec), f"the release spec {spec!r} is not a module under {root}"
        )
    staging = target.with_name(f".{release.vsn}.building")
    shutil.rmtree(staging, ignore_errors=True)
    lib = staging / "lib"
    lib.mkdir(parents=True)
    for top, source in sorted(tops.items()):
        if source.is_dir():
            shutil.copytree(
                source, lib / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(source, lib / source.name)
    modules = [
        ModuleEntry(name, str(path.relative_to(lib)), content_hash(path.read_bytes()))
        for name, path in sorted(_python_files(lib).items())
    ]
    manifest = Manifest(release.name, release.vsn, spec, modules, apps, time.time())
    (staging / "manifest.json").write_bytes(
        msgspec.json.format(msgspec.json.encode(manifest), indent=2)
    )
    staging.rename(target)
    with releases_lock(build_dir):  # read again: a running node may have written it since
        releases = read_releases(build_dir) or Releases(release.name)
        releases.set(release.vsn, "unpacked" if releases.with_status("permanent") else "permanent")
        write_releases(build_dir, releases)
    return manifest


def _applications(release: Release) -> list[AppEntry]:
    """The release's applications and those they name, each after its dependencies."""
    known = release.all_applications()
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise ReleaseError(("cycle", [*path, name]), f"applications cycle: {(*path, name)}")
        app = known.get(name)
        if app is None:
            raise ReleaseError(
                ("missing_application", name),
                f"release {release.name!r}: application {name!r} is needed but not part of it "
                "(list it, or name it as an Application object)",
            )
        for dep in app.applications:
            visit(dep if isinstance(dep, str) else dep.name, (*path, name))
        order.append(name)

    for app in release.applications:
        visit(app.name, ())
    entries = []
    for name in order:
        app = known[name]
        try:
            env = msgspec.json.decode(msgspec.json.encode(dict(app.env)))
        except (TypeError, msgspec.EncodeError) as exc:
            raise ReleaseError(
                ("bad_env", name),
                f"application {name!r}: its env must be JSON-like to go into a manifest: {exc}",
            ) from None
        deps = [d if isinstance(d, str) else d.name for d in app.applications]
        entries.append(AppEntry(name, app.vsn, app.description, deps, env, _appup(app)))
    return entries


def _appup(app: Application) -> dict[str, list[dict[str, Any]]]:
    """An application's appup as manifest data (steps are data, like Erlang's .appup)."""
    appup: dict[str, list[dict[str, Any]]] = {}
    for frm, steps in dict(app.appup).items():
        data: list[dict[str, Any]] = []
        for step in steps:
            if isinstance(step, Update):
                data.append({"update": step.module, "extra": step.extra})
            elif isinstance(step, Load):
                data.append({"load": step.module})
            elif isinstance(step, RestartApplication):
                data.append({"restart_application": step.application})
            else:
                raise ReleaseError(
                    ("bad_appup", app.name, repr(step)),
                    f"application {app.name!r}: appup[{frm!r}] holds {step!r}; expected "
                    "otp.release.update(...), load(...) or restart_application(...)",
                )
        appup[str(frm)] = data
    try:
        return msgspec.json.decode(msgspec.json.encode(appup))  # type: ignore[no-any-return]
    except (TypeError, msgspec.EncodeError) as exc:
        raise ReleaseError(
            ("bad_appup", app.name),
            f"application {app.name!r}: an appup extra must be JSON-like: {exc}",
        ) from None


def _project_tops(root: Path, build_dir: Path) -> dict[str, Path]:
    """The top-level packages and modules of the project at `root` that are imported now:
    name -> directory or file (the interpreter's own and the build directory left out)."""
    root = root.resolve()
    skip = [build_dir.resolve(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]
    tops: dict[str, Path] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or name.startswith("__"):
            continue
        path = Path(file).resolve()
        if not path.is_relative_to(root) or any(path.is_relative_to(s) for s in skip):
            continue
        top = name.split(".")[0]
        top_module = sys.modules.get(top)
        top_file = getattr(top_module, "__file__", None)
        if isinstance(top_file, str):
            top_path = Path(top_file).resolve()
            tops[top] = top_path.parent if top_path.name == "__init__.py" else top_path
        else:  # a namespace package (no __init__.py): the directory under root it spans
            spans = [Path(d).resolve() for d in getattr(top_module, "__path__", ())]
            inside = [d for d in spans if d.is_relative_to(root)]
            if inside:
                tops[top] = inside[0]
    return tops


def _python_files(lib: Path) -> dict[str, Path]:
    """Module name -> file for every .py file under `lib`."""
    found = {}
    for path in lib.rglob("*.py"):
        parts = list(path.relative_to(lib).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts:
            found[".".join(parts)] = path
    return found


def import_graph(lib: Path, manifest: Manifest) -> dict[str, set[str]]:
    """Each module of the release -> the modules of the release it imports (read from the
    source in `lib`)."""
    paths = {m.name: lib / m.path for m in manifest.modules}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        deps: set[str] = set()
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):
            tree = None
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(name, node.module, node.level, path.name == "__init__.py")
                deps.add(base)
                deps.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {d for d in deps if d in paths and d != name}
    return graph


def importers(changed: Iterable[str], graph: dict[str, set[str]]) -> set[str]:
    """`changed` and every module that imports one of them, directly or not: a name it
    bound with `from m import x` holds the old `x` until it is loaded again too."""
    found = set(changed)
    grew = True
    while grew:
        grew = False
        for name, deps in graph.items():
            if name not in found and deps & found:
                found.add(name)
                grew = True
    return found


def dependency_order(names: Iterable[str], graph: dict[str, set[str]]) -> list[str]:
    """`names` ordered so that a module comes after the modules it imports; a cycle keeps
    name order among its members."""
    wanted = sorted(set(names))
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        visiting.add(name)
        for dep in sorted(graph.get(name, set()) & set(wanted)):
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


def _absolute(module: str, target: str | None, level: int, is_package: bool) -> str:
    if level == 0:
        return target or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)
