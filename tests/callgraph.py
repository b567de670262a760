"""A static call graph of the Lambda handlers and the worker: every boto3 client method an entry point can reach.

Built from the source (Python's `ast`), never by running it, so a code path no test drives is followed too. The
rules over-approximate: a call the graph cannot rule out counts as reachable.

- A function reaches every project function, class or registry it names (called or passed as a value: a lambda's
  body belongs to the function it is written in), and its own module's top-level code, which imports run.
- `module.name` follows project imports (`from handlers import jobmodel`, `from handlers.jobs import owned_job`).
- `self.name` / `cls.name` is the method of the enclosing class; `anything.name` is every method of that name in
  any class of the same package (`handlers` or `worker`), since the receiver's type is not known.
- A class named reaches its constructor and context-manager methods (`__init__`, `__post_init__`, `__enter__`,
  `__exit__`).
- A function registered by a decorator rooted at a module-level object (`@router.route(...)`) is reached through
  that object: a function that names `router` reaches every route registered on it (`Router.resolve` calls them).

A boto3 client is recognised by the name it goes by (`CLIENT_NAMES`: `services.ec2`, `self.ddb`, a parameter `s3`)
or by being made on the spot (`boto3.client("s3").download_file(...)`); `client.get_paginator("op")` runs `op`.
A call that looks like a client operation on a receiver the graph cannot place, a client made for a service no name
maps to, or a boto3 resource is reported in `unresolved` rather than guessed, so a client under a new name fails
loudly. Not followed: calls made through `getattr` or decorators' own bodies (the project's decorators only
register).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import botocore.session
from botocore import xform_name

CLIENT_NAMES = {"ec2": "ec2", "ddb": "dynamodb", "dynamodb": "dynamodb", "s3": "s3", "copier": "s3"}
"""Variable and attribute names that hold a boto3 client, and the client's service (botocore's name)."""
TRANSFER_METHODS = frozenset({"upload_file", "upload_fileobj", "download_file", "download_fileobj", "copy"})
"""s3transfer's managed transfers that boto3 adds to the S3 client (each makes several API calls)."""
PRESIGN_METHODS = frozenset({"generate_presigned_url", "generate_presigned_post"})
"""Signing, not calling: AWS authorises the signed request later, with the signer's permissions."""
HARMLESS_METHODS = frozenset({"close", "can_paginate"})
CLASS_ENTRY_METHODS = ("__init__", "__post_init__", "__enter__", "__exit__")
MODULE_BODY = "<module>"


@functools.cache
def operations(service: str) -> frozenset[str]:
    """The client methods of `service` that are API operations, from botocore's service model."""
    model = botocore.session.get_session().get_service_model(service)
    return frozenset(xform_name(name) for name in model.operation_names)


def client_methods(service: str) -> frozenset[str]:
    extras = TRANSFER_METHODS | PRESIGN_METHODS if service == "s3" else frozenset()
    return operations(service) | extras


@dataclass(frozen=True)
class ClientCall:
    """One call of a boto3 client method in the source."""

    service: str
    method: str
    site: str
    """Qualified name of the function the call is written in (`handlers.jobs.object_size`)."""
    line: int
    node: ast.Call = field(compare=False, repr=False)

    def keyword(self, name: str) -> ast.expr | None:
        return next((k.value for k in self.node.keywords if k.arg == name), None)


@dataclass
class _Module:
    name: str
    package: str
    tree: ast.Module
    imports: dict[str, str] = field(default_factory=dict)
    """Local name -> qualified project name (a module, or `module.name`)."""
    constants: dict[str, str] = field(default_factory=dict)
    top_level: set[str] = field(default_factory=set)
    """Names assigned at module level (candidate registries)."""


