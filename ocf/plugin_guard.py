"""Containing a plugin while ocf runs its code (its import and its registration hooks).

ocf runs plugins in its own process: it does not sandbox them.  What it can contain is
what a plugin *raises*: any exception, ``SystemExit`` (a ``sys.exit`` call) and
``KeyboardInterrupt`` included, marks that plugin failed and the others load as usual.
:class:`Guard` also tells a real Ctrl-C (which must still stop ocf, and now names the
plugin that was loading) from a ``KeyboardInterrupt`` the plugin raises itself, and can put
a time limit on the plugin's code (``OCF_PLUGIN_TIMEOUT``).
"""

from __future__ import annotations

import difflib
import inspect
import math
import signal
import threading
from collections.abc import Mapping
from typing import Any

from ocf.errors import RegistryError, UserError

#: the environment variable holding the time limit, in seconds, for each plugin's import and hooks
TIMEOUT_VARIABLE = "OCF_PLUGIN_TIMEOUT"


class PluginInterrupt(KeyboardInterrupt):
    """A real Ctrl-C arrived while a plugin's code ran; the message names the plugin."""


class PluginTimeout(BaseException):
    """A plugin's import or hook ran past ``OCF_PLUGIN_TIMEOUT`` (a BaseException, so that
    a plugin's own ``except Exception`` does not swallow it)."""


def timeout_from(env: Mapping[str, str]) -> float | None:
    """The time limit ``OCF_PLUGIN_TIMEOUT`` sets (None when unset or empty)."""
    raw = env.get(TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"{TIMEOUT_VARIABLE}={raw!r}: give a positive number of seconds (or leave it unset)")
    return value


class Guard:
    """``with Guard(plugin, stage, timeout): ...`` around a plugin's code.

    In the main thread it installs, for the duration, a SIGINT handler that raises
    :class:`PluginInterrupt` naming the plugin (so a real Ctrl-C is not mistaken for the
    plugin's own KeyboardInterrupt and still stops ocf) and, with a ``timeout`` on a system
    that has SIGALRM, a timer that raises :class:`PluginTimeout` in the plugin's code.  The
    timer stops Python code and interruptible waits (``time.sleep``, most blocking I/O); it
    cannot stop a plugin stuck inside C code that never returns to Python.  Elsewhere (other
    threads, Windows) the guard only marks the stage.
    """

    def __init__(self, plugin: str, stage: str, timeout: float | None = None) -> None:
        self.plugin, self.stage, self.timeout = plugin, stage, timeout
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> Guard:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._saved[signal.SIGINT] = signal.signal(signal.SIGINT, self._interrupted)
        if self.timeout and hasattr(signal, "SIGALRM"):
            self._saved[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._timed_out)
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        alarm = getattr(signal, "SIGALRM", None)
        if alarm is not None and alarm in self._saved:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved.clear()

    def _interrupted(self, signum: int, frame: Any) -> None:
        raise PluginInterrupt(
            f"while loading plugin {self.plugin!r} ({self.stage}); if it hangs, skip it with "
            f"OCF_DISABLE_PLUGINS={self.plugin} or set {TIMEOUT_VARIABLE}=SECONDS"
        )

    def _timed_out(self, signum: int, frame: Any) -> None:
        raise PluginTimeout(f"still running after {self.timeout:g} s ({TIMEOUT_VARIABLE})")


def describe(exc: BaseException, where: str) -> str:
    """What a failed plugin did, for ``ocf plugins`` and error notes:
    ``SystemExit while importing: the plugin called sys.exit(3)``."""
    kind = type(exc).__name__
    if isinstance(exc, SystemExit):
        what = f"the plugin called sys.exit({exc.code!r})"
    elif isinstance(exc, KeyboardInterrupt):
        what = "the plugin raised KeyboardInterrupt itself (no Ctrl-C was pressed)"
    else:
        what = str(exc) or "(no message)"
    return f"{kind} {where}: {what}"


def check_hook_names(pm: Any, plugin: object, name: str) -> None:
    """RegistryError naming the plugin and the hook when it implements a hook ocf does not
    define (a misspelling) or defines an ``ocf_*`` function without ``@ocf.hookimpl``
    (which ocf would never call)."""
    known = sorted(n for n in vars(pm.hook) if not n.startswith("_") and getattr(pm.hook, n).has_spec())
    problems = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not impl.optionalhook:
                problems.append(f"{caller.name} is not an ocf hook{_did_you_mean(caller.name, known)}")
    marked = {c.name for c in pm.get_hookcallers(plugin) or []}
    for attr in dir(plugin):
        if attr.startswith("ocf_") and attr not in marked and inspect.isfunction(getattr(plugin, attr, None)):
            problems.append(f"{attr} is not marked @ocf.hookimpl, so ocf would never call it")
    if problems:
        raise RegistryError(f"plugin {name!r}: " + "; ".join(problems) + f" (ocf's hooks: {', '.join(known)})")


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
