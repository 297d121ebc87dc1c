"""The one loader for user YAML (manifests, profiles, ``-p`` overrides, sweep grids).

Plain YAML only (``yaml.SafeLoader``: no ``!!python`` tags), at most :data:`MAX_BYTES` of text, and
at most :data:`MAX_VALUES` values once aliases are expanded: a 1 KB file of nested anchors (a
"billion laughs" YAML bomb) expands to billions of values and would keep any consumer busy for
minutes; it is refused in milliseconds. Every failure raises the caller's
:class:`~sapkit.errors.SapkitError` subclass naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sapkit.errors import ConfigError, SapkitError

__all__ = ["MAX_BYTES", "MAX_VALUES", "load_yaml_file", "load_yaml_text"]

#: Largest YAML text accepted (bytes).
MAX_BYTES = 1_000_000
#: Most values (scalars, lists, mappings) a document may hold once aliases are expanded.
MAX_VALUES = 100_000


def _expanded_size(root: yaml.Node, limit: int, what: str, error: type[SapkitError]) -> int:
    """Number of values of the node graph with every alias expanded (memoised, so linear time)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > limit:
                raise error(f"{what} expands to more than {limit:,} values through aliases (*name) of anchors "
                            "(&name), a YAML bomb?; write the values out or remove the nested aliases")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise error(f"{what} has an anchor (&name) that contains an alias to itself; remove the recursive alias")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml_text(text: str, *, what: str, error: type[SapkitError] = ConfigError) -> Any:
    """Parse one YAML document from ``text`` safely (see the module docstring).

    Parameters
    ----------
    what : str
        How to name the source in errors (``"profile /x/p.yaml"``, ``"override 'a=b'"``).
    error : SapkitError subclass
        The exception raised on failure.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise error(f"{what} is larger than {MAX_BYTES:,} bytes; sapkit reads small YAML files only — check the file")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, MAX_VALUES, what, error)
        return loader.construct_document(node)
    except yaml.constructor.ConstructorError as exc:
        raise error(f"{what} uses a YAML tag sapkit does not load ({exc.problem}); use plain YAML values "
                    "(no !!python tags)") from None
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise error(f"{what} is not valid YAML ({detail}); fix its syntax") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply to read; flatten its lists/mappings") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path, *, what: str | None = None, error: type[SapkitError] = ConfigError) -> Any:
    """Read and parse a YAML file with :func:`load_yaml_text`; errors name ``path``."""
    path = Path(path)
    what = what or f"{path}"
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise error(f"{what} is larger than {MAX_BYTES:,} bytes ({size:,}); sapkit reads small YAML files only")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} is not UTF-8 text; save it as a UTF-8 YAML file") from None
    except OSError as exc:
        raise error(f"{what} cannot be read ({exc.strerror or exc}); check the path and its permissions") from None
    return load_yaml_text(text, what=what, error=error)
