"""Python heaps in the V8 heap snapshot format, for Chrome DevTools' Memory tab and memlab.

The format (``.heapsnapshot``): a ``snapshot.meta`` block naming the fields,
flat integer arrays ``nodes`` (7 fields each) and ``edges`` (3 fields each),
and a ``strings`` table. Node names are Python type names (a class or function
is named itself), edge names are attribute names, dict keys or list indices,
and node 0 is a synthetic root whose children are the modules, so DevTools'
"distance" and "retainers" views read as chains from a module.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import re
import stat
import sys
import time
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pytest_leakhunt.artifacts import write_text
from pytest_leakhunt.edges import edge
from pytest_leakhunt.naming import type_name
from pytest_leakhunt.registries import ELEMENT_CONTAINERS, SEQUENCES

if TYPE_CHECKING:
    import pytest

#: V8's node and edge type tables; we use a few of each.
NODE_TYPES = [
    "hidden", "array", "string", "object", "code", "closure", "regexp", "number", "native",
    "synthetic", "concatenated string", "sliced string", "symbol", "bigint", "object shape",
]  # fmt: skip
EDGE_TYPES = ["context", "element", "property", "internal", "hidden", "shortcut", "weak"]
NODE_FIELDS = ["type", "name", "id", "self_size", "edge_count", "trace_node_id", "detachedness"]
EDGE_FIELDS = ["type", "name_or_index", "to_node"]

_ARRAYS = ELEMENT_CONTAINERS
_NODE_TYPE = {name: i for i, name in enumerate(NODE_TYPES)}
_EDGE_TYPE = {name: i for i, name in enumerate(EDGE_TYPES)}
#: Types whose node name depends on the object (its value, its name), not only on its type.
_PER_OBJECT = frozenset({str, type, types.ModuleType, types.FunctionType, types.MethodType,
                         types.BuiltinFunctionType, types.CodeType})  # fmt: skip


class Snapshot:
    """Nodes and edges being collected; ``write`` produces the file. Holds objects only while building."""

    def __init__(self) -> None:
        self._strings: dict[str, int] = {}
        self._index: dict[int, int] = {}
        #: flat, 7 ints per node (type, name, id, self_size, edge count filled at the end, 0, 0)
        self._nodes: list[int] = []
        #: per node, flat, 3 ints per edge (type, name or index, to node number)
        self._edges: list[list[int]] = []
        self._by_type: dict[type, tuple[str, str]] = {}
        self.root = self._new_node("synthetic", "(Python roots)", 0)

    def _string(self, text: str) -> int:
        index = self._strings.get(text)
        if index is None:
            index = self._strings[text] = len(self._strings)
        return index

    def _new_node(self, kind: str, name: str, size: int) -> int:
        number = len(self._edges)
        self._nodes.extend((_NODE_TYPE[kind], self._string(name), 2 * number + 1, size, 0, 0, 0))
        self._edges.append([])
        return number

    def node(self, obj: Any) -> int:
        """The node of *obj*, made on first sight."""
        key = id(obj)
        found = self._index.get(key)
        if found is None:
            cls = type(obj)
            described = self._by_type.get(cls)
            if described is None:
                kind, name = _describe(obj)
                if kind in ("object", "array", "number") and cls not in _PER_OBJECT:
                    self._by_type[cls] = (kind, name)
            else:
                kind, name = described
            found = self._index[key] = self._new_node(kind, name, _size(obj))
        return found

    def edge(self, parent: int, kind: str, name: str | int, child: int) -> None:
        label = name if kind in ("element", "hidden") else self._string(str(name))
        self._edges[parent].extend((_EDGE_TYPE[kind], int(label), child))

    def link(self, parent_obj: Any, child_obj: Any) -> None:
        """An edge parent -> child named as the reference is (attribute, key, index)."""
        kind, name = edge(parent_obj, child_obj).snapshot
        self.edge(self.node(parent_obj), kind, name, self.node(child_obj))

    def to_json(self) -> dict[str, Any]:
        nodes = self._nodes
        edges: list[int] = []
        width = len(NODE_FIELDS)
        for number, out in enumerate(self._edges):
            nodes[number * width + 4] = len(out) // 3
            out[2::3] = [child * width for child in out[2::3]]
            edges.extend(out)
        return {
            "snapshot": {
                "meta": {
                    "node_fields": NODE_FIELDS,
                    "node_types": [NODE_TYPES, "string", "number", "number", "number", "number", "number"],
                    "edge_fields": EDGE_FIELDS,
                    "edge_types": [EDGE_TYPES, "string_or_number", "node"],
                    "trace_function_info_fields": ["function_id", "name", "script_name", "script_id", "line", "column"],
                    "trace_node_fields": ["id", "function_info_index", "count", "size", "children"],
                    "sample_fields": ["timestamp_us", "last_assigned_id"],
                    "location_fields": ["object_index", "script_id", "line", "column"],
                },
                "node_count": len(self._edges),
                "edge_count": len(edges) // len(EDGE_FIELDS),
                "trace_function_count": 0,
            },
            "nodes": nodes,
            "edges": edges,
            "trace_function_infos": [],
            "trace_tree": [],
            "samples": [],
            "locations": [],
            "strings": list(self._strings),
        }

    def write(self, path: str) -> str:
        """Write the file whole (``artifacts.write_text``), making missing directories; raises OSError."""
        directory = os.path.dirname(os.path.abspath(path))
        if os.path.lexists(directory) and not os.path.isdir(directory):  # makedirs would only say "File exists"
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), directory)
        os.makedirs(directory, exist_ok=True)
        write_text(
            path, json.dumps(self.to_json(), separators=(",", ":"))
        )  # one shot: the C encoder, several times faster
        self._index.clear()
        return path


def _describe(obj: Any) -> tuple[str, str]:
    """(V8 node type, node name) for a Python object."""
    if isinstance(obj, str):
        return "string", obj if len(obj) <= 80 else obj[:77] + "..."
    if isinstance(obj, (int, float, complex)) and not isinstance(obj, bool):
        return "number", type(obj).__name__  # a name per value would fill the string table
    if isinstance(obj, types.ModuleType):
        return "object", f"module {obj.__name__}"
    if isinstance(obj, type):
        return "object", f"class {type_name(obj)}"
    if isinstance(obj, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return "closure", str(getattr(obj, "__qualname__", None) or type(obj).__name__)
    if isinstance(obj, types.CodeType):
        return "code", obj.co_qualname if hasattr(obj, "co_qualname") else obj.co_name
    if isinstance(obj, (_ARRAYS, dict)):
        return ("array" if isinstance(obj, _ARRAYS) else "object"), type(obj).__name__
    cls = type(obj)
    return "object", type_name(cls)


def _attrs(obj: Any) -> dict[str, Any] | None:
    """An instance's attributes, so edges carry their names (not for classes and modules: their dicts are nodes)."""
    if isinstance(obj, (type, types.ModuleType)):
        return None
    attrs = getattr(obj, "__dict__", None)
    return attrs if type(attrs) is dict else None


