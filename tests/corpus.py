"""The precision/recall corpus: tests that leak, and clean tests that look like they might.

Each case is the source of one test module (run together in a fresh interpreter).
LEAKING cases grow on every run and name the type the report must blame;
RETAINED_ONCE cases keep something once (a slot every run overwrites) and must
be listed as retained once, not failed; CLEAN cases must not be reported
(retained once is allowed). Every clean case uses keys and patterns of its
own, so no case relies on a cache an earlier one already filled.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    #: qualified type name the leak report must mention (leaking cases only)
    blame: str = ""


def _module(source: str) -> str:
    """A case's module source written indented in a triple-quoted string."""
    return textwrap.dedent(source).lstrip("\n")


# Helper module shared by the corpus: the "application" the cases exercise.
APP = """
import functools
import logging
import threading

REGISTRY = []
BY_KEY = {}
LISTENERS = []
app_log = logging.getLogger("corpusapp")


class Order:
    def __init__(self, n=0):
        self.n = n
        self.lines = [n]


class Bus:
    subscribers = []

    def subscribe(self, fn):
        self.subscribers.append(fn)


class Service:
    def __init__(self):
        self.history = []


SERVICE = Service()


@functools.lru_cache(maxsize=None)
def price(order):
    return order.n * 2


@functools.lru_cache(maxsize=4)
def bounded_price(order):
    return order.n * 3


class Memo:
    cache = {}
"""

