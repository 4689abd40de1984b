"""The precision/recall corpus: tests that leak, and clean tests that look like they might.

Each case is the source of one test module (run together in a fresh interpreter).
LEAKING cases name the type the report must blame; CLEAN cases must not be
reported. Every clean case uses keys and patterns of its own, so no case
relies on a cache an earlier one already filled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    #: qualified type name the leak report must mention (leaking cases only)
    blame: str = ""


# Helper module shared by the corpus: the "application" the cases exercise.
APP = '''
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
'''

LEAKING: tuple[Case, ...] = (
    Case("module_list", "from corpusapp import REGISTRY, Order\ndef test_it():\n    REGISTRY.append(Order())\n", "corpusapp.Order"),
    Case("module_dict", "from corpusapp import BY_KEY, Order\ndef test_it():\n    BY_KEY['k1'] = Order()\n", "corpusapp.Order"),
    Case("class_attribute", "import corpusapp\ndef test_it():\n    corpusapp.Bus().subscribe(corpusapp.Order())\n", "corpusapp.Order"),
    Case("instance_attribute_of_singleton", "import corpusapp\ndef test_it():\n    corpusapp.SERVICE.history.append(corpusapp.Order(3))\n", "corpusapp.Order"),
    Case("unbounded_lru_cache", "import corpusapp\ndef test_it():\n    corpusapp.price(corpusapp.Order(2))\n", "corpusapp.Order"),
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
    Case("lambda_listener", "import corpusapp\ndef test_it():\n    corpusapp.LISTENERS.append(lambda: None)\n", "function"),
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
    Case(
        "ordered_dict_cache",
        "import collections\nclass Row:\n    pass\nCACHE = collections.OrderedDict()\ndef test_it():\n    CACHE['row'] = Row()\n",
        "Row",
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
    Case("setattr_on_module", "import corpusapp\nclass Extra:\n    pass\ndef test_it():\n    corpusapp.extra = Extra()\n", "Extra"),
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
        "leak_in_fixture_setup",
        "import pytest, corpusapp\n@pytest.fixture\ndef order():\n    o = corpusapp.Order(5)\n    corpusapp.REGISTRY.append(o)\n    return o\n"
        "def test_it(order):\n    assert order.n == 5\n",
        "corpusapp.Order",
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
    Case("typing_alias", "import typing\nclass Local:\n    pass\ndef test_it():\n    typing.List[Local]\n    typing.Optional[typing.Dict[str, Local]]\n"),
    Case("struct_format", "import struct\ndef test_it():\n    struct.pack('<iiq13s', 1, 2, 3, b'x')\n"),
    Case("codec_lookup", "def test_it():\n    'abc'.encode('cp1252')\n    'abc'.encode('utf-16-le')\n"),
    Case("linecache", "import linecache\ndef test_it(tmp_path):\n    p = tmp_path / 'f.py'\n    p.write_text('x = 1\\n')\n    linecache.getline(str(p), 1)\n"),
    Case("fnmatch", "import fnmatch\ndef test_it():\n    fnmatch.fnmatch('corpus.txt', '*.corpus-fn')\n"),
    Case("urlsplit", "from urllib.parse import urlsplit, urlparse\ndef test_it():\n    urlsplit('https://corpus.example/a?b=1')\n    urlparse('https://corpus.example/parse')\n"),
    Case("strptime", "import time, datetime\ndef test_it():\n    time.strptime('2024-01-02', '%Y-%m-%d')\n    datetime.datetime.strptime('03/04/25', '%d/%m/%y')\n"),
    Case("warnings_registry", "import warnings\ndef warn():\n    warnings.warn('corpus deprecation', UserWarning)\ndef test_it():\n    with warnings.catch_warnings():\n        warnings.simplefilter('ignore')\n        warn()\n"),
    Case("get_logger_and_log", "import logging\ndef test_it():\n    logging.getLogger('corpus.clean.child').info('hello %s', 1)\n"),
    Case("lazy_stdlib_import", "def test_it():\n    import sched, graphlib\n    sched.scheduler()\n"),
    Case("garbage_cycle", "class Node:\n    pass\ndef test_it():\n    a, b = Node(), Node()\n    a.other, b.other = b, a\n"),
    Case("weak_value_dict", "import weakref\nclass Obj:\n    pass\nWEAK = weakref.WeakValueDictionary()\ndef test_it():\n    WEAK['k'] = Obj()\n"),
    Case("module_fixture_first_use", "import pytest, corpusapp\n@pytest.fixture(scope='module')\ndef big():\n    return [corpusapp.Order(i) for i in range(3)]\ndef test_it(big):\n    assert len(big) == 3\n"),
    Case("session_fixture_first_use", "import pytest, corpusapp\n@pytest.fixture(scope='session')\ndef shared():\n    yield corpusapp.Service()\ndef test_it(shared):\n    shared.history.append(corpusapp.Order())\n"),
    Case("xfail_keeps_traceback", "import pytest\nclass Big:\n    pass\n@pytest.mark.xfail(strict=True)\ndef test_it():\n    local = Big()\n    assert local is None\n"),
    Case("capsys_and_caplog", "import logging\nclass Shown:\n    pass\ndef test_it(capsys, caplog):\n    print(Shown())\n    logging.getLogger('corpus.caplog').warning('obj %s', Shown())\n    assert capsys.readouterr().out\n"),
    Case("monkeypatch_global", "import corpusapp\nclass Fake:\n    pass\ndef test_it(monkeypatch):\n    monkeypatch.setattr(corpusapp, 'SERVICE', Fake())\n"),
    Case("thread_joined", "import threading\ndef test_it():\n    t = threading.Thread(target=lambda: None, name='joined')\n    t.start()\n    t.join()\n"),
    Case(
        "thread_finished_not_joined",
        "import threading, time\ndef test_it():\n    done = threading.Event()\n"
        "    threading.Thread(target=done.set, name='finished').start()\n    done.wait()\n    time.sleep(0.05)\n",
    ),
    Case("expandvars", "import os\ndef test_it():\n    os.path.expandvars('$HOME/corpus')\n    os.path.expandvars(b'$HOME/corpus')\n"),
    Case("mock_patch_context", "from unittest import mock\nimport corpusapp\ndef test_it():\n    with mock.patch.object(corpusapp, 'SERVICE') as fake:\n        fake.history = []\n"),
    Case("abc_register_local_class", "import collections.abc\ndef test_it():\n    class Mine:\n        pass\n    collections.abc.Sized.register(Mine)\n    assert not isinstance(Mine(), collections.abc.Hashable) or True\n"),
    Case("dataclass_in_test", "import dataclasses\ndef test_it():\n    @dataclasses.dataclass\n    class Point:\n        x: int\n    assert Point(1) == Point(1)\n"),
    Case("pytest_warns", "import pytest, warnings\nclass MyWarning(UserWarning):\n    pass\ndef test_it():\n    with pytest.warns(MyWarning):\n        warnings.warn('w', MyWarning)\n"),
    Case("bounded_lru_cache", "import corpusapp\ndef test_it():\n    corpusapp.bounded_price(corpusapp.Order(4))\n"),
    Case("added_then_removed", "import corpusapp\ndef test_it():\n    o = corpusapp.Order()\n    corpusapp.REGISTRY.append(o)\n    corpusapp.REGISTRY.remove(o)\n"),
    Case("addfinalizer_cleanup", "import corpusapp\ndef test_it(request):\n    o = corpusapp.Order()\n    corpusapp.LISTENERS.append(o)\n    request.addfinalizer(lambda: corpusapp.LISTENERS.remove(o))\n"),
    Case("handled_exception", "class Payload:\n    pass\ndef boom():\n    p = Payload()\n    raise KeyError(p)\ndef test_it():\n    try:\n        boom()\n    except KeyError:\n        pass\n"),
    Case("inspect_getsource", "import inspect, corpusapp\ndef test_it():\n    inspect.getsource(corpusapp.Service)\n"),
    Case("decimal_context", "import decimal\ndef test_it():\n    decimal.getcontext().prec = 10\n    decimal.Decimal('1.1') + decimal.Decimal('2.2')\n"),
    Case("asyncio_run", "import asyncio\nasync def work():\n    await asyncio.sleep(0)\n    return 1\ndef test_it():\n    assert asyncio.run(work()) == 1\n"),
    Case("tempfile_mkstemp", "import os, tempfile\ndef test_it():\n    fd, path = tempfile.mkstemp()\n    os.close(fd)\n    os.unlink(path)\n"),
    Case("enum_in_test", "import enum\ndef test_it():\n    class Color(enum.Enum):\n        RED = 1\n    assert Color.RED.value == 1\n"),
    Case("parametrized_objects", "import pytest, corpusapp\n@pytest.mark.parametrize('order', [corpusapp.Order(1)])\ndef test_it(order):\n    assert order.n == 1\n"),
    Case("failing_test_locals", "class Big:\n    pass\ndef test_it():\n    local = Big()\n    assert local is None\n"),
    Case("json_roundtrip", "import json\ndef test_it():\n    assert json.loads(json.dumps({'a': [1, 2]})) == {'a': [1, 2]}\n"),
    Case("importlib_metadata", "import importlib.metadata\ndef test_it():\n    importlib.metadata.version('pytest')\n"),
    # a path not seen before: importlib.metadata caches a FastPath for it on a class method (3.10, 3.11)
    Case(
        "importlib_metadata_new_path",
        "import importlib.metadata, tempfile\ndef test_it():\n    assert not list(importlib.metadata.distributions(path=[tempfile.mkdtemp()]))\n",
    ),
    Case("subprocess_run", "import subprocess, sys\ndef test_it():\n    subprocess.run([sys.executable, '-c', 'pass'], check=True)\n"),
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