def _size(obj: Any) -> int:
    try:
        return sys.getsizeof(obj)
    except TypeError:
        return 0


def add_chain(snapshot: Snapshot, chain: list[Any]) -> None:
    """A retainer chain [module, ..., leaked] under the root."""
    if not chain:
        return
    first = chain[0]
    if isinstance(first, types.ModuleType):
        snapshot.edge(snapshot.root, "property", first.__name__, snapshot.node(first))
    else:
        hidden = len(snapshot._edges[snapshot.root]) // 3  # noqa: SLF001
        snapshot.edge(snapshot.root, "hidden", hidden, snapshot.node(first))
    for parent, child in zip(chain, chain[1:]):
        snapshot.link(parent, child)


def add_objects(snapshot: Snapshot, objs: Iterable[Any]) -> None:
    """Objects and their references among themselves (a leaked object's own subgraph)."""
    objs = list(objs)
    wanted = {id(o) for o in objs}
    for obj in objs:
        snapshot.node(obj)
    for obj in objs:
        for ref in gc.get_referents(obj):
            if id(ref) in wanted:
                snapshot.link(obj, ref)
    objs.clear()


def write_heap_snapshot(path: str | None = None) -> str:
    """Write the whole Python heap as a ``.heapsnapshot``; return its path.

    The Python counterpart of Node's ``v8.writeHeapSnapshot()``: with no path it
    picks a timestamped name in the current directory, and it creates missing
    directories. Nodes are the collector's objects plus the strings and numbers
    they reference; the root's children are the loaded modules.
    """
    if path is None:
        path = time.strftime("Heap-%Y%m%d-%H%M%S") + f"-{os.getpid()}.heapsnapshot"
    gc.collect()
    snapshot = Snapshot()
    objs = gc.get_objects()
    for name, module in sorted(sys.modules.items()):
        if isinstance(module, types.ModuleType):
            snapshot.edge(snapshot.root, "property", name, snapshot.node(module))
    enabled = gc.isenabled()
    # the walk makes millions of small containers; collecting them mid-walk would scan the heap again and again
    gc.disable()
    try:
        _walk(snapshot, objs)
        return snapshot.write(path)
    finally:
        objs.clear()
        if enabled:
            gc.enable()


