"""The plan of an install: what differs between the running release and the new one.

Derived from the two manifests: every changed module that is loaded is upgraded (its
processes switched, `code_change` called), in dependency order; applications only in the new
release are started, those only in the old one stopped; env changes are announced to
running applications by `config_change`. An application's `appup` entry for the version
it upgrades from replaces the derived steps for the modules it names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._manifest import Manifest, dependency_order, import_graph, importers
from ._spec import Load, ReleaseError, RestartApplication, Update

__all__ = ["EnvChange", "Plan", "derive"]


@dataclass(frozen=True, slots=True)
class EnvChange:
    """What `config_change(changed, new, removed)` of one application is told."""

    changed: dict[str, Any]
    new: dict[str, Any]
    removed: list[str]


@dataclass(slots=True)
class Plan:
    """What an install will do, in this order: stop `stop_apps`, switch the code (`update`
    modules with their processes, `load` modules alone), announce `env`, restart
    `restart_apps`, start `start_apps`."""

    from_vsn: str
    to_vsn: str
    downgrade: bool
    update: list[Update] = field(default_factory=list)
    load: list[str] = field(default_factory=list)
    steps: list[Update | Load] = field(default_factory=list)  # both, in dependency order
    added_modules: list[str] = field(default_factory=list)
    removed_modules: list[str] = field(default_factory=list)
    stop_apps: list[str] = field(default_factory=list)
    start_apps: list[str] = field(default_factory=list)
    restart_apps: list[str] = field(default_factory=list)
    env: dict[str, EnvChange] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The plan as plain data (what `otp release check` prints).

        Returns:
            A dict of plain values (versions, module lists, applications, env changes).
        """
        return {
            "from": self.from_vsn,
            "to": self.to_vsn,
            "downgrade": self.downgrade,
            "update": [u.module for u in self.update],
            "load": list(self.load),
            "added_modules": list(self.added_modules),
            "removed_modules": list(self.removed_modules),
            "stop_applications": list(self.stop_apps),
            "start_applications": list(self.start_apps),
            "restart_applications": list(self.restart_apps),
            "config_change": {
                app: {"changed": sorted(c.changed), "new": sorted(c.new), "removed": c.removed}
                for app, c in self.env.items()
            },
        }


def derive(
    old: Manifest,
    new: Manifest,
    new_lib: Path,
    loaded: set[str],
    appups: Mapping[str, Mapping[str, Sequence[Any]]],
    *,
    downgrade: bool,
) -> Plan:
    """The plan from release `old` to `new` (whose code is in `new_lib`); `loaded` are the
    modules imported now; `appups` each new application's appup (ignored on a downgrade)."""
    plan = Plan(old.vsn, new.vsn, downgrade)
    old_hashes, new_hashes = old.module_hashes(), new.module_hashes()
    changed = {m for m in new_hashes if m in old_hashes and new_hashes[m] != old_hashes[m]}
    plan.added_modules = sorted(set(new_hashes) - set(old_hashes))
    plan.removed_modules = sorted(set(old_hashes) - set(new_hashes))
    steps: dict[str, Update | Load] = {}
    if not downgrade:
        for entry in new.applications:
            previous = old.app(entry.name)
            if previous is None or previous.vsn == entry.vsn:
                continue
            for step in appups.get(entry.name, {}).get(previous.vsn, ()):
                if isinstance(step, RestartApplication):
                    if new.app(step.application) is None:
                        raise _bad_step(entry.name, step, "no such application in the release")
                    if step.application not in plan.restart_apps:
                        plan.restart_apps.append(step.application)
                elif isinstance(step, Update | Load):
                    if step.module not in new_hashes:
                        raise _bad_step(entry.name, step, "no such module in the release")
                    steps[step.module] = step
                else:
                    raise _bad_step(entry.name, step, "not an instruction")
    graph = import_graph(new_lib, new)
    # a module that imports a changed one is loaded again too (its `from m import x` names)
    changed = importers(changed, graph) & set(old_hashes)
    for name in dependency_order(changed | set(steps), graph):
        step = steps.get(name, Update(name))
        if name not in loaded:
            continue  # not imported: the new code is what an import will find
        if isinstance(step, Load):
            plan.load.append(name)
        else:
            plan.update.append(step)
        plan.steps.append(step)
    old_apps = [a.name for a in old.applications]
    new_apps = [a.name for a in new.applications]
    plan.stop_apps = [name for name in reversed(old_apps) if name not in new_apps]
    plan.start_apps = [name for name in new_apps if name not in old_apps]
    for entry in new.applications:
        previous = old.app(entry.name)
        if previous is None or previous.env == entry.env:
            continue
        plan.env[entry.name] = EnvChange(
            {k: v for k, v in entry.env.items() if k in previous.env and previous.env[k] != v},
            {k: v for k, v in entry.env.items() if k not in previous.env},
            [k for k in previous.env if k not in entry.env],
        )
    return plan


def _bad_step(app: str, step: Any, why: str) -> ReleaseError:
    return ReleaseError(
        ("bad_appup", app, repr(step)),
        f"application {app!r}: its appup step {step!r} is invalid: {why}",
    )
