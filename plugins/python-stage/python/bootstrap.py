"""Run once when the bridge starts the interpreter: puts the bridge's kafka_client package in
front of any other (a finder over sources compiled into the bridge), and sends print() and
writes to sys.stderr to the stage's log, one log line per line of text."""
import importlib.abc
import importlib.util
import sys

import _stage_host


class _EmbeddedPackages(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports modules from source text the bridge carries: {name: (source, is_package)}."""

    def __init__(self, modules):
        self._modules = modules

    def find_spec(self, fullname, path=None, target=None):
        entry = self._modules.get(fullname)
        if entry is None:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=entry[1],
                                               origin=f"stage-host:{fullname}")

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        source, _ = self._modules[module.__name__]
        module.__file__ = f"<stage-host bridge>/{module.__name__.replace('.', '/')}.py"
        exec(compile(source, module.__file__, "exec"), module.__dict__)


class _LogWriter:
    """A text stream whose lines go to the stage's log."""

    def __init__(self, level):
        self._level = level
        self._pending = ""

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            _stage_host.log(self._level, line)
        return len(text)

    def flush(self):
        if self._pending:
            _stage_host.log(self._level, self._pending)
            self._pending = ""

    def isatty(self):
        return False

    def writable(self):
        return True

    @property
    def encoding(self):
        return "utf-8"


def install(modules):
    sys.meta_path.insert(0, _EmbeddedPackages(modules))
    sys.stdout = _LogWriter("info")
    sys.stderr = _LogWriter("warn")


def load_script(path, name):
    """Runs the stage's script as a module (not __main__: its `if __name__ == "__main__"`
    block, which would start the library's own pipeline, does not run)."""
    if name in sys.modules:
        name = f"_stage_host_script_{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def construct(cls, module):
    """Constructs the stage class as the library's pipelines do: with the script's
    `kafka_config` when the constructor takes one argument (the library's convention)."""
    import inspect

    from kafka_client.kafka_config import KafkaConfig

    required = [
        p for p in inspect.signature(cls).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not required:
        return cls()
    if len(required) == 1:
        config = getattr(module, "kafka_config", None)
        if not isinstance(config, KafkaConfig):
            config = KafkaConfig("", "", "")
        return cls(config)
    names = ", ".join(p.name for p in required)
    raise TypeError(f"{cls.__name__}() takes {len(required)} arguments ({names}); "
                    "stage-host passes at most the script's kafka_config")