def _walk(snapshot: Snapshot, objs: list[Any]) -> None:
    """Every object's references, named. The hot loop of a whole-heap snapshot: method lookups are hoisted
    and the common node case is inlined (a million objects make several million references)."""
    index, by_type, strings = snapshot._index, snapshot._by_type, snapshot._strings  # noqa: SLF001
    nodes, edges = snapshot._nodes, snapshot._edges  # noqa: SLF001
    string, slow_node = snapshot._string, snapshot.node  # noqa: SLF001
    get_referents, getsizeof = gc.get_referents, sys.getsizeof
    element, prop, internal = _EDGE_TYPE["element"], _EDGE_TYPE["property"], _EDGE_TYPE["internal"]
    sequences = SEQUENCES

    def node(obj: Any) -> int:
        found = index.get(id(obj))
        if found is not None:
            return found
        described = by_type.get(type(obj))
        if described is None:
            return slow_node(obj)
        found = len(edges)
        name = strings[described[1]] if described[1] in strings else string(described[1])
        nodes.extend((_NODE_TYPE[described[0]], name, 2 * found + 1, getsizeof(obj), 0, 0, 0))
        edges.append([])
        index[id(obj)] = found
        return found

    for obj in objs:
        out = edges[node(obj)]
        cls = type(obj)
        if cls is dict:
            for key, value in list(obj.items()):
                label = key if type(key) is str else repr(key)[:40]
                out.extend((prop, strings[label] if label in strings else string(label), node(value)))
        elif cls in sequences or isinstance(obj, sequences):
            for position, value in enumerate(list(obj)):
                out.extend((element, position, node(value)))
        else:
            attrs = _attrs(obj)
            named: set[int] = set()
            if attrs is not None:
                for key, value in list(attrs.items()):
                    named.add(id(value))
                    out.extend((prop, strings[key] if key in strings else string(str(key)), node(value)))
            for ref in get_referents(obj):
                if id(ref) not in named and ref is not attrs:
                    label = type(ref).__name__
                    out.extend((internal, strings[label] if label in strings else string(label), node(ref)))


def type_stats(path: str) -> dict[str, tuple[int, int]]:
    """Node name -> (count, total self size) in a snapshot file (for the comparison view).

    Raises OSError when the file cannot be read, and ValueError saying in words
    what makes it something other than a ``.heapsnapshot``.
    """
    with open(path, "rb") as handle:
        if stat.S_ISCHR(os.fstat(handle.fileno()).st_mode):  # /dev/zero would never end
            raise ValueError("it is a device, not a snapshot file")
        raw = handle.read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text, so not a .heapsnapshot file") from None
    except ValueError as exc:
        raise ValueError(f"it is not JSON ({getattr(exc, 'msg', exc)} at line {getattr(exc, 'lineno', '?')})") from None
    try:
        width = len(data["snapshot"]["meta"]["node_fields"])
        strings, nodes = data["strings"], data["nodes"]
        kinds = data["snapshot"]["meta"]["node_types"][0]
        stats: dict[str, list[int]] = {}
        for start in range(0, len(nodes), width):
            kind = kinds[nodes[start]]
            name = strings[nodes[start + 1]]
            key = f"({kind})" if kind in ("string", "number", "synthetic") else name
            entry = stats.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] += nodes[start + 3]
    except (KeyError, TypeError, IndexError, ValueError):
        raise ValueError(
            "it is JSON but not a V8 heap snapshot (expected snapshot.meta.node_fields, nodes and strings)"
        ) from None
    return {name: (count, size) for name, (count, size) in stats.items()}


def compare(before: str, after: str, limit: int = 20) -> list[tuple[str, int, int]]:
    """The types that grew most from *before* to *after*: (name, count delta, size delta), biggest first."""
    return grown(type_stats(before), type_stats(after), limit)


def grown(
    old: dict[str, tuple[int, int]], new: dict[str, tuple[int, int]], limit: int = 20
) -> list[tuple[str, int, int]]:
    """The types that grew most from the stats *old* to *new*, biggest first."""
    deltas = [
        (name, new.get(name, (0, 0))[0] - old.get(name, (0, 0))[0], new.get(name, (0, 0))[1] - old.get(name, (0, 0))[1])
        for name in set(old) | set(new)
    ]
    kept = [d for d in deltas if d[1] > 0 or d[2] > 0]
    return sorted(kept, key=lambda d: (-d[2], -d[1], d[0]))[:limit]


def write_leaks(
    config: pytest.Config, directory: str, nodeid: str, drawn: list[tuple[list[Any], set[int]]], objs: list[Any]
) -> None:
    """One test's leaked objects (*drawn*: each leak's chain from a module and its closure among *objs*), their
    references among themselves and their chains, as ``DIRECTORY/<nodeid>.heapsnapshot``.
    """
    from pytest_leakhunt import artifacts

    snapshot = Snapshot()
    for chain, closure in drawn:
        add_chain(snapshot, chain)
        add_objects(snapshot, [objs[j] for j in closure])
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_") + ".heapsnapshot"
    # a snapshot that cannot be written is one warning at the end, never this test's verdict
    artifacts.register(config).write(
        artifacts.SNAPSHOT, os.path.join(directory, name), snapshot.write, replace_at_end=True
    )
