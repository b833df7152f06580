"""The package layout rules: the public surface, and imports pointing down only."""

from __future__ import annotations

import ast
from pathlib import Path

import otp

ROOT = Path(__file__).resolve().parents[2]


def test_otp_never_imports_behaviours() -> None:
    for path in (ROOT / "otp").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith("behaviours"), f"{path} imports {name}"


def test_all_is_sorted_and_every_name_exists() -> None:
    assert otp.__all__ == sorted(otp.__all__, key=lambda n: (not n.isupper(), n))
    for name in otp.__all__:
        assert hasattr(otp, name), name


def test_public_names_report_the_public_module() -> None:
    for name in ("spawn", "receive", "Pid", "ProcessInfo", "TimerRef", "run"):
        assert getattr(otp, name).__module__ == "otp", name


def test_the_contract_names_are_exported() -> None:
    contract = """run spawn spawn_link spawn_monitor self send receive link unlink monitor
    demonitor exit process_flag register unregister whereis registered send_after cancel_timer
    make_ref is_alive processes process_info Pid Ref Exit Down NORMAL SHUTDOWN KILL KILLED
    NOPROC TIMEOUT NOCONNECTION OTPError ExitError CallError CallTimeout StartError
    AlreadyStartedError NoProcessError NotRegisteredError AlreadyRegisteredError""".split()  # noqa: SIM905
    missing = [name for name in contract if name not in otp.__all__]
    assert missing == []


def test_error_hierarchy() -> None:
    assert issubclass(otp.CallTimeout, otp.CallError)
    assert issubclass(otp.CallTimeout, TimeoutError)
    assert issubclass(otp.CallError, otp.ExitError)
    for cls in (otp.ExitError, otp.StartError, otp.NoProcessError, otp.NotRegisteredError):
        assert issubclass(cls, otp.OTPError)
    assert otp.NORMAL == "normal" and otp.KILLED == "killed"


def test_behaviours_exports_are_sorted_and_public() -> None:
    import behaviours

    assert behaviours.__all__ == sorted(behaviours.__all__)
    for name in behaviours.__all__:
        assert hasattr(behaviours, name), name
    contract = [
        "GenServer",
        "Init",
        "Reply",
        "NoReply",
        "Stop",
        "Supervisor",
        "ChildSpec",
        "DynamicSupervisor",
        "Strategy",
        "SupervisorError",
        "InvalidChildSpec",
    ]
    assert [name for name in contract if name not in behaviours.__all__] == []


def test_behaviours_reach_the_kernel_only_through_its_public_modules() -> None:
    """Behaviours use `otp` and `otp.gen` (for behaviour authors), never `otp._*`: a
    behaviour of a user's own can do all that the framework's do."""
    root = Path(__file__).resolve().parents[2] / "behaviours"
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                private = node.module.startswith("otp._") or (
                    node.module == "otp" and any(a.name.startswith("_") for a in node.names)
                )
                assert not private, f"{path.name}:{node.lineno} imports a private kernel module"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("otp._"), f"{path.name} imports {alias.name}"
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "otp"
                and node.attr.startswith("_")
            ):
                raise AssertionError(f"{path.name}:{node.lineno} reads otp.{node.attr}")