LEAKING: tuple[Case, ...] = (
    Case(
        "module_list",
        "from corpusapp import REGISTRY, Order\ndef test_it():\n    REGISTRY.append(Order())\n",
        "corpusapp.Order",
    ),
    Case(
        "class_attribute",
        "import corpusapp\ndef test_it():\n    corpusapp.Bus().subscribe(corpusapp.Order())\n",
        "corpusapp.Order",
    ),
    Case(
        "instance_attribute_of_singleton",
        "import corpusapp\ndef test_it():\n    corpusapp.SERVICE.history.append(corpusapp.Order(3))\n",
        "corpusapp.Order",
    ),
    Case(
        "unbounded_lru_cache",
        "import corpusapp\ndef test_it():\n    corpusapp.price(corpusapp.Order(2))\n",
        "corpusapp.Order",
    ),
    Case(
        "functools_cache",
        "import functools\nclass Thing:\n    pass\n@functools.cache\ndef look(t):\n    return 1\ndef test_it():\n    look(Thing())\n",
        "Thing",
    ),
    Case(
        "bound_method_listener",
        "import corpusapp\nclass Widget:\n    def on_event(self):\n        pass\ndef test_it():\n    corpusapp.LISTENERS.append(Widget().on_event)\n",
        "Widget",
    ),
    Case(
        "lambda_listener",
        "import corpusapp\ndef test_it():\n    corpusapp.LISTENERS.append(lambda: None)\n",
        "function",
    ),
    Case(
        "handler_on_existing_logger",
        "import logging, corpusapp\ndef test_it():\n    corpusapp.app_log.addHandler(logging.StreamHandler())\n",
        "logging.StreamHandler",
    ),
    Case(
        "handler_on_new_logger",
        "import logging\ndef test_it():\n    logging.getLogger('corpus.fresh.logger').addHandler(logging.NullHandler())\n",
        "logging.NullHandler",
    ),
    Case(
        "filter_on_root_logger",
        "import logging\nclass OnlyMine(logging.Filter):\n    pass\ndef test_it():\n    logging.getLogger().addFilter(OnlyMine())\n",
        "OnlyMine",
    ),
    Case(
        "thread_never_joined",
        "import threading\nSTOP = threading.Event()\ndef test_it():\n"
        "    threading.Thread(target=STOP.wait, args=(5,), name='never-joined', daemon=True).start()\n",
        "threading.Thread",
    ),
    Case(
        "atexit_callback",
        "import atexit\nclass Resource:\n    def close(self):\n        pass\ndef test_it():\n    atexit.register(Resource().close)\n",
        "Resource",
    ),
    Case(
        "mock_patch_never_stopped",
        "from unittest import mock\nimport corpusapp\ndef test_it():\n    mock.patch.object(corpusapp, 'SERVICE').start()\n",
        "unittest.mock",
    ),
    Case(
        "exception_kept_in_global",
        "LAST = []\nclass Payload:\n    pass\ndef fail():\n    payload = Payload()\n    raise ValueError('x')\n"
        "def test_it():\n    try:\n        fail()\n    except ValueError as exc:\n        LAST.append(exc)\n",
        "Payload",
    ),
    Case(
        "closure_in_global",
        "HOOKS = []\nclass Ctx:\n    pass\ndef test_it():\n    ctx = Ctx()\n    HOOKS.append(lambda: ctx)\n",
        "function",
    ),
    Case(
        "defaultdict_accumulator",
        "import collections\nclass Event:\n    pass\nSEEN = collections.defaultdict(list)\ndef test_it():\n    SEEN['a'].append(Event())\n",
        "Event",
    ),
    Case("set_registry", "class Key:\n    pass\nKEYS = set()\ndef test_it():\n    KEYS.add(Key())\n", "Key"),
    Case(
        "deque_without_maxlen",
        "import collections\nclass Msg:\n    pass\nQ = collections.deque()\ndef test_it():\n    Q.append(Msg())\n",
        "Msg",
    ),
    Case(
        "suspended_generator",
        "GENS = []\ndef produce():\n    yield 1\n    yield 2\ndef test_it():\n    g = produce()\n    next(g)\n    GENS.append(g)\n",
        "generator",
    ),
    Case(
        "class_level_memo",
        "import corpusapp\ndef test_it():\n    corpusapp.Memo.cache[object()] = corpusapp.Order(9)\n",
        "corpusapp.Order",
    ),
    Case(
        "partial_callback",
        "import functools, corpusapp\nclass Target:\n    def hit(self, x):\n        pass\n"
        "def test_it():\n    corpusapp.LISTENERS.append(functools.partial(Target().hit, 1))\n",
        "Target",
    ),
    Case(
        "leak_in_fixture_setup",
        "import pytest, corpusapp\n@pytest.fixture\ndef order():\n    o = corpusapp.Order(5)\n    corpusapp.REGISTRY.append(o)\n    return o\n"
        "def test_it(order):\n    assert order.n == 5\n",
        "corpusapp.Order",
    ),
    # Builtin-only leaks: no class of the test's own in what is kept, only dicts, lists, exceptions, partials...
    Case(
        "dict_of_lists_in_module_list",
        _module("""
            EVENTS = []
            def test_it():
                EVENTS.append({"kind": "click", "ids": [1, 2, 3]})
        """),
        "dict",
    ),
    Case(
        "valueerror_kept_with_traceback",
        _module("""
            ERRORS = []
            def parse(text):
                return int(text)
            def test_it():
                try:
                    parse("not-a-number")
                except ValueError as exc:
                    ERRORS.append(exc)
        """),
        "ValueError",
    ),
    Case(
        "keyerror_kept_in_app_list",
        _module("""
            import corpusapp
            def test_it():
                try:
                    {}["missing-key"]
                except KeyError as exc:
                    corpusapp.REGISTRY.append(exc)
        """),
        "KeyError",
    ),
    Case(
        "exception_with_custom_message_kept",
        _module("""
            FAILURES = []
            def test_it():
                try:
                    raise RuntimeError(f"worker stopped after {[1, 2]}")
                except RuntimeError as exc:
                    FAILURES.append(exc)
        """),
        "RuntimeError",
    ),
    Case(
        "exception_from_nested_helper_with_locals",
        _module("""
            KEPT = []
            def inner(depth):
                scratch = [depth] * 64
                lookup = {"depth": depth, "scratch": scratch}
                if depth == 0:
                    raise LookupError("bottom")
                inner(depth - 1)
            def test_it():
                try:
                    inner(3)
                except LookupError as exc:
                    KEPT.append(exc)
        """),
        "LookupError",
    ),
    Case(
        "oserror_kept",
        _module("""
            SEEN_ERRORS = []
            def test_it(tmp_path):
                try:
                    open(tmp_path / "absent" / "file.txt")
                except OSError as exc:
                    SEEN_ERRORS.append(exc)
        """),
        "FileNotFoundError",
    ),
    Case(
        "exc_info_tuple_kept",
        _module("""
            import sys
            CRASHES = []
            def test_it():
                try:
                    [][1]
                except IndexError:
                    CRASHES.append(sys.exc_info())
        """),
        "tuple",
    ),
    Case(
        "traceback_kept",
        _module("""
            TRACEBACKS = []
            def test_it():
                try:
                    1 / 0
                except ZeroDivisionError as exc:
                    TRACEBACKS.append(exc.__traceback__)
        """),
        "traceback",
    ),
    Case(
        "partial_in_callback_list",
        _module("""
            import functools
            CALLBACKS = []
            def test_it():
                CALLBACKS.append(functools.partial(print, "done", end=""))
        """),
        "functools.partial",
    ),
    Case(
        "partial_with_list_in_app_listeners",
        _module("""
            import functools, corpusapp
            def test_it():
                corpusapp.LISTENERS.append(functools.partial(sorted, [3, 1, 2], reverse=True))
        """),
        "functools.partial",
    ),
    Case(
        "bound_list_append_on_bus",
        _module("""
            BUS = {}
            def subscribe(name, callback):
                BUS.setdefault(name, []).append(callback)
            def test_it():
                received = []
                subscribe("order.created", received.append)
        """),
        # what a second run adds: the bound append (the first run also made the bucket)
        "builtin_function_or_method",
    ),
    Case(
        "bound_dict_update_in_app_listeners",
        _module("""
            import corpusapp
            def test_it():
                state = {"seen": []}
                corpusapp.LISTENERS.append(state.update)
        """),
        "builtin_function_or_method",
    ),
    Case(
        "bound_append_on_class_attribute_bus",
        _module("""
            import corpusapp
            def test_it():
                inbox = []
                corpusapp.Bus.subscribers.append(inbox.append)
        """),
        "builtin_function_or_method",
    ),
    Case(
        "defaultdict_list_bucket",
        _module("""
            import collections
            BUCKETS = collections.defaultdict(list)
            def test_it():
                BUCKETS["hits"].append({"path": "/a", "status": [200]})
        """),
        # the report names the bucket the first run made, which holds what every run appends
        "dict",
    ),
    Case(
        "set_of_frozensets",
        _module("""
            import uuid
            PAIRS = set()
            def test_it():
                PAIRS.add(frozenset({"left", uuid.uuid4().hex}))
        """),
        "frozenset",
    ),
    Case(
        "deque_of_sets_without_maxlen",
        _module("""
            import collections
            OUTBOX = collections.deque()
            def test_it():
                OUTBOX.append({"to-a", "to-b"})
        """),
        "set",
    ),
    Case(
        "nested_containers_appended",
        _module("""
            EVENTS_LOG = []
            def test_it():
                EVENTS_LOG.append({"a": [{"b": [1]}]})
        """),
        "dict",
    ),
    Case(
        "self_referencing_list",
        _module("""
            CYCLES = []
            def test_it():
                node = [1, 2]
                node.append(node)
                CYCLES.append(node)
        """),
        "list",
    ),
    Case(
        "tuple_with_list_appended",
        _module("""
            ROWS = []
            def test_it():
                ROWS.append(("row", [4, 5, 6]))
        """),
        "tuple",
    ),
    Case(
        "list_in_class_attribute",
        _module("""
            class Audit:
                entries = []
            def test_it():
                Audit.entries.append({"user": "u1", "actions": ["login"]})
        """),
        "dict",
    ),
    Case(
        "singleton_instance_attribute_builtin",
        _module("""
            import corpusapp
            def test_it():
                corpusapp.SERVICE.history.append({"order": 7, "lines": [7, 8]})
        """),
        "dict",
    ),
    Case(
        "memoryviews_in_a_module_list",
        _module("""
            FRAMES = []
            def test_it():
                FRAMES.append(memoryview(bytearray(b"frame")))
        """),
        "memoryview",
    ),
    Case(
        "threading_local_list",
        _module("""
            import threading
            LOCAL = threading.local()
            def test_it():
                LOCAL.items = getattr(LOCAL, "items", [])
                LOCAL.items.append([1, 2, 3])
        """),
        "list",
    ),
    Case(
        "contextvar_list_set_at_import",
        _module("""
            import contextvars
            PENDING = contextvars.ContextVar("corpus_pending")
            PENDING.set([])
            def test_it():
                PENDING.get().append({"task": "t1"})
        """),
        "untracked values",
    ),
    Case(
        "contextvar_default_list",
        _module("""
            import contextvars
            TRAIL = contextvars.ContextVar("corpus_trail", default=[])
            def test_it():
                TRAIL.get().append(["step", 1])
        """),
        "list",
    ),
    Case(
        "atexit_partial",
        _module("""
            import atexit, functools
            def test_it():
                atexit.register(functools.partial(len, ["flush", "on", "exit"]))
        """),
        "functools.partial",
    ),
    Case(
        "session_fixture_bus_dict",
        _module("""
            import pytest
            @pytest.fixture(scope="session")
            def bus():
                return {}
            def test_it(bus):
                seen = []
                bus.setdefault("ready", []).append(seen.append)
            def test_later(bus):  # keeps the session fixture alive past test_it, as a suite does
                assert "ready" in bus
        """),
        "builtin_function_or_method",
    ),
    Case(
        "session_fixture_listener_list",
        _module("""
            import pytest
            @pytest.fixture(scope="session")
            def listeners():
                yield []
            def test_it(listeners):
                got = []
                listeners.append(got.append)
            def test_later(listeners):
                assert listeners
        """),
        "builtin_function_or_method",
    ),
    Case(
        "module_fixture_list_appended",
        _module("""
            import pytest
            @pytest.fixture(scope="module")
            def journal():
                return []
            def test_it(journal):
                journal.append({"entry": [1]})
            def test_later(journal):
                assert journal
        """),
        "dict",
    ),
    Case(
        "sys_modules_unique_name",
        _module("""
            import sys, types, uuid
            def test_it():
                sys.modules[f"fake_{uuid.uuid4().hex}"] = types.ModuleType("fake")
        """),
        "module",
    ),
    Case(
        "dict_with_new_key_each_run",
        _module("""
            import uuid
            SESSIONS = {}
            def test_it():
                SESSIONS[uuid.uuid4().hex] = ["u2", {"admin"}]
        """),
        "list",
    ),
    Case(
        "dict_keyed_by_counter",
        _module("""
            HISTORY = {}
            def test_it():
                HISTORY[len(HISTORY)] = [("step", 1)]
        """),
        "list",
    ),
    Case(
        "bytearray_buffers",
        _module("""
            BUFFERS = []
            def test_it():
                BUFFERS.append(bytearray(4096))
        """),
        "untracked values",
    ),
    Case(
        "array_samples",
        _module("""
            import array
            SAMPLES = []
            def test_it():
                SAMPLES.append(array.array("d", [1.0, 2.0, 3.0]))
        """),
        "array",
    ),
    Case(
        "heap_of_tuples",
        _module("""
            import heapq, itertools
            HEAP = []
            TICKET = itertools.count()
            def test_it():
                heapq.heappush(HEAP, (next(TICKET), ["job", "payload"]))
        """),
        "tuple",
    ),
    Case(
        "queue_never_drained",
        _module("""
            import queue
            JOBS = queue.Queue()
            def test_it():
                JOBS.put({"job": "resize", "sizes": [1, 2]})
        """),
        "dict",
    ),
    Case(
        "chainmap_layers",
        _module("""
            import collections
            CONFIG = collections.ChainMap()
            def test_it():
                CONFIG.maps.insert(0, {"debug": [True]})
        """),
        "dict",
    ),
    Case(
        "list_iterator_kept",
        _module("""
            CURSORS = []
            def test_it():
                CURSORS.append(iter([("r", 1), ("r", 2)]))
        """),
        "list_iterator",
    ),
    Case(
        "re_match_kept",
        _module(r"""
            import re
            MATCHES = []
            def test_it():
                MATCHES.append(re.match(r"(\w+)-(\d+)", "order-42"))
        """),
        "re.Match",
    ),
    Case(
        "stringio_kept",
        _module("""
            import io
            STREAMS = []
            def test_it():
                STREAMS.append(io.StringIO("captured output"))
        """),
        "StringIO",
    ),
    Case(
        "simplenamespace_records",
        _module("""
            import types
            RECORDS = []
            def test_it():
                RECORDS.append(types.SimpleNamespace(id=1, tags=["a"]))
        """),
        "SimpleNamespace",
    ),
    # appended to a session fixture's object: running the test again (the fixture cached) appends again
    Case(
        "session_fixture_first_use",
        "import pytest, corpusapp\n@pytest.fixture(scope='session')\ndef shared():\n    yield corpusapp.Service()\ndef test_it(shared):\n    shared.history.append(corpusapp.Order())\n"
        "def test_later(shared):\n    assert shared.history\n",
        "corpusapp.Order",
    ),
    Case(
        "builtin_leak_in_fixture_setup",
        _module("""
            import pytest, corpusapp
            @pytest.fixture
            def payload():
                data = {"fixture": [1, 2]}
                corpusapp.REGISTRY.append(data)
                return data
            def test_it(payload):
                assert payload["fixture"]
        """),
        "dict",
    ),
    Case(
        "builtin_leak_in_fixture_teardown",
        _module("""
            import pytest, corpusapp
            @pytest.fixture
            def tracked():
                yield
                corpusapp.LISTENERS.append(["teardown", "marker"])
            def test_it(tracked):
                pass
        """),
        "list",
    ),
)