class CallGraph:
    """Functions (qualified names), who reaches whom, and the client calls each function makes."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        """`sources`: module name (`handlers.jobs`) -> its Python source."""
        self.modules = {name: _Module(name, name.split(".")[0], ast.parse(src)) for name, src in sources.items()}
        self.edges: dict[str, set[str]] = {}
        self.calls: dict[str, list[ClientCall]] = {}
        self.unresolved: list[str] = []
        self.methods: dict[tuple[str, str], set[str]] = {}
        """(package, method name) -> qualified names of every method so named."""
        self.nodes: set[str] = set()
        for module in self.modules.values():
            self._index(module)
        for module in self.modules.values():
            self._link(module)

    # --- indexing ---

    def _index(self, module: _Module) -> None:
        self.nodes.add(f"{module.name}.{MODULE_BODY}")
        for stmt in module.tree.body:
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                self._import(module, stmt)
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self.nodes.add(f"{module.name}.{stmt.name}")
            elif isinstance(stmt, ast.ClassDef):
                self.nodes.add(f"{module.name}.{stmt.name}")
                for item in stmt.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        qualname = f"{module.name}.{stmt.name}.{item.name}"
                        self.nodes.add(qualname)
                        self.methods.setdefault((module.package, item.name), set()).add(qualname)
            elif isinstance(stmt, ast.Assign | ast.AnnAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        module.top_level.add(target.id)
                        self.nodes.add(f"{module.name}.{target.id}")
                        if isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                            module.constants[target.id] = stmt.value.value

    def _import(self, module: _Module, stmt: ast.Import | ast.ImportFrom) -> None:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name in self.modules:
                    module.imports[alias.asname or alias.name] = alias.name
            return
        for alias in stmt.names:
            full = f"{stmt.module}.{alias.name}"
            if full in self.modules or stmt.module in self.modules:
                module.imports[alias.asname or alias.name] = full

    # --- edges ---

    def _link(self, module: _Module) -> None:
        body = f"{module.name}.{MODULE_BODY}"
        top: list[ast.AST] = []
        for stmt in module.tree.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self._function(module, f"{module.name}.{stmt.name}", stmt, None)
            elif isinstance(stmt, ast.ClassDef):
                self._class(module, stmt)
            else:
                top.append(stmt)
        self._walk(module, body, top, None)
        for target in module.imports.values():
            imported = target if target in self.modules else target.rpartition(".")[0]
            self.edges.setdefault(body, set()).add(f"{imported}.{MODULE_BODY}")

    def _class(self, module: _Module, cls: ast.ClassDef) -> None:
        qualname = f"{module.name}.{cls.name}"
        self.edges.setdefault(qualname, set()).update(
            f"{qualname}.{name}" for name in CLASS_ENTRY_METHODS if f"{qualname}.{name}" in self.nodes)
        fields: list[ast.AST] = []
        for item in cls.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                self._function(module, f"{qualname}.{item.name}", item, cls.name)
            else:
                fields.append(item)
        self._walk(module, qualname, fields, cls.name)

    def _function(self, module: _Module, qualname: str, node: ast.FunctionDef | ast.AsyncFunctionDef,
                  cls: str | None) -> None:
        self.edges.setdefault(qualname, set()).add(f"{module.name}.{MODULE_BODY}")
        for decorator in node.decorator_list:
            registry = self._registry(module, decorator)
            if registry is not None:
                self.edges.setdefault(registry, set()).add(qualname)
        self._walk(module, qualname, [*node.args.defaults, *node.body], cls)

    def _registry(self, module: _Module, decorator: ast.expr) -> str | None:
        """The module-level object a decorator registers with (`router` of `@router.route(...)`), if any."""
        root = decorator
        while isinstance(root, ast.Call | ast.Attribute):
            root = root.func if isinstance(root, ast.Call) else root.value
        if isinstance(root, ast.Name) and root.id in module.top_level and root is not decorator:
            return f"{module.name}.{root.id}"
        return None

    def _walk(self, module: _Module, qualname: str, roots: Iterable[ast.AST], cls: str | None) -> None:
        targets = self.edges.setdefault(qualname, set())
        for root in roots:
            for node in ast.walk(root):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    targets |= self._resolve_name(module, node.id)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                    targets |= self._resolve_attribute(module, node, cls)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    self._client_call(module, qualname, node, cls)
                if isinstance(node, ast.Call):
                    self._client_made(qualname, node)

    def _resolve_name(self, module: _Module, name: str) -> set[str]:
        local = f"{module.name}.{name}"
        if local in self.nodes:
            return {local}
        target = module.imports.get(name)
        return {target} if target in self.nodes else set()

    def _module_of(self, module: _Module, expr: ast.expr) -> str | None:
        """The project module an expression names (`jobmodel` after `from handlers import jobmodel`)."""
        if isinstance(expr, ast.Name):
            target = module.imports.get(expr.id)
            return target if target in self.modules else None
        return None

    def _resolve_attribute(self, module: _Module, node: ast.Attribute, cls: str | None) -> set[str]:
        owner = self._module_of(module, node.value)
        if owner is not None:
            qualname = f"{owner}.{node.attr}"
            return {qualname} if qualname in self.nodes else set()
        if isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"} and cls is not None:
            qualname = f"{module.name}.{cls}.{node.attr}"
            if qualname in self.nodes:
                return {qualname}
        return set(self.methods.get((module.package, node.attr), set()))

    # --- client calls ---

    def _client_service(self, module: _Module, receiver: ast.expr) -> str | None:
        if isinstance(receiver, ast.Name):
            return CLIENT_NAMES.get(receiver.id)
        if isinstance(receiver, ast.Attribute):
            return CLIENT_NAMES.get(receiver.attr) if self._module_of(module, receiver.value) is None else None
        if (isinstance(receiver, ast.Call) and _name_of(receiver.func) == "client" and receiver.args
                and isinstance(receiver.args[0], ast.Constant) and isinstance(receiver.args[0].value, str)):
            return receiver.args[0].value
        return None

    def _client_call(self, module: _Module, qualname: str, node: ast.Call, cls: str | None) -> None:
        assert isinstance(node.func, ast.Attribute)
        method, receiver = node.func.attr, node.func.value
        service = self._client_service(module, receiver)
        where = f"{qualname} (line {node.lineno})"
        if service is None:
            if method in all_client_methods() and not self._project_callee(module, receiver, method, cls):
                self.unresolved.append(f"{where}: .{method}(...) on a receiver that is not a known client")
            return
        if method == "get_paginator":
            first = node.args[0] if node.args else None
            if not (isinstance(first, ast.Constant) and first.value in operations(service)):
                self.unresolved.append(f"{where}: a {service} paginator of an operation the graph cannot read")
                return
            method = first.value
        elif method in HARMLESS_METHODS:
            return
        elif method not in client_methods(service):
            self.unresolved.append(f"{where}: {service} client has no method {method} the graph knows")
            return
        self.calls.setdefault(qualname, []).append(ClientCall(service, method, qualname, node.lineno, node))

    def _client_made(self, qualname: str, node: ast.Call) -> None:
        """A client of a service no `CLIENT_NAMES` entry names (or a boto3 resource) would hide its calls."""
        name = _name_of(node.func)
        first = node.args[0] if node.args else None
        service = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
        if name == "resource" and service is not None:
            self.unresolved.append(f"{qualname} (line {node.lineno}): a boto3 resource ({service}) the graph cannot "
                                   "follow: use a client")
        elif name == "client" and service is not None and service not in CLIENT_NAMES.values():
            self.unresolved.append(f"{qualname} (line {node.lineno}): a {service} client; name the variables that "
                                   "hold it in tests/callgraph.py CLIENT_NAMES")

    def _project_callee(self, module: _Module, receiver: ast.expr, method: str, cls: str | None) -> bool:
        """Whether `receiver.method` is a project function or method (then the graph follows it as such)."""
        owner = self._module_of(module, receiver)
        if owner is not None:
            return f"{owner}.{method}" in self.nodes
        return bool(self.methods.get((module.package, method)))

    # --- queries ---

    def reachable(self, entry: str) -> set[str]:
        if entry not in self.nodes:
            raise KeyError(f"no function {entry} in the graph")
        seen, todo = {entry}, [entry]
        while todo:
            for target in self.edges.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    def client_calls(self, entry: str) -> list[ClientCall]:
        """Every client call the entry point can reach, in source order."""
        found = [call for qualname in self.reachable(entry) for call in self.calls.get(qualname, [])]
        return sorted(found, key=lambda call: (call.site, call.line))

    def constant(self, expr: ast.expr, site: str) -> str | None:
        """The string an expression always holds (a literal, or a module-level string constant it names)."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return expr.value
        module = self._module_for(site)
        if isinstance(expr, ast.Name):
            if expr.id in module.constants:
                return module.constants[expr.id]
            target = module.imports.get(expr.id, "")
            owner, _, name = target.rpartition(".")
            return self.modules[owner].constants.get(name) if owner in self.modules else None
        if isinstance(expr, ast.Attribute):
            owner = self._module_of(module, expr.value)
            return self.modules[owner].constants.get(expr.attr) if owner else None
        return None

    def string_values(self, key: str, qualnames: Iterable[str]) -> set[str | None]:
        """What a dict key or keyword `key` is set to in those functions' code (None for a value not constant)."""
        found: set[str | None] = set()
        for qualname in qualnames:
            for node in self._nodes_of(qualname):
                if isinstance(node, ast.keyword) and node.arg == key:
                    found.add(self.constant(node.value, qualname))
                elif isinstance(node, ast.Dict):
                    for k, v in zip(node.keys, node.values, strict=True):
                        if isinstance(k, ast.Constant) and k.value == key:
                            found.add(self.constant(v, qualname))
        return found

    def dict_keys(self, qualnames: Iterable[str]) -> set[str]:
        """Every constant string used as a dict key in those functions' code."""
        return {k.value for q in qualnames for node in self._nodes_of(q) if isinstance(node, ast.Dict)
                for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}

    def _module_for(self, qualname: str) -> _Module:
        return max((m for name, m in self.modules.items() if qualname.startswith(f"{name}.")),
                   key=lambda m: len(m.name))

    def _nodes_of(self, qualname: str) -> Iterator[ast.AST]:
        module = self._module_for(qualname)
        path = qualname.removeprefix(f"{module.name}.").split(".")
        if path == [MODULE_BODY]:
            roots: list[ast.AST] = [s for s in module.tree.body if not isinstance(s, ast.FunctionDef | ast.ClassDef)]
        else:
            roots = [_find(module.tree, path)] if _find(module.tree, path) is not None else []
        for root in roots:
            yield from ast.walk(root)


def _find(tree: ast.AST, path: list[str]) -> ast.AST | None:
    node: ast.AST | None = tree
    for name in path:
        body = getattr(node, "body", [])
        node = next((s for s in body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                     and s.name == name), None)
        if node is None:
            return None
    return node


def _name_of(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    return expr.attr if isinstance(expr, ast.Attribute) else None


@functools.cache
def all_client_methods() -> frozenset[str]:
    """Every method of the clients the graph knows by name (a call of one on an unknown receiver is suspect)."""
    return frozenset().union(*(client_methods(service) for service in set(CLIENT_NAMES.values())))
