"""asyncua's client half, loaded without its server half and, until a secure session needs it, without cryptography.

`import asyncua` runs the package's `__init__`, which imports the server (~4 MB the agent never uses) and looks
its own version up through `importlib.metadata`; the client imports `cryptography`, whose compiled binding alone
is ~9 MB resident, for security policies and certificates that a plant polled without OPC UA security never
touches. Here the package is registered without running its `__init__` (it still runs, in full, the first
time anything asks the package for a name it does not have yet, e.g. `asyncua.Server`), and while the client's
modules are imported, `cryptography` is a stand-in whose names are placeholders. The first real use of any
placeholder (a call, an `isinstance`), or `load_cryptography()`, imports the real `cryptography` and puts the
real objects in place of the placeholders in every asyncua module. Annotations, the only use made of them
while importing, never need the real objects. When `asyncua` or `cryptography` was already imported, the
package is used as it is.

The agent's modules take asyncua's names from here, so that this module runs before asyncua is imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import sys
import threading
import types
from importlib.machinery import ModuleSpec
from typing import Any

from agent.lean_imports import import_on_first_use

_log = logging.getLogger(__name__)

_lock = threading.RLock()
_deferred = False  # placeholders are in asyncua's modules


class _Placeholder:
    """A name of `cryptography` (`module`, then attributes `path`), standing in until it is really used."""

    def __init__(self, module: str, path: tuple[str, ...]) -> None:
        self._module = module
        self._path = path

    def __getattr__(self, name: str) -> _Placeholder:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(self._module, (*self._path, name))

    def __or__(self, other: object) -> Any:  # `x509.Certificate | None` in an annotation
        return self

    __ror__ = __or__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _real(self)(*args, **kwargs)

    def __instancecheck__(self, instance: object) -> bool:
        return isinstance(instance, _real(self))

    def __subclasscheck__(self, subclass: type) -> bool:
        return issubclass(subclass, _real(self))

    def __repr__(self) -> str:
        return f"<not yet imported: {self._module}:{'.'.join(self._path)}>"


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(self.__name__, (name,))


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """While the client half is imported: every `cryptography` module is a stand-in."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if fullname != "cryptography" and not fullname.startswith("cryptography."):
            return None
        return ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        module = _StandInModule(spec.name)
        if spec.name == "cryptography.hazmat._oid":
            module._OID_NAMES = {}  # type: ignore[attr-defined]  # asyncua's cert_gen iterates it on import
        self.made.append(spec.name)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def _real(placeholder: _Placeholder) -> Any:
    load_cryptography()
    value: Any = importlib.import_module(placeholder._module)
    qualified = placeholder._module
    for name in placeholder._path:
        qualified = f"{qualified}.{name}"
        try:
            value = getattr(value, name)
        except AttributeError:  # a submodule not imported yet (`from cryptography import x509`)
            value = importlib.import_module(qualified)
    return value


def load_cryptography() -> None:
    """Import the real `cryptography` and put its objects in place of the placeholders in asyncua's modules."""
    global _deferred
    with _lock:
        if not _deferred:
            return
        _deferred = False
        for name, module in list(sys.modules.items()):
            if not name.startswith("asyncua") or module is None:
                continue
            for attribute, value in list(vars(module).items()):
                if isinstance(value, (_Placeholder, _StandInModule)):
                    setattr(module, attribute, _resolve(value))
        cert_gen = sys.modules.get("asyncua.crypto.cert_gen")
        if cert_gen is not None:  # its table of names was built from the stand-in's empty one
            importlib.reload(cert_gen)


def _resolve(value: _Placeholder | _StandInModule) -> Any:
    if isinstance(value, _StandInModule):
        return importlib.import_module(value.__name__)
    return _real(value)


class _Package(types.ModuleType):
    """The `asyncua` package before its `__init__` ran: a name it lacks runs the `__init__` (not submodules)."""

    def __getattr__(self, name: str) -> Any:
        spec = self.__spec__
        if (name.startswith("__") and name != "__version__") or spec is None or spec.loader is None:
            raise AttributeError(name)
        if self.__dict__.get("_initialising") or importlib.util.find_spec(f"asyncua.{name}") is not None:
            raise AttributeError(name)  # a submodule: the import system loads it
        with _lock:
            self.__dict__["_initialising"] = True
            load_cryptography()  # the server half uses what the client half imported
            spec.loader.exec_module(self)
        return self.__dict__[name] if name in self.__dict__ else super().__getattribute__(name)


def _import_client_half() -> None:
    global _deferred
    spec = importlib.util.find_spec("asyncua")
    if spec is None or spec.loader is None:
        return  # not installed: the imports below say so
    package = _Package(spec.name)
    package.__spec__ = spec
    package.__file__ = spec.origin
    package.__path__ = list(spec.submodule_search_locations or [])
    package.__loader__ = spec.loader
    package.__package__ = spec.name
    finder = _StandInFinder() if "cryptography" not in sys.modules else None
    if finder is not None:
        sys.meta_path.insert(0, finder)
    sys.modules["asyncua"] = package
    try:
        # in the order of asyncua's __init__: common, then the client
        common = importlib.import_module("asyncua.common")
        vars(package).update(Node=common.Node, uamethod=common.uamethod)
        vars(package)["Client"] = importlib.import_module("asyncua.client").Client
        for name in ("asyncua.common.subscription", "asyncua.crypto.security_policies"):
            importlib.import_module(name)
        _deferred = finder is not None
    except Exception:  # another asyncua than the one this was written for: import it the usual way
        for name in [n for n in sys.modules if n == "asyncua" or n.startswith("asyncua.")]:
            del sys.modules[name]
        _log.warning("asyncua's client half could not be imported on its own; importing all of asyncua",
                     exc_info=True)
    finally:
        if finder is not None:
            sys.meta_path.remove(finder)
            for name in finder.made:
                del sys.modules[name]


with _lock:
    if "asyncua" not in sys.modules:
        import_on_first_use("dateutil.parser")  # ~1.4 MB for parsing datetimes from strings, which polls never do
        _import_client_half()

from asyncua import ua  # noqa: E402  (after the package is registered above)
from asyncua.client.client import Client  # noqa: E402
from asyncua.common.subscription import DataChangeNotif, Subscription  # noqa: E402
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256  # noqa: E402
from asyncua.ua.attribute_ids import AttributeIds  # noqa: E402
from asyncua.ua.object_ids import ObjectIds  # noqa: E402
from asyncua.ua.status_codes import StatusCodes  # noqa: E402
from asyncua.ua.uaerrors import UaStatusCodeError  # noqa: E402

__all__ = [
    "AttributeIds", "Client", "DataChangeNotif", "ObjectIds", "SecurityPolicyBasic256Sha256", "StatusCodes",
    "Subscription", "UaStatusCodeError", "load_cryptography", "ua",
]