#: Slots every run overwrites (a name-keyed entry, a module attribute, a hook): listed as retained once, not failed.
RETAINED_ONCE: tuple[Case, ...] = (
    Case(
        "module_dict",
        "from corpusapp import BY_KEY, Order\ndef test_it():\n    BY_KEY['k1'] = Order()\n",
        "corpusapp.Order",
    ),
    Case(
        "ordered_dict_cache",
        "import collections\nclass Row:\n    pass\nCACHE = collections.OrderedDict()\ndef test_it():\n    CACHE['row'] = Row()\n",
        "Row",
    ),
    Case(
        "setattr_on_module",
        "import corpusapp\nclass Extra:\n    pass\ndef test_it():\n    corpusapp.extra = Extra()\n",
        "Extra",
    ),
    Case(
        "copyreg_registration",
        "import copyreg\nclass Pickled:\n    pass\ndef test_it():\n    copyreg.pickle(Pickled, lambda p: (Pickled, ()))\n",
        "function",
    ),
    Case(
        "excepthook_replaced",
        "import sys\ndef test_it():\n    def hook(*args):\n        pass\n    sys.excepthook = hook\n",
        "function",
    ),
    Case(
        "leak_in_fixture_teardown",
        "import pytest, corpusapp\n@pytest.fixture\ndef svc():\n    yield\n    corpusapp.BY_KEY['teardown'] = corpusapp.Order(6)\n"
        "def test_it(svc):\n    pass\n",
        "corpusapp.Order",
    ),
    Case(
        "nested_containers",
        "import corpusapp\nclass Leaf:\n    pass\ndef test_it():\n    corpusapp.BY_KEY['nested'] = {'a': [Leaf(), Leaf()]}\n",
        "Leaf",
    ),
)

