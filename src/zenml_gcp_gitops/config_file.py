"""Reading a config file without trusting it: YAML limited to plain values, with size and
depth caps, the checks every string of a config passes, and how a refused value is echoed.

Every problem becomes a one-line `ConfigError` naming where it is and the fix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import _UNPRINTABLE, ConfigError, echo, echo_path

if TYPE_CHECKING:
    from pydantic import ValidationError

# `scheme://userinfo@`: a user name with a password, or any user name on http(s), where it
# is a token in practice.
_URL_USERINFO_RE = re.compile(r"^([a-z][a-z0-9+.-]*)://([^/@\s]*)@", re.I)

# What the loader reads: a config file is a few hundred bytes; a device that never ends
# (/dev/zero) or a runaway pipe must end in one line, not in memory exhaustion.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 16


def _first_unprintable(text: str) -> int | None:
    for i, c in enumerate(text):
        if unicodedata.category(c) in _UNPRINTABLE:
            return i
    return None


def _walk_strings(value: object, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            key = echo(str(k), 40)[1:-1]  # a key is echoed too: escaped and cut
            yield from _walk_strings(v, f"{where}.{key}" if where else key)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _walk_strings(v, f"{where}[{i}]")


def check_strings(data: dict[str, Any]) -> None:
    """Refuse unprintable characters and credentials in URLs, in every string of `data`.

    Generic on purpose: a field added later is covered without a validator of its own.
    """
    for where, text in _walk_strings(data, ""):
        i = _first_unprintable(text)
        if i is not None:
            raise ConfigError(
                f"{where}: contains the unprintable character U+{ord(text[i]):04X} at position "
                f"{i + 1} (value {echo(text)})",
                "settings are single-line text; remove the character",
            )
        m = _URL_USERINFO_RE.match(text.strip())
        if m and (":" in m.group(2) or m.group(1).lower() in ("http", "https")):
            raise ConfigError(
                f"{where}: the URL carries credentials (user or token before '@'); they would be "
                "written into the plan, the record and the rendered manifests",
                "give the URL without them and put the credentials in the repository credential "
                "secret that the stack reads from Secret Manager; see docs/gitops.md, private repos",
            )


def format_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        msg = "unknown key; check its spelling against the config reference in the README"
        loc = echo(loc, 40).strip("'")
    elif first["type"] == "missing":
        msg = f"is required: pass --{loc.replace('_', '-')} or set it in the config file"
    else:
        # pydantic's "Input should be a valid boolean" -> "must be a valid boolean (got 'x')"
        msg = msg.replace("Input should be", "must be")
        if isinstance(value, str) and len(value) > 3:
            # validators quote the value they refuse: show it cut short and escaped
            msg = msg.replace(f"'{value}'", echo(value)).replace(repr(value), echo(value))
        if not msg.startswith("'") and isinstance(value, str | int | float | bool):
            msg += f" (got {echo(value)})"
    # Model-level checks name their field themselves (their loc is empty).
    line = f"{loc}: {msg}" if loc else msg
    # Never echo credentials embedded in URLs (state, gitops_repo).
    line = re.sub(r"//[^/@\s]+@", "//[secret]@", line)
    # Whatever a validator echoed: one line of bounded length.
    line = "".join(c if unicodedata.category(c) not in _UNPRINTABLE else " " for c in line)
    return line if len(line) <= 400 else line[:399] + "…"


def _yaml_loader() -> type:
    """A SafeLoader for config files: plain scalars, lists and mappings only.

    Refuses duplicate keys (the last one would silently win), explicit tags such as !!binary
    or !!set, anchors/aliases, nesting deeper than `MAX_CONFIG_DEPTH` (the composer recurses)
    and integers too long to be a setting. Dates stay the text they were written as.
    """
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ConfigError(
                    f"anchors and aliases (*name) are not supported, at line {mark.line + 1}",
                    "write each value out",
                )
            self.depth += 1
            if self.depth > MAX_CONFIG_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ConfigError(
                    f"nested more than {MAX_CONFIG_DEPTH} levels deep at line {mark.line + 1}",
                    "settings are at most a mapping of lists; see the config reference",
                )
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[object] = set()
            for key_node, _ in node.value:
                plain = isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":str")
                key = key_node.value if plain else None
                if key is None:
                    raise ConfigError(
                        f"a key at line {key_node.start_mark.line + 1} is not plain text",
                        "keys are setting names such as `project`",
                    )
                if key in seen:
                    raise ConfigError(
                        f"duplicate key {echo(key, 40)} at line {key_node.start_mark.line + 1}",
                        "set each key once; the earlier value would be silently lost",
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    allowed = {
        f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")
    }

    def refuse(loader: Any, node: Any) -> Any:
        raise ConfigError(
            f"the YAML tag {echo(node.tag, 60)} at line {node.start_mark.line + 1} is not "
            "supported",
            "settings are plain text, numbers, true/false, lists and mappings",
        )

    def plain_int(loader: Any, node: Any) -> Any:
        if len(str(node.value)) > 32:
            raise ConfigError(
                f"the number at line {node.start_mark.line + 1} has {len(node.value)} digits",
                "no setting takes a number that long",
            )
        return yaml.SafeLoader.construct_yaml_int(loader, node)

    def as_text(loader: Any, node: Any) -> Any:
        return loader.construct_scalar(node)

    for tag in list(Loader.yaml_constructors):
        if tag is None or (tag.startswith("tag:yaml.org,2002:") and tag not in allowed):
            Loader.add_constructor(tag, refuse)
    Loader.add_constructor("tag:yaml.org,2002:int", plain_int)
    Loader.add_constructor("tag:yaml.org,2002:timestamp", as_text)
    Loader.add_constructor(None, refuse)  # any other tag (!foo, !!python/...)
    return Loader


def read_config_bytes(path: Path) -> bytes:
    """Up to `MAX_CONFIG_BYTES` from a file, a pipe (`<(...)`), a device or `-` (stdin)."""
    from .files import read_input

    where = "standard input" if str(path) == "-" else f"config file {echo_path(path)}"
    try:
        if str(path) != "-" and path.is_dir():
            raise ConfigError(f"{where} is a directory", "pass a YAML file to --config")
        data = read_input(path, MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist", "check the --config path") from None
    except OSError as e:
        raise ConfigError(
            f"{where} cannot be read: {e.__class__.__name__}",
            "pass a readable UTF-8 YAML file to --config",
        ) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{where} is larger than {MAX_CONFIG_BYTES // (1 << 20)} MiB",
            "a deployment config is a few lines of YAML; check the --config path",
        )
    return data


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a config file; any problem becomes a one-line `ConfigError`."""
    import yaml

    where = "standard input" if str(path) == "-" else f"config file {echo_path(path)}"
    raw = read_config_bytes(path)
    try:
        text = raw.decode("utf-8-sig")  # a BOM from Windows editors is dropped
    except UnicodeDecodeError:
        raise ConfigError(
            f"{where} cannot be read: it is not UTF-8 text",
            "pass a readable UTF-8 YAML file to --config",
        ) from None
    text = text.replace("\r\n", "\n")
    try:
        data = yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None)
        raise ConfigError(
            f"{where} is not valid YAML{at}" + (f": {echo(problem, 80)[1:-1]}" if problem else ""),
            "fix the syntax there; each setting is a `key: value` line",
        ) from None
    except (ValueError, RecursionError, OverflowError) as e:
        raise ConfigError(
            f"{where} has a value that cannot be read ({e.__class__.__name__})",
            "settings are plain text, numbers, true/false, lists and mappings",
        ) from None
    if data is None:
        raise ConfigError(f"{where} is empty", "set at least project and region, see the README")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where} must be a mapping of keys to values",
            "write `key: value` lines such as `project: my-project`",
        )
    return data
