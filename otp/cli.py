"""The `otp` command: run a node in the foreground, and look into or stop a running one.

    otp run SPEC [--name N] [--cookie C] [--config F] [--set app.key=value] [--run-dir D]
            [--reload] [--log-level LEVEL] [--log-format text|json]
            [--ops-port PORT [--ops-host HOST]] [--ops-traces [RATIO]]
            [--epmd auto|system|embedded] [--dist-listen HOST:PORT]
    otp run --release [VSN] [--build-dir B] ...   (a release's snapshot: the permanent one)
    otp status | tree [--json] | stop        [--name N] [--run-dir D] [--cookie C]
    otp top [--sort mailbox|rate|time] [--interval S] [--limit N] [--once]
                                             [--name N] [--run-dir D] [--cookie C]
    otp remote                               [--name N] [--run-dir D] [--cookie C]
    otp eval CODE [--timeout S]              [--name N] [--run-dir D] [--cookie C]
    otp release build SPEC [--build-dir B]
    otp release check VSN | upgrade VSN [--window S] [--max-crash-ratio R]
              | rollback | permanent | list  [--name N] [--run-dir D] [--cookie C]

`run` starts the application SPEC (`package.module:attr`) with its dependencies, logs to
stderr, and stops cleanly on SIGTERM or SIGINT (applications in reverse start order). A
`--name name@host` makes a distributed node (otp.dist), which Erlang nodes can reach; its
cookie is `--cookie`, `$OTP_COOKIE` or `~/.erlang.cookie`. The
other commands reach it through its control socket, `<run-dir>/<name>.sock`; the cookie
is read from `<run-dir>/<name>.cookie` (owner-only) unless given. A running node holds an
exclusive lock on `<run-dir>/<name>.lock` for its whole life (the OS drops it when the
process dies, however it dies): one node per name, and only the holder touches the
socket and cookie files.

`remote` is a Python shell inside the node (top-level await, like `python -m asyncio`),
and `eval` runs CODE there and prints the value's repr: both run any code as the node's
owner, so the socket's rules (owner-only, the cookie) are what keeps others out.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import code as stdlib_code
import contextlib
import fcntl
import importlib
import logging
import os
import secrets
import signal
import socket
import stat
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from . import _config, _control, _node, application, code, release
from ._app import Application
from ._mailbox import receive
from ._runner import run
from ._spawn import spawn
from ._values import NORMAL
from .errors import ExitError, OTPError
from .ops import _alarms, _logs

__all__ = ["main"]

_logger = logging.getLogger("otp.node")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HISTORY_FILE = ".otp_remote_history"  # in the home directory: what `otp remote` was given


def default_run_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "otp" if runtime else Path(f"/tmp/otp-{os.getuid()}")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except BrokenPipeError:  # our reader went away (otp tree | head): nothing to say
        return 1
    except (OTPError, OSError, ValueError) as exc:  # ValueError: a bad name or option value
        print(f"otp: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otp", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default="otp", help="the node's name (default: otp)")
        p.add_argument("--run-dir", type=Path, default=None, help="where the control socket lives")
        p.add_argument("--cookie", default=os.environ.get("OTP_COOKIE"), help="the node's cookie")

    run_p = commands.add_parser("run", help="run a node with an application, in the foreground")
    run_p.add_argument("spec", nargs="?", help="the application: package.module:attr")
    common(run_p)
    run_p.add_argument(
        "--release",
        nargs="?",
        const="",
        default=None,
        metavar="VSN",
        help="run a built release (default: the permanent one) instead of SPEC",
    )
    run_p.add_argument("--build-dir", type=Path, default=Path("_build"), help="default: _build")
    run_p.add_argument(
        "--reload", action="store_true", help="upgrade changed behaviour modules on save"
    )
    run_p.add_argument("--config", action="append", default=[], help="a TOML file of [app] env")
    run_p.add_argument(
        "--set", action="append", default=[], metavar="APP.KEY=VALUE", help="one env value"
    )
    run_p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    run_p.add_argument(
        "--epmd",
        choices=("auto", "system", "embedded"),
        help="a distributed node's EPMD (a --name with @host): the system's if one answers, "
        "else an embedded one (auto, the default); $ERL_EPMD_PORT is its port",
    )
    run_p.add_argument(
        "--dist-listen",
        metavar="HOST:PORT",
        help="where a distributed node listens for peers (default: 127.0.0.1, any port)",
    )
    run_p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        metavar="LEVEL",
        help=f"log reports from LEVEL up: {', '.join(LOG_LEVELS)} (default: INFO)",
    )
    run_p.add_argument(
        "--log-format",
        choices=_logs.FORMATS,
        default="text",
        help="text (default), or json: one JSON object per line (for Loki and the like)",
    )
    run_p.add_argument(
        "--ops-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve /metrics, /healthz and /readyz over HTTP on PORT (0: any free port)",
    )
    run_p.add_argument(
        "--ops-host",
        default=None,
        metavar="HOST",
        help="the address --ops-port listens on (default: 127.0.0.1)",
    )
    run_p.add_argument(
        "--ops-traces",
        nargs="?",
        const="",
        default=None,
        metavar="RATIO",
        help="trace GenServer calls, sampling RATIO (0 to 1) of the calls that start a trace "
        "(default: OTEL_TRACES_SAMPLER's); spans go to OTEL_TRACES_EXPORTER (default otlp)",
    )
    run_p.set_defaults(handler=_run)

    remote_p = commands.add_parser(
        "remote", help="a Python shell inside the running node (top-level await)"
    )
    common(remote_p)
    remote_p.set_defaults(handler=_remote)
    eval_p = commands.add_parser(
        "eval", help="run CODE in the running node and print the value's repr"
    )
    eval_p.add_argument("code", help="Python statements; the value of a last expression is shown")
    common(eval_p)
    eval_p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds, then it is killed (default 30)"
    )
    eval_p.set_defaults(handler=_eval)

    top_p = commands.add_parser(
        "top", help="a live view of the busiest processes, the supervisors and the alarms"
    )
    common(top_p)
    top_p.add_argument(
        "--sort",
        choices=_control.TOP_SORTS,
        default="mailbox",
        help="order processes by mailbox length (default), messages received per second or "
        "time spent in callbacks (sampled while asked for)",
    )
    top_p.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between refreshes"
    )
    top_p.add_argument(
        "--limit",
        type=int,
        default=_control.TOP_LIMIT,
        metavar="N",
        help=f"how many processes to show (default {_control.TOP_LIMIT})",
    )
    top_p.add_argument(
        "--once", action="store_true", help="print one frame (rates over one interval), exit"
    )
    top_p.set_defaults(handler=_top)

    for name, handler, text in (
        ("status", _status, "the node, its applications and processes"),
        ("tree", _tree, "the live supervision tree"),
        ("stop", _stop, "stop the node cleanly"),
    ):
        p = commands.add_parser(name, help=text)
        common(p)
        if name != "stop":
            p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=handler)
    _release_parser(commands, common)
    return parser


def _release_parser(commands: Any, common: Any) -> None:
    release_p = commands.add_parser("release", help="build, install and roll back releases")
    steps = release_p.add_subparsers(required=True, metavar="STEP")
    build_p = steps.add_parser("build", help="snapshot a release into BUILD_DIR/releases/VSN")
    build_p.add_argument("spec", help="the release: package.module:attr")
    build_p.add_argument("--build-dir", type=Path, default=Path("_build"), help="default: _build")
    build_p.set_defaults(handler=_release_build)
    for name, text in (
        ("check", "print what installing VSN would do"),
        ("upgrade", "install VSN on the running node"),
        ("rollback", "go back to the permanent release"),
        ("permanent", "make the running release permanent now"),
        ("list", "each release and its status"),
    ):
        p = steps.add_parser(name, help=text)
        if name in ("check", "upgrade"):
            p.add_argument("vsn")
        if name == "upgrade":
            p.add_argument("--window", type=float, default=30.0, help="seconds (default 30)")
            p.add_argument("--max-crash-ratio", type=float, default=0.05, help="default 0.05")
        common(p)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=_release_command, step=name)


def _own_run_dir(run_dir: Path) -> None:
    """Create the run directory owner-only, or check that an existing one is: it holds the
    cookie, and anyone who can write in it could replace the socket or the cookie file."""
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # (several nodes may start at once)
    info = run_dir.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise _control.ControlError(
            f"the run directory {run_dir} must be a directory of yours that no one else can "
            f"use (mode 0700); it is {stat.filemode(info.st_mode)} owned by uid {info.st_uid}"
        )


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """The control socket and the cookie file of the node named in `args`."""
    run_dir = args.run_dir or default_run_dir()
    short = args.name.partition("@")[0]
    return run_dir / f"{short}.sock", run_dir / f"{short}.cookie"


def _hold_name(name: str, path: Path) -> int:
    """Take the name's lock for the life of this OS process, or refuse: another node runs
    under it. The lock file stays (removing it would let two nodes lock two files)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise _control.ControlError(f"cannot open the lock file {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _control.ControlError(
            f"a node named {name!r} is already running (it holds {path})"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise _control.ControlError(f"cannot lock {path}: {exc}") from exc
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # for an operator: which process holds it
    return fd


# -- otp run -------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    _logs.configure(args.log_format, sys.stderr, args.log_level)
    _alarms.Options.from_env()  # a bad OTP_ALARM_* variable is refused before the node starts
    if (args.spec is None) == (args.release is None):
        raise ValueError("otp run takes an application SPEC or --release [VSN], one of the two")
    if args.release is not None:  # refuse a missing or broken release before the node starts
        release.preflight(args.build_dir, args.release or None)
    settings: _config.Settings = {}
    for path in args.config:
        _config.load_file(path, settings)
    for option in args.set:
        _config.parse_set(option, settings)
    if args.spec is not None:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # SPEC names a module of the current project
        _check_spec(args.spec)
    socket_path, cookie_path = _paths(args)
    _own_run_dir(socket_path.parent)
    lock = _hold_name(args.name, socket_path.with_name(f"{socket_path.stem}.lock"))
    ops = None
    try:  # from here on the socket and cookie paths are ours (a dead node's files are stale)
        ops = _ops_socket(args)  # a port in use is refused here, before the node starts
        traces, ratio = _ops_traces(args)
        cookie = args.cookie or _default_cookie(args.name)
        if args.epmd is not None:  # (read by otp.dist when the node starts)
            os.environ["OTP_EPMD"] = args.epmd
        if args.dist_listen is not None:
            os.environ["OTP_DIST_LISTEN"] = args.dist_listen
        _write_cookie(cookie_path, cookie)
        try:
            refused = run(
                _node_main,
                _Boot(args.spec, args.release, args.build_dir, args.reload, ops, traces, ratio),
                settings,
                socket_path,
                cookie,
                name=args.name,
                cookie=cookie,
                loop=args.loop,
            )
        except ExitError as exc:
            _logger.error("node stopped: %r", exc.reason)
            return 1
        finally:
            for path in (socket_path, cookie_path):
                path.unlink(missing_ok=True)
    finally:
        if ops is not None:
            ops.close()
        os.close(lock)  # only now: the files above are gone
    if refused is not None:
        raise refused  # (main says it in one line)
    _logger.info("node stopped")
    return 0


def _default_cookie(name: str | None) -> str:
    """A distributed node's (name@host) cookie is Erlang's, `~/.erlang.cookie`; a local
    node's is random (it guards only the control socket)."""
    if name is not None and "@" in name:
        from .dist import read_cookie

        return read_cookie()
    return secrets.token_urlsafe(24)


def _ops_socket(args: argparse.Namespace) -> socket.socket | None:
    """The listening socket of `--ops-port`, bound before the node starts."""
    if args.ops_port is None:
        if args.ops_host is not None:
            raise ValueError("--ops-host goes with --ops-port PORT: the endpoint is off without")
        return None
    try:
        from .ops import _http, _metrics
    except ImportError as exc:
        raise ValueError(
            f"--ops-port needs the ops extra (aiohttp, opentelemetry-exporter-prometheus): "
            f"pip install 'otp-framework[ops]' ({exc})"
        ) from None
    _metrics.env_exporters()  # an exporter OTEL_METRICS_EXPORTER names that is not installed
    return _http.bind(args.ops_port, args.ops_host or _http.DEFAULT_HOST)


def _ops_traces(args: argparse.Namespace) -> tuple[bool, float | None]:
    """Whether `--ops-traces` is on, and its sampling ratio (None: the SDK's sampler, from
    OTEL_TRACES_SAMPLER); a bad ratio or a span exporter not installed is refused here."""
    if args.ops_traces is None:
        return False, None
    ratio = None
    if args.ops_traces != "":
        try:
            ratio = float(args.ops_traces)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(
                f"--ops-traces takes the share of calls to trace, from 0 to 1 (none: "
                f"OTEL_TRACES_SAMPLER's); got {args.ops_traces}"
            )
    from .ops import _traces

    _traces.env_span_exporters()  # OTEL_TRACES_EXPORTER names one that is not installed
    return True, ratio


class _SpecError(ValueError):
    """SPEC names no application; the message says why, in one line."""


def _check_spec(spec: str) -> None:
    """Import SPEC's module and look its attribute up before the node starts, so that a
    mistake is one line that names it (the node would report it as a crash)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or not module_name.replace(".", "").isidentifier():
        raise _SpecError(
            f"SPEC is package.module:attr, an otp.Application and the module that holds it "
            f"(for example kv.app:app); got {spec!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name != missing and not module_name.startswith(f"{missing}."):
            _print_import_error(exc)  # a module that the application's code imports
            raise _SpecError(f"importing {module_name} failed: {exc}") from None
        if "." not in missing:
            raise _SpecError(
                f"no module named {missing!r} in {os.getcwd()}: otp run imports SPEC "
                f"relative to the current directory; run it where {missing}/ or "
                f"{missing}.py is"
            ) from None
        raise _SpecError(f"no module named {missing!r} (for {spec})") from None
    except Exception as exc:  # the module's own code failed: its traceback helps
        _print_import_error(exc)
        raise _SpecError(f"importing {module_name} failed: {exc!r}") from None
    found = [n for n, v in vars(module).items() if isinstance(v, Application)]
    hint = (
        "; it defines no otp.Application"
        if not found
        else f"; its otp.Application: {', '.join(f'{module_name}:{n}' for n in found)}"
    )
    if not hasattr(module, attr):
        raise _SpecError(f"module {module_name} has no attribute {attr!r}{hint}")
    value = getattr(module, attr)
    if not isinstance(value, Application):
        kind = f"the class {value.__qualname__}" if isinstance(value, type) else f"{value!r:.60}"
        raise _SpecError(f"{module_name}.{attr} is {kind}, not an otp.Application{hint}")


def _print_import_error(exc: BaseException) -> None:
    """The traceback of a module that failed as it was imported, from its own frames on."""
    shown = traceback.TracebackException.from_exception(exc)
    shown.stack = traceback.StackSummary.from_list(
        [f for f in shown.stack if "importlib" not in f.filename and f.filename != __file__]
    )
    sys.stderr.write("".join(shown.format()))


def _write_cookie(path: Path, cookie: str) -> None:
    try:  # never through a link someone planted: it would write the cookie elsewhere
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise _control.ControlError(f"cannot write the cookie file {path}: {exc}") from exc
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(cookie)


@dataclass(frozen=True)
class _Boot:
    """What `otp run` starts: an application SPEC, or a release from BUILD_DIR."""

    spec: str | None
    release: str | None  # "" for the permanent one
    build_dir: Path
    reload: bool
    ops: socket.socket | None = None  # --ops-port's listening socket
    traces: bool = False  # --ops-traces
    trace_ratio: float | None = None  # its ratio (None: OTEL_TRACES_SAMPLER's sampler)

    async def start(self) -> list[str]:
        if self.spec is not None:
            return await application.ensure_all_started(application.load(self.spec), "permanent")
        return await release.boot(self.build_dir, self.release or None)


async def _node_main(
    boot: _Boot, settings: _config.Settings, socket_path: Path, cookie: str
) -> _config.ConfigError | None:
    """The node's first process: serve the control socket, start the applications, wait.
    Configuration an application refuses (a value of the wrong type) ends it, returned: the
    command says it in one line, as it says a mistake found before the node started."""
    node = _node.get()
    node.config.update(settings)
    _alarms.start(node)  # alarms on otp.alarm, listed by /healthz
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if node.halted.done():  # a second signal: the user is not waiting for a clean stop
            _logger.error("second stop signal: exiting at once")
            os._exit(1)
        _logger.info("stop signal: stopping applications (again to exit at once)")
        node.stop(NORMAL)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    loop.add_signal_handler(signal.SIGUSR2, _reload_changed)
    server = await _control.serve(socket_path, cookie)
    endpoint = None
    if boot.traces:
        from .ops import _traces

        _traces.enable_tracing(sample_ratio=boot.trace_ratio)
        ratio = "the sampler of OTEL_TRACES_SAMPLER" if boot.trace_ratio is None else None
        _logger.info("tracing calls, sampling %s", ratio or f"{boot.trace_ratio:g} of the traces")
    try:
        if boot.ops is not None:  # up while the applications start: /readyz says 503
            from .ops import _http

            endpoint = await _http.serve(boot.ops)
            _logger.info("ops endpoint %s (metrics on)", endpoint.url)
        try:
            started = await boot.start()
        except _config.ConfigError as refused:
            return refused
        if endpoint is not None:
            endpoint.ready(started)
        _config.warn_unclaimed(settings, [] if node.apps is None else node.apps.loaded)
        if boot.reload:
            code.watch([Path.cwd() if boot.spec is not None else node.release.lib])
        _logger.info(
            "node %s started %s in %.3f s; control socket %s%s",
            node.name,
            ", ".join(started),
            time.time() - node.started_at,
            socket_path,
            "" if endpoint is None else f"; ops endpoint {endpoint.url}",
        )
        await receive(lambda m: False)
        return None
    finally:
        if endpoint is not None:  # (it answered "down" while the applications stopped)
            await endpoint.close()
        if boot.traces:
            _traces.disable_tracing()  # the spans still batched are exported
        await server.close()  # each open connection is told that the node is stopping
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
            loop.remove_signal_handler(sig)


def _reload_changed() -> None:
    """SIGUSR2: upgrade every behaviour module whose source changed, now."""
    _logger.info("SIGUSR2: upgrading the modules that changed")
    spawn(code.upgrade_changed)


# -- the client commands --------------------------------------------------------------------


def _request(args: argparse.Namespace, command: str, request: dict[str, Any] | None = None) -> Any:
    return _control.call(*_reach(args), command, request)


def _reach(args: argparse.Namespace) -> tuple[Path, str]:
    """The control socket of the node named in `args`, and its cookie."""
    socket_path, cookie_path = _paths(args)
    if not socket_path.exists():
        raise _control.ControlError(
            f"no node is running as {args.name!r}: no control socket at {socket_path}"
        )
    cookie = args.cookie
    if cookie is None:
        try:
            cookie = cookie_path.read_text().strip()
        except OSError:
            raise _control.ControlError(
                f"no cookie: pass --cookie or set OTP_COOKIE (no readable {cookie_path})"
            ) from None
    return socket_path, cookie


# -- otp eval, otp remote ------------------------------------------------------------------


def _eval(args: argparse.Namespace) -> int:
    with _control.Session(*_reach(args)) as session:
        result = session.evaluate(args.code, timeout=args.timeout)
    sys.stdout.write(result.output)
    if result.error is not None:
        sys.stdout.flush()
        sys.stderr.write(result.error)
        return 1
    if result.value is not None:
        print(result.value)
    return 0


def _remote(args: argparse.Namespace) -> int:
    with _control.Session(*_reach(args)) as session:
        console = _RemoteConsole(session)
        imported = ", ".join(line.rpartition("import ")[2] for line in session.imported)
        try:
            console.interact(
                banner=(
                    f"otp remote shell on node {session.node} (session process {session.pid})\n"
                    f"Top-level await works; imported: {imported}.\n"
                    f"Ctrl-C interrupts an evaluation; exit() or Ctrl-D leaves, and the node "
                    f"keeps running."
                ),
                exitmsg=f"left node {session.node}; it is still running",
            )
        finally:
            console.save_history()
    return 0


class _RemoteConsole(stdlib_code.InteractiveConsole):
    """The stdlib console, with each complete input run in the node instead of here."""

    def __init__(self, session: _control.Session) -> None:
        super().__init__(filename="<remote>")
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self.session = session
        self.leaving = False
        self.matches: list[str] = []
        sys.ps1 = f"({session.node})>>> "
        sys.ps2 = f"({session.node})... "
        self.history = Path.home() / HISTORY_FILE
        try:
            import readline
        except ImportError:  # no line editing on this platform: plain input() still works
            self.readline = None
            return
        self.readline = readline
        with contextlib.suppress(OSError):  # none yet, or unreadable: start afresh
            readline.read_history_file(self.history)
        readline.set_history_length(1000)
        readline.set_completer(self._complete)
        if "libedit" in (readline.__doc__ or ""):
            readline.parse_and_bind("bind ^I rl_complete")
        else:
            readline.parse_and_bind("tab: complete")

    def save_history(self) -> None:
        if self.readline is not None:
            with contextlib.suppress(OSError):
                self.readline.write_history_file(self.history)

    def _complete(self, text: str, state: int) -> str | None:
        """Tab: the node's names; at the start of a line, indentation (as the REPL does)."""
        if not text.strip():
            return "\t" if state == 0 else None
        if state == 0:
            self.matches = self.session.complete(text)
        return self.matches[state] if state < len(self.matches) else None

    def raw_input(self, prompt: str = "") -> str:
        if self.leaving:
            raise EOFError
        return input(prompt)

    def runsource(self, source: str, filename: str = "<input>", symbol: str = "single") -> bool:
        try:
            if self.compile(source, filename, symbol) is None:
                return True  # more input needed
        except (OverflowError, SyntaxError, ValueError):
            pass  # complete and wrong: the node's compiler says how
        result = self.session.evaluate(source)
        sys.stdout.write(result.output)
        if result.value is not None:
            print(result.value)
        if result.error is not None:
            sys.stdout.flush()
            sys.stderr.write(result.error)
        self.leaving = result.leave
        return False


def _status(args: argparse.Namespace) -> int:
    status = _request(args, "status")
    if args.json:
        _print_json(status)
        return 0
    print(f"node {status['node']} (os pid {status['os_pid']}), up {status['uptime']:.1f} s")
    print(f"processes: {status['processes']}, max RSS: {status['max_rss_kb'] / 1024:.1f} MiB")
    release = status.get("release")
    if release is not None:
        trial = " (on trial: not yet permanent)" if release["status"] == "current" else ""
        print(f"release: {release['vsn']}, {release['status']}{trial}")
    if status.get("nodes") is not None:
        print(f"connected nodes: {', '.join(status['nodes']) or 'none'}")
    print("applications (version, start type):")
    for app in status["applications"]:
        print(f"  {app['name']} {app['vsn']} ({app['type']}) {app['description']}".rstrip())
    return 0


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n")


def _tree(args: argparse.Namespace) -> int:
    trees = _request(args, "tree")
    if args.json:
        _print_json(trees)
        return 0
    for app in trees:
        print(f"{app['application']}")
        if app["tree"] is not None:
            _print_tree(app["tree"], "", True)
    return 0


def _print_tree(entry: dict[str, Any], prefix: str, last: bool) -> None:
    branch = "└─ " if last else "├─ "
    parts = [str(entry["id"]) if entry.get("id") is not None else ""]
    if entry.get("behaviour") and entry["behaviour"] != parts[0]:
        parts.append(entry["behaviour"])
    parts.append(str(entry["pid"]))
    if entry.get("name"):
        parts.append(f"'{entry['name']}'")
    parts.extend(entry.get("via", ()))
    details = []
    if "mailbox" in entry:
        details.append(f"mailbox={entry['mailbox']}")
    details.append(f"restarts={entry['restarts']}")
    if entry.get("unavailable"):
        details.append(f"(children not shown: {entry['unavailable']})")
    print(f"{prefix}{branch}{' '.join(p for p in parts if p)}  {' '.join(details)}")
    children = entry.get("children", [])
    for i, child in enumerate(children):
        _print_tree(child, prefix + ("   " if last else "│  "), i == len(children) - 1)


def _release_build(args: argparse.Namespace) -> int:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # SPEC names a module of the current project
    module_name, _, attr = args.spec.partition(":")
    if not attr:
        raise ValueError(f"a release is given as package.module:attr\nGot: {args.spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        raise ValueError(
            f"no module named {missing.name!r} in {Path.cwd()}: otp release build imports "
            "SPEC relative to the current directory"
        ) from None
    spec = getattr(module, attr, None)
    if not isinstance(spec, release.Release):
        raise ValueError(f"{args.spec} is not an otp.Release\nGot: {spec!r}")
    manifest = release.build(args.spec, spec, Path.cwd(), args.build_dir)
    where = args.build_dir / "releases" / manifest.vsn
    print(
        f"built release {manifest.name} {manifest.vsn} in {where} ({len(manifest.modules)} modules)"
    )
    return 0


def _release_command(args: argparse.Namespace) -> int:
    step = args.step
    request: dict[str, Any] = {"vsn": getattr(args, "vsn", None)}
    if step == "upgrade":
        request.update(window=args.window, max_crash_ratio=args.max_crash_ratio)
    result = _request(args, f"release_{step}", request)
    if args.json:
        _print_json(result)
    elif step == "list":
        for vsn, status, note in result:
            print(f"{vsn:<12} {status:<10} {note}".rstrip())
    elif step == "check":
        _print_plan(result)
    elif step == "upgrade":
        then = "now permanent" if args.window == 0 else f"permanent after {args.window:g} s"
        print(
            f"release {result['release']} installed: {result['from']} -> {result['to']} "
            f"({result['processes']} processes switched); {then} unless it rolls back"
        )
    else:
        print(f"release {result} {'running' if step == 'rollback' else 'permanent'}")
    return 0


def _print_plan(plan: dict[str, Any]) -> None:
    kind = "downgrade" if plan["downgrade"] else "upgrade"
    print(f"{kind} from {plan['from']} to {plan['to']}:")
    labels = (
        ("stop_applications", "stop applications"),
        ("update", "upgrade modules (code_change), in order"),
        ("load", "load modules"),
        ("config_change", "config_change"),
        ("restart_applications", "restart applications"),
        ("start_applications", "start applications"),
        ("added_modules", "new modules"),
        ("removed_modules", "modules gone"),
    )
    for key, label in labels:
        value = plan[key]
        if not value:
            continue
        if isinstance(value, dict):
            value = [
                f"{app} {sorted({k for v in c.values() for k in v})}" for app, c in value.items()
            ]
        print(f"  {label}: {', '.join(map(str, value))}")


def _top(args: argparse.Namespace) -> int:
    if not 0 < args.interval < 3600:
        raise ValueError(
            f"--interval is a number of seconds above 0 (and under 3600); got {args.interval:g}"
        )
    if not 1 <= args.limit <= _control.TOP_MAX_LIMIT:
        raise ValueError(
            f"--limit is a number of processes from 1 to {_control.TOP_MAX_LIMIT}; got {args.limit}"
        )
    from .ops import _top  # (rich is imported by the commands that draw, not by `otp run`)

    path, cookie = _reach(args)
    if not args.once:  # (it ends on q or Ctrl-C)
        _top.live(path, cookie, limit=args.limit, sort=args.sort, interval=args.interval)
        return 0
    try:
        _top.once(
            path, cookie, limit=args.limit, sort=args.sort, interval=args.interval, out=sys.stdout
        )
    except KeyboardInterrupt:  # Ctrl-C while it samples: no frame, no traceback
        return 130
    return 0


def _stop(args: argparse.Namespace) -> int:
    answer = _request(args, "stop")  # "stopping", or "exiting at once" when asked again
    print(f"{answer} {args.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