CLEAN: tuple[Case, ...] = (
    Case("re_compile", "import re\ndef test_it():\n    re.compile(r'corpus-[0-9]+-compile')\n"),
    Case("re_match", "import re\ndef test_it():\n    assert re.match(r'c(o)rpus-match', 'corpus-match')\n"),
    Case(
        "typing_alias",
        "import typing\nclass Local:\n    pass\ndef test_it():\n    typing.List[Local]\n    typing.Optional[typing.Dict[str, Local]]\n",
    ),
    Case("struct_format", "import struct\ndef test_it():\n    struct.pack('<iiq13s', 1, 2, 3, b'x')\n"),
    Case("codec_lookup", "def test_it():\n    'abc'.encode('cp1252')\n    'abc'.encode('utf-16-le')\n"),
    Case(
        "linecache",
        "import linecache\ndef test_it(tmp_path):\n    p = tmp_path / 'f.py'\n    p.write_text('x = 1\\n')\n    linecache.getline(str(p), 1)\n",
    ),
    Case("fnmatch", "import fnmatch\ndef test_it():\n    fnmatch.fnmatch('corpus.txt', '*.corpus-fn')\n"),
    Case(
        "urlsplit",
        "from urllib.parse import urlsplit, urlparse\ndef test_it():\n    urlsplit('https://corpus.example/a?b=1')\n    urlparse('https://corpus.example/parse')\n",
    ),
    Case(
        "strptime",
        "import time, datetime\ndef test_it():\n    time.strptime('2024-01-02', '%Y-%m-%d')\n    datetime.datetime.strptime('03/04/25', '%d/%m/%y')\n",
    ),
    Case(
        "warnings_registry",
        "import warnings\ndef warn():\n    warnings.warn('corpus deprecation', UserWarning)\ndef test_it():\n    with warnings.catch_warnings():\n        warnings.simplefilter('ignore')\n        warn()\n",
    ),
    Case(
        "get_logger_and_log",
        "import logging\ndef test_it():\n    logging.getLogger('corpus.clean.child').info('hello %s', 1)\n",
    ),
    Case("lazy_stdlib_import", "def test_it():\n    import sched, graphlib\n    sched.scheduler()\n"),
    Case(
        "garbage_cycle",
        "class Node:\n    pass\ndef test_it():\n    a, b = Node(), Node()\n    a.other, b.other = b, a\n",
    ),
    Case(
        "weak_value_dict",
        "import weakref\nclass Obj:\n    pass\nWEAK = weakref.WeakValueDictionary()\ndef test_it():\n    WEAK['k'] = Obj()\n",
    ),
    Case(
        "module_fixture_first_use",
        "import pytest, corpusapp\n@pytest.fixture(scope='module')\ndef big():\n    return [corpusapp.Order(i) for i in range(3)]\ndef test_it(big):\n    assert len(big) == 3\n",
    ),
    Case(
        "xfail_keeps_traceback",
        "import pytest\nclass Big:\n    pass\n@pytest.mark.xfail(strict=True)\ndef test_it():\n    local = Big()\n    assert local is None\n",
    ),
    Case(
        "capsys_and_caplog",
        "import logging\nclass Shown:\n    pass\ndef test_it(capsys, caplog):\n    print(Shown())\n    logging.getLogger('corpus.caplog').warning('obj %s', Shown())\n    assert capsys.readouterr().out\n",
    ),
    Case(
        "monkeypatch_global",
        "import corpusapp\nclass Fake:\n    pass\ndef test_it(monkeypatch):\n    monkeypatch.setattr(corpusapp, 'SERVICE', Fake())\n",
    ),
    Case(
        "thread_joined",
        "import threading\ndef test_it():\n    t = threading.Thread(target=lambda: None, name='joined')\n    t.start()\n    t.join()\n",
    ),
    Case(
        "thread_finished_not_joined",
        "import threading, time\ndef test_it():\n    done = threading.Event()\n"
        "    threading.Thread(target=done.set, name='finished').start()\n    done.wait()\n    time.sleep(0.05)\n",
    ),
    Case(
        "reader_thread_blocked_in_a_read",
        _module("""
            import os, threading, time
            READ, WRITE = os.pipe()
            def pump():
                stream = os.fdopen(READ, "rb")
                while stream.read(4):
                    pass
            threading.Thread(target=pump, name="corpus-reader", daemon=True).start()
            def test_it():
                os.write(WRITE, b"12345678")
                time.sleep(0.1)
        """),
    ),
    Case(
        "expandvars",
        "import os\ndef test_it():\n    os.path.expandvars('$HOME/corpus')\n    os.path.expandvars(b'$HOME/corpus')\n",
    ),
    Case(
        "mock_patch_context",
        "from unittest import mock\nimport corpusapp\ndef test_it():\n    with mock.patch.object(corpusapp, 'SERVICE') as fake:\n        fake.history = []\n",
    ),
    Case(
        "abc_register_local_class",
        "import collections.abc\ndef test_it():\n    class Mine:\n        pass\n    collections.abc.Sized.register(Mine)\n    assert not isinstance(Mine(), collections.abc.Hashable) or True\n",
    ),
    Case(
        "dataclass_in_test",
        "import dataclasses\ndef test_it():\n    @dataclasses.dataclass\n    class Point:\n        x: int\n    assert Point(1) == Point(1)\n",
    ),
    Case(
        "pytest_warns",
        "import pytest, warnings\nclass MyWarning(UserWarning):\n    pass\ndef test_it():\n    with pytest.warns(MyWarning):\n        warnings.warn('w', MyWarning)\n",
    ),
    Case("bounded_lru_cache", "import corpusapp\ndef test_it():\n    corpusapp.bounded_price(corpusapp.Order(4))\n"),
    Case(
        "added_then_removed",
        "import corpusapp\ndef test_it():\n    o = corpusapp.Order()\n    corpusapp.REGISTRY.append(o)\n    corpusapp.REGISTRY.remove(o)\n",
    ),
    Case(
        "addfinalizer_cleanup",
        "import corpusapp\ndef test_it(request):\n    o = corpusapp.Order()\n    corpusapp.LISTENERS.append(o)\n    request.addfinalizer(lambda: corpusapp.LISTENERS.remove(o))\n",
    ),
    Case(
        "handled_exception",
        "class Payload:\n    pass\ndef boom():\n    p = Payload()\n    raise KeyError(p)\ndef test_it():\n    try:\n        boom()\n    except KeyError:\n        pass\n",
    ),
    Case("inspect_getsource", "import inspect, corpusapp\ndef test_it():\n    inspect.getsource(corpusapp.Service)\n"),
    Case(
        "decimal_context",
        "import decimal\ndef test_it():\n    decimal.getcontext().prec = 10\n    decimal.Decimal('1.1') + decimal.Decimal('2.2')\n",
    ),
    Case(
        "asyncio_run",
        "import asyncio\nasync def work():\n    await asyncio.sleep(0)\n    return 1\ndef test_it():\n    assert asyncio.run(work()) == 1\n",
    ),
    Case(
        "tempfile_mkstemp",
        "import os, tempfile\ndef test_it():\n    fd, path = tempfile.mkstemp()\n    os.close(fd)\n    os.unlink(path)\n",
    ),
    Case(
        "enum_in_test",
        "import enum\ndef test_it():\n    class Color(enum.Enum):\n        RED = 1\n    assert Color.RED.value == 1\n",
    ),
    Case(
        "parametrized_objects",
        "import pytest, corpusapp\n@pytest.mark.parametrize('order', [corpusapp.Order(1)])\ndef test_it(order):\n    assert order.n == 1\n",
    ),
    Case("failing_test_locals", "class Big:\n    pass\ndef test_it():\n    local = Big()\n    assert local is None\n"),
    Case(
        "json_roundtrip",
        "import json\ndef test_it():\n    assert json.loads(json.dumps({'a': [1, 2]})) == {'a': [1, 2]}\n",
    ),
    Case("importlib_metadata", "import importlib.metadata\ndef test_it():\n    importlib.metadata.version('pytest')\n"),
    # a path not seen before: importlib.metadata caches a FastPath for it on a class method (3.10, 3.11)
    Case(
        "importlib_metadata_new_path",
        "import importlib.metadata, tempfile\ndef test_it():\n    assert not list(importlib.metadata.distributions(path=[tempfile.mkdtemp()]))\n",
    ),
    Case(
        "subprocess_run",
        "import subprocess, sys\ndef test_it():\n    subprocess.run([sys.executable, '-c', 'pass'], check=True)\n",
    ),
    # Look-alikes: kept once (a lazy singleton, a memo, a slot every run overwrites), kept by pytest, or cleaned up.
    Case(
        "lazy_singleton_dict",
        _module("""
            _CLIENT = None
            def get_client():
                global _CLIENT
                if _CLIENT is None:
                    _CLIENT = {"pool": [1, 2], "opts": {"timeout": 3}}
                return _CLIENT
            def test_it():
                assert get_client()["pool"] == [1, 2]
        """),
    ),
    Case(
        "lazy_singleton_app_service",
        _module("""
            import corpusapp
            _SERVICE = None
            def service():
                global _SERVICE
                if _SERVICE is None:
                    _SERVICE = corpusapp.Service()
                return _SERVICE
            def test_it():
                assert service().history == []
        """),
    ),
    Case(
        "first_use_memo_on_module_object",
        _module("""
            import inspect
            class Dispatcher:
                def __init__(self, fn):
                    self.fn = fn
                    self._sigspec = None
                def sigspec(self):
                    if self._sigspec is None:
                        self._sigspec = {"params": list(inspect.signature(self.fn).parameters)}
                    return self._sigspec
            def handler(a, b=1):
                return a
            DISPATCH = Dispatcher(handler)
            def test_it():
                assert DISPATCH.sigspec()["params"] == ["a", "b"]
        """),
    ),
    # retained once (each run replaces the entry): listed, not failed
    Case(
        "name_keyed_registry_class_in_test",
        _module("""
            PLUGINS = {}
            def register(cls):
                PLUGINS[cls.__name__] = cls
                return cls
            def test_it():
                @register
                class CsvExporter:
                    pass
                assert "CsvExporter" in PLUGINS
        """),
    ),
    Case(
        "slot_reset_by_autouse_fixture",
        _module("""
            import types, pytest
            _CONFIG = types.SimpleNamespace(factory=None)
            class Factory:
                pass
            @pytest.fixture(autouse=True)
            def reset_config():
                yield
                _CONFIG.factory = None
            def test_it():
                _CONFIG.factory = Factory()
        """),
    ),
    Case(
        "weak_key_cache_by_fixture_stream",
        _module(r"""
            import io, weakref, pytest
            PARSED = weakref.WeakKeyDictionary()
            @pytest.fixture
            def stream():
                return io.StringIO("a,b\n1,2\n")
            def test_it(stream):
                PARSED[stream] = [line.split(",") for line in stream]
                assert len(PARSED[stream]) == 2
        """),
    ),
    Case(
        "class_made_in_fixture",
        _module("""
            import pytest
            @pytest.fixture
            def model():
                class Model:
                    fields = ["id", "name"]
                return Model()
            def test_it(model):
                assert model.fields == ["id", "name"]
        """),
    ),
    Case(
        "mock_in_test_body",
        _module("""
            from unittest.mock import Mock
            def test_it():
                client = Mock()
                client.fetch(1, key=[2])
                client.fetch.assert_called_once_with(1, key=[2])
        """),
    ),
    Case(
        "magicmock_in_test_body",
        _module("""
            from unittest.mock import MagicMock
            def test_it():
                store = MagicMock()
                store.__getitem__.return_value = {"v": [1]}
                assert store["k"] == {"v": [1]}
                assert len(store) == 0
        """),
    ),
    Case(
        "create_autospec_in_test_body",
        _module("""
            import json
            from unittest.mock import create_autospec
            def test_it():
                fake = create_autospec(json.dumps, return_value="{}")
                assert fake({"a": 1}) == "{}"
                fake.assert_called_once_with({"a": 1})
        """),
    ),
    Case(
        "mock_function_fixture",
        _module("""
            import pytest
            from unittest.mock import Mock
            @pytest.fixture
            def gateway():
                return Mock(name="gateway")
            def test_it(gateway):
                gateway.charge(10, currency=["EUR"])
                assert gateway.charge.called
        """),
    ),
    # the module-scoped mock records calls; the function fixture in front of it resets it after each test
    Case(
        "magicmock_module_fixture_reset",
        _module("""
            import pytest
            from unittest.mock import MagicMock
            @pytest.fixture(scope="module")
            def shared_repo():
                return MagicMock()
            @pytest.fixture
            def repo(shared_repo):
                yield shared_repo
                shared_repo.reset_mock()
            def test_it(repo):
                repo.save({"id": 1, "tags": ["x"]})
                assert repo.save.call_count == 1
        """),
    ),
    Case(
        "autospec_session_fixture",
        _module("""
            import pytest, corpusapp
            from unittest.mock import create_autospec
            @pytest.fixture(scope="session")
            def fake_price():
                return create_autospec(corpusapp.price, return_value=0)
            def test_it(fake_price):
                assert fake_price.return_value == 0
                fake_price.assert_not_called()
        """),
    ),
    Case(
        "record_property_containers",
        _module("""
            def test_it(record_property):
                record_property("timings", [0.1, 0.2])
                record_property("meta", {"build": [1]})
        """),
    ),
    Case(
        "caplog_with_records",
        _module("""
            import logging
            def test_it(caplog):
                log = logging.getLogger("corpus.caplog.records")
                with caplog.at_level(logging.INFO):
                    for i in range(5):
                        log.info("item %s %s", i, {"payload": [i]})
                assert len(caplog.records) == 5
        """),
    ),
    Case(
        "capsys_large_output",
        _module("""
            def test_it(capsys):
                for i in range(200):
                    print({"line": i, "data": [i] * 5})
                out, err = capsys.readouterr()
                assert out.count("line") == 200
        """),
    ),
    Case(
        "node_stash_list",
        _module("""
            import pytest
            STEPS = pytest.StashKey[list]()
            def test_it(request):
                request.node.stash[STEPS] = [{"step": 1}, {"step": 2}]
                assert len(request.node.stash[STEPS]) == 2
        """),
    ),
    Case(
        "pytest_raises_excinfo_local",
        _module("""
            import pytest
            def lookup(key):
                table = {"ok": [1]}
                return table[key]
            def test_it():
                with pytest.raises(KeyError) as excinfo:
                    lookup("missing")
                assert "missing" in str(excinfo.value)
        """),
    ),
    Case(
        "recwarn_fixture",
        _module("""
            import warnings
            def test_it(recwarn):
                warnings.warn(f"old api {[1, 2]}", UserWarning)
                assert len(recwarn) == 1
        """),
    ),
    Case(
        "monkeypatch_setitem_dict",
        _module("""
            import corpusapp
            def test_it(monkeypatch):
                monkeypatch.setitem(corpusapp.BY_KEY, "patched", [corpusapp.Order(1)])
                assert corpusapp.BY_KEY["patched"]
        """),
    ),
    Case(
        "monkeypatch_setattr_list",
        _module("""
            import corpusapp
            def test_it(monkeypatch):
                monkeypatch.setattr(corpusapp, "REGISTRY", [{"fake": [1]}])
                corpusapp.REGISTRY.append({"more": [2]})
        """),
    ),
    Case(
        "function_fixture_list",
        _module("""
            import pytest
            @pytest.fixture
            def items():
                return [{"id": i} for i in range(10)]
            def test_it(items):
                items.append({"id": 10})
                assert len(items) == 11
        """),
    ),
    Case(
        "class_fixture_dict",
        _module("""
            import pytest
            @pytest.fixture(scope="class")
            def table():
                return {"rows": [[1, 2], [3, 4]]}
            class TestTable:
                def test_it(self, table):
                    assert table["rows"][0] == [1, 2]
        """),
    ),
    Case(
        "module_fixture_dict_read",
        _module("""
            import pytest
            @pytest.fixture(scope="module")
            def schema():
                return {"fields": ["id", "name"], "types": {"id": int}}
            def test_it(schema):
                assert [f for f in schema["fields"] if f in schema["types"]] == ["id"]
        """),
    ),
    Case(
        "package_fixture_list",
        _module("""
            import pytest
            @pytest.fixture(scope="package")
            def hosts():
                yield [("db", 5432), ("cache", 6379)]
            def test_it(hosts):
                assert dict(hosts)["db"] == 5432
        """),
    ),
    Case(
        "session_fixture_dict_read",
        _module("""
            import pytest
            @pytest.fixture(scope="session")
            def settings():
                return {"hosts": ["a", "b"], "retries": {"max": 3}}
            def test_it(settings):
                merged = dict(settings, extra=[1])
                assert merged["hosts"][0] == "a" and "extra" not in settings
        """),
    ),
    Case(
        "parametrize_list_value",
        _module("""
            import pytest
            @pytest.mark.parametrize("values", [[3, 1, 2]])
            def test_it(values):
                assert sorted(values) == [1, 2, 3]
        """),
    ),
    Case(
        "parametrize_dict_value",
        _module("""
            import pytest
            @pytest.mark.parametrize("config", [pytest.param({"mode": "fast", "flags": ["x"]}, id="fast")])
            def test_it(config):
                assert config["flags"] == ["x"]
        """),
    ),
    Case(
        "containers_made_and_dropped",
        _module("""
            def test_it():
                rows = [{"id": i, "tags": [str(i)]} for i in range(2000)]
                index = {r["id"]: r for r in rows}
                pairs = {frozenset((r["id"], -r["id"])) for r in rows}
                assert len(index) == 2000 and len(pairs) == 2000
        """),
    ),
    Case(
        "dict_setdefault_local",
        _module("""
            def test_it():
                bus = {}
                received = []
                bus.setdefault("local.event", []).append(received.append)
                for callback in bus["local.event"]:
                    callback({"id": 1})
                assert received == [{"id": 1}]
        """),
    ),
    Case(
        "lru_cache_maxsize_32",
        _module("""
            import functools, json
            @functools.lru_cache(maxsize=32)
            def load(text):
                return json.loads(text)
            def test_it():
                assert load('{"a": [1, 2]}')["a"] == [1, 2]
        """),
    ),
    Case(
        "handler_added_and_removed_in_fixture",
        _module("""
            import io, logging, pytest
            @pytest.fixture
            def captured():
                stream = io.StringIO()
                handler = logging.StreamHandler(stream)
                log = logging.getLogger("corpus.fixture.handler")
                log.addHandler(handler)
                yield stream
                log.removeHandler(handler)
            def test_it(captured):
                logging.getLogger("corpus.fixture.handler").warning("hello %s", [1])
                assert "hello" in captured.getvalue()
        """),
    ),
    Case(
        "new_logger_nothing_attached",
        _module("""
            import logging
            def test_it():
                log = logging.getLogger("corpus.brand.new.worker")
                log.setLevel(logging.DEBUG)
                assert log.isEnabledFor(logging.DEBUG)
        """),
    ),
    Case(
        "json_re_str_operations",
        _module(r"""
            import json, re
            def test_it():
                text = json.dumps({"b": [1, 2], "a": {"c": "x"}}, sort_keys=True, indent=2)
                words = re.findall(r"[a-z]+", text)
                assert "-".join(words).upper() == "A-C-X-B"
                assert re.sub(r"\s+", " ", text).count(":") == 3
                assert "{0}:{1}".format(*words[:2]).split(":") == ["a", "c"]
        """),
    ),
    Case(
        "contextvar_set_and_reset",
        _module("""
            import contextvars
            REQUEST = contextvars.ContextVar("corpus_request")
            def test_it():
                token = REQUEST.set({"user": "u1", "scopes": ["read"]})
                try:
                    assert REQUEST.get()["user"] == "u1"
                finally:
                    REQUEST.reset(token)
        """),
    ),
    # overwritten on every run: retained once
    Case(
        "threading_local_overwritten",
        _module("""
            import threading
            CURRENT = threading.local()
            def test_it():
                CURRENT.request = {"path": "/x", "headers": [("a", "b")]}
        """),
    ),
    Case(
        "exception_kept_in_local",
        _module("""
            def test_it():
                error = None
                try:
                    int("nope")
                except ValueError as exc:
                    error = exc
                assert error is not None and "nope" in str(error)
        """),
    ),
    Case(
        "bus_subscription_removed",
        _module("""
            BUS = {}
            def test_it():
                received = []
                subscribers = BUS.setdefault("shipped", [])
                subscribers.append(received.append)
                try:
                    for callback in subscribers:
                        callback({"id": 1})
                finally:
                    subscribers.remove(received.append)
                assert received == [{"id": 1}]
        """),
    ),
    Case(
        "deque_with_maxlen",
        _module("""
            import collections
            RECENT = collections.deque(maxlen=16)
            def test_it():
                RECENT.append({"event": "tick", "data": [1]})
        """),
    ),
    Case(
        "weakset_listener",
        _module("""
            import weakref
            WATCHERS = weakref.WeakSet()
            def test_it():
                def on_change(value):
                    return value
                WATCHERS.add(on_change)
                assert on_change in WATCHERS
        """),
    ),
    # the same name every run: the entry is replaced, retained once
    Case(
        "sys_modules_fixed_name_replaced",
        _module("""
            import sys, types
            def test_it():
                sys.modules["corpus_fake_fixed"] = types.ModuleType("corpus_fake_fixed")
        """),
    ),
    Case(
        "atexit_register_unregister",
        _module("""
            import atexit, functools
            def flush(buffer):
                buffer.clear()
            def test_it():
                callback = functools.partial(flush, [1, 2])
                atexit.register(callback)
                atexit.unregister(callback)
        """),
    ),
    Case(
        "module_list_cleared_by_autouse_fixture",
        _module("""
            import pytest
            SEEN = []
            @pytest.fixture(autouse=True)
            def clear_seen():
                yield
                SEEN.clear()
            def test_it():
                SEEN.append({"kind": "click", "ids": [1]})
        """),
    ),
    Case(
        "counter_same_key",
        _module("""
            import collections
            COUNTS = collections.Counter()
            def test_it():
                COUNTS["runs"] += 1_000_000
        """),
    ),
    Case(
        "settings_update_same_keys",
        _module("""
            import corpusapp
            def test_it():
                corpusapp.BY_KEY.update({"mode": ["strict"], "level": {"n": 2}})
        """),
    ),
    Case(
        "deepcopy_module_data",
        _module("""
            import copy
            DEFAULTS = {"retry": [1, 2, 4], "hosts": {"a": ["x"]}}
            def test_it():
                cfg = copy.deepcopy(DEFAULTS)
                cfg["retry"].append(8)
                assert DEFAULTS["retry"] == [1, 2, 4]
        """),
    ),
    Case(
        "partial_called_not_stored",
        _module("""
            import functools
            def test_it():
                by_length = functools.partial(sorted, key=len)
                assert by_length([[1, 2], [1]]) == [[1], [1, 2]]
        """),
    ),
    Case(
        "tmp_path_json_file",
        _module("""
            import json
            def test_it(tmp_path):
                path = tmp_path / "data.json"
                path.write_text(json.dumps({"rows": [[1], [2]]}))
                assert json.loads(path.read_text())["rows"][1] == [2]
        """),
    ),
    Case(
        "string_template_shlex_textwrap",
        _module(r"""
            import shlex, string, textwrap
            def test_it():
                assert string.Template("$who likes $what").substitute(who="tim", what="tea") == "tim likes tea"
                assert shlex.split("a 'b c'") == ["a", "b c"]
                assert textwrap.dedent("  x\n  y") == "x\ny"
        """),
    ),
    Case(
        "generator_exhausted",
        _module("""
            def pairs(n):
                for i in range(n):
                    yield i, [i]
            def test_it():
                assert sum(i for i, _ in pairs(50)) == 1225
        """),
    ),
    Case(
        "dataclass_asdict_module_class",
        _module("""
            import dataclasses
            @dataclasses.dataclass
            class Item:
                name: str
                tags: list
            def test_it():
                assert dataclasses.asdict(Item("a", ["x"])) == {"name": "a", "tags": ["x"]}
        """),
    ),
    Case(
        "mock_patch_dict_environ",
        _module("""
            import os
            from unittest import mock
            def test_it():
                with mock.patch.dict(os.environ, {"CORPUS_FLAG": "1"}):
                    assert os.environ["CORPUS_FLAG"] == "1"
        """),
    ),
    Case(
        "ipaddress_network",
        _module("""
            import ipaddress
            def test_it():
                net = ipaddress.ip_network("10.0.0.0/30")
                assert [str(h) for h in net.hosts()] == ["10.0.0.1", "10.0.0.2"]
        """),
    ),
)

#: A two-test module for option and report tests: test_leaks leaks one Thing, test_clean does not.
SMALL_SUITE = """
HELD = []
class Thing:
    pass
def test_leaks():
    HELD.append(Thing())
def test_clean():
    Thing()
"""

#: Clean cases that fail on purpose (their own failure, not a leak).
EXPECTED_FAILURES = frozenset({"failing_test_locals"})
